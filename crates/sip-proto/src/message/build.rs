//! Owned SIP messages to send: [`Request`] and [`Response`], checked when values are added so
//! that `emit` cannot fail (RFC 3261 §7: start line, headers, empty line, body).

use super::error::EmitError;
use super::headers::{is_token, SipHeaders};
use super::{is_forbidden_char, name_matches, Message, StartLine};

/// An owned header list whose names are tokens and whose values hold no control character.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn push(&mut self, name: &str, value: &str) -> Result<(), EmitError> {
        check_header(name, value)?;
        self.0.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// For values this crate built from checked parts: still checked, but a bad value is
    /// dropped (and caught by tests) instead of pushing an error into every caller.
    fn push_trusted(&mut self, name: &str, value: &str) {
        debug_assert!(check_header(name, value).is_ok(), "{name}: {value:?}");
        if check_header(name, value).is_ok() {
            self.0.push((name.to_owned(), value.to_owned()));
        }
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !name_matches(n, name));
    }

    fn emit(&self, body: &[u8], out: &mut Vec<u8>) {
        for (name, value) in &self.0 {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // §18.3 / §20.14: always written for UDP too; last, as phones (and the seed) do.
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }

    fn from_message(message: &Message<'_>) -> Self {
        Fields(
            message
                .headers
                .iter()
                .filter(|h| !h.is("Content-Length"))
                .map(|h| (h.name.to_owned(), h.value.clone().into_owned()))
                .collect(),
        )
    }
}

fn check_header(name: &str, value: &str) -> Result<(), EmitError> {
    if !is_token(name) || name_matches(name, "Content-Length") {
        return Err(EmitError::InvalidHeaderName { name: name.into() });
    }
    if value.chars().any(is_forbidden_char) {
        return Err(EmitError::InvalidHeaderValue { name: name.into() });
    }
    Ok(())
}

/// A SIP request to send (or a received one, copied with [`Request::from_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    uri: String,
    headers: Fields,
    body: Vec<u8>,
}

impl Request {
    /// A request with no headers yet. The method must be a token (§25.1) and the URI must be
    /// non-empty without whitespace or control characters.
    pub fn new(method: &str, uri: &str) -> Result<Request, EmitError> {
        if !is_token(method) {
            return Err(EmitError::InvalidMethod {
                method: method.into(),
            });
        }
        if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmitError::InvalidRequestUri);
        }
        Ok(Request {
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers: Fields::default(),
            body: Vec::new(),
        })
    }

    /// For a method and URI this crate checked already.
    pub(crate) fn new_trusted(method: &str, uri: &str) -> Request {
        debug_assert!(Request::new(method, uri).is_ok(), "{method} {uri}");
        Request {
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers: Fields::default(),
            body: Vec::new(),
        }
    }

    /// An owned copy of a parsed request (`None` for a response). `Content-Length` is dropped:
    /// `emit` writes it from the body.
    pub fn from_message(message: &Message<'_>) -> Option<Request> {
        let StartLine::Request { method, uri } = message.start else {
            return None;
        };
        Some(Request {
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers: Fields::from_message(message),
            body: message.body.to_vec(),
        })
    }

    /// Appends a header. Refuses a name that is not a token or is `Content-Length`, and a
    /// value with a control character other than tab.
    pub fn push_header(&mut self, name: &str, value: &str) -> Result<(), EmitError> {
        self.headers.push(name, value)
    }

    /// [`push_header`](Self::push_header) for chaining.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Request, EmitError> {
        self.push_header(name, value)?;
        Ok(self)
    }

    pub(crate) fn push_trusted(&mut self, name: &str, value: &str) {
        self.headers.push_trusted(name, value);
    }

    /// Removes every header called `name` (compact forms included).
    pub fn remove_header(&mut self, name: &str) {
        self.headers.remove(name);
    }

    /// Sets the body; the caller adds the matching `Content-Type`.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The Request-URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Appends the request to `out`: start line, headers in order, `Content-Length`, empty
    /// line, body.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        self.headers.emit(&self.body, out);
    }

    /// The request as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }
}

impl SipHeaders for Request {
    fn header_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A SIP response to send (or a received one, copied with [`Response::from_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    code: u16,
    reason: String,
    headers: Fields,
    body: Vec<u8>,
}

impl Response {
    /// A response with no headers yet: code 100..=699 and a reason phrase without control
    /// characters (§7.2).
    pub fn new(code: u16, reason: &str) -> Result<Response, EmitError> {
        if !(100..=699).contains(&code) || reason.chars().any(is_forbidden_char) {
            return Err(EmitError::InvalidStatusLine);
        }
        Ok(Response {
            code,
            reason: reason.to_owned(),
            headers: Fields::default(),
            body: Vec::new(),
        })
    }

    /// An owned copy of a parsed response (`None` for a request).
    pub fn from_message(message: &Message<'_>) -> Option<Response> {
        let StartLine::Response { code, reason } = message.start else {
            return None;
        };
        Some(Response {
            code,
            reason: reason.to_owned(),
            headers: Fields::from_message(message),
            body: message.body.to_vec(),
        })
    }

    /// Appends a header; same checks as [`Request::push_header`].
    pub fn push_header(&mut self, name: &str, value: &str) -> Result<(), EmitError> {
        self.headers.push(name, value)
    }

    /// [`push_header`](Self::push_header) for chaining.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Response, EmitError> {
        self.push_header(name, value)?;
        Ok(self)
    }

    pub(crate) fn push_trusted(&mut self, name: &str, value: &str) {
        self.headers.push_trusted(name, value);
    }

    /// Removes every header called `name` (compact forms included).
    pub fn remove_header(&mut self, name: &str) {
        self.headers.remove(name);
    }

    /// Sets the body; the caller adds the matching `Content-Type`.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason phrase.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Appends the response to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.code, self.reason).as_bytes());
        self.headers.emit(&self.body, out);
    }

    /// The response as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }
}

impl SipHeaders for Response {
    fn header_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn refuses_injection_and_reserved_names() {
        let mut request = Request::new("OPTIONS", "sip:a@b").unwrap();
        assert!(request.push_header("X-Ok", "a\tb").is_ok());
        assert!(matches!(
            request.push_header("Subject", "a\r\nVia: evil"),
            Err(EmitError::InvalidHeaderValue { .. })
        ));
        assert!(request.push_header("Bad Name", "x").is_err());
        assert!(request.push_header("l", "5").is_err());
        assert!(Request::new("OPT IONS", "sip:a@b").is_err());
        assert!(Request::new("OPTIONS", "sip:a b").is_err());
        assert!(Response::new(99, "x").is_err());
        assert!(Response::new(200, "O\nK").is_err());
    }

    #[test]
    fn emit_writes_content_length_last() {
        let mut response = Response::new(200, "OK")
            .unwrap()
            .with_header("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
            .unwrap()
            .with_header("From", "<sip:a@b>;tag=1")
            .unwrap()
            .with_header("To", "<sip:a@b>;tag=2")
            .unwrap()
            .with_header("Call-ID", "c")
            .unwrap()
            .with_header("CSeq", "1 MESSAGE")
            .unwrap();
        response.set_body(b"hi".to_vec());
        let bytes = response.to_bytes();
        assert!(bytes.ends_with(b"CSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"));
        let parsed = parse(&bytes).unwrap();
        assert_eq!(Response::from_message(&parsed), Some(response));
    }
}
