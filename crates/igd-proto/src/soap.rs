//! SOAP 1.1 envelopes as UPnP uses them (UDA 1.1 §3, Control): building and parsing
//! action requests, responses and faults, for control points and for the gateway.
//!
//! A request is an HTTP POST whose body is `s:Envelope/s:Body/u:ACTION` with the
//! service type as the action element's namespace and one child element per argument,
//! and whose `SOAPAction` header is `"SERVICE_TYPE#ACTION"`. The answer is
//! `u:ACTIONResponse` with the out arguments, or (HTTP 500) a `s:Fault` whose `detail`
//! holds a `UPnPError`. Every text we write is XML-escaped (devices that echo a mapping
//! description unescaped are a known source of broken and injected XML); every body we
//! read goes through the crate's hardened XML reader: size cap, no DTD, only the
//! predefined entities. Prefixes are ignored on input: `s:`, `SOAP-ENV:` and default
//! namespaces are all in use.

use std::borrow::Cow;
use std::str::FromStr;

use crate::error::UpnpError;
use crate::xml::{self, Element, XmlError, XmlFault};

/// Largest SOAP body accepted, in bytes. Action requests and most answers are under
/// 2 KiB; `GetListOfPortMappings` answers can carry thousands of escaped entries.
pub const MAX_SOAP_LEN: usize = 1024 * 1024;

/// The SOAP 1.1 envelope namespace.
pub const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.1 encoding style UDA requires on the envelope.
pub const ENCODING_STYLE: &str = "http://schemas.xmlsoap.org/soap/encoding/";
/// The `Content-Type` of every SOAP body, requests and answers (UDA 2.0 §3.2).
pub const CONTENT_TYPE: &str = "text/xml; charset=\"utf-8\"";

/// The namespace of the `UPnPError` element in fault details.
pub const CONTROL_NS: &str = "urn:schemas-upnp-org:control-1-0";

/// A request ready to POST to a control URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapRequest {
    /// The `SOAPAction` header value, quoted as UDA requires: `"urn:…#Action"`.
    pub soap_action: String,
    /// The XML body (send with `Content-Type: text/xml; charset="utf-8"`).
    pub body: Vec<u8>,
}

/// An action call as a device receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapCall {
    /// The action element's namespace URI: the service type invoked.
    pub service_type: String,
    /// The action name (the action element's local name).
    pub action: String,
    /// The arguments in document order: (local name, unescaped text).
    pub args: Vec<(String, String)>,
}

/// Why a SOAP message was refused, grouped by what the caller can do about it: the
/// first seven mean the peer sent something unusable; `UnknownAction`, `WrongAction`,
/// `MissingArgument` and `InvalidArgument` mean it answered (or asked) something other than the protocol
/// allows; `Upnp` and `Fault` mean the peer understood and refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The body is larger than [`MAX_SOAP_LEN`].
    #[error("SOAP body is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body contains a `<!DOCTYPE>` (refused: SOAP forbids DTDs).
    #[error("SOAP body contains a DOCTYPE (refused)")]
    Dtd,
    /// The body references an entity other than the five predefined ones.
    #[error("SOAP body references an entity other than the XML predefined ones (refused)")]
    Entity,
    /// The body is not well-formed XML.
    #[error("SOAP body is not well-formed XML: {0}")]
    Xml(XmlError),
    /// Elements are nested deeper than any SOAP message needs.
    #[error("SOAP body is nested too deeply")]
    TooDeep,
    /// The body has more elements than any SOAP message plausibly needs.
    #[error("SOAP body has too many elements")]
    TooManyElements,
    /// Well-formed XML but not the expected structure; names the element missing
    /// (`Envelope`, `Body`, the action element, its namespace, or `PortMappingList`).
    #[error("not a UPnP SOAP message: no {0}")]
    NotSoap(&'static str),
    /// Device side: a request for an action this crate does not know (answer 401).
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// The response is for another action than the one called.
    #[error("expected <{expected}>, found <{found}>")]
    WrongAction {
        /// The element expected (`ACTIONResponse`).
        expected: String,
        /// The element found.
        found: String,
    },
    /// A required argument is absent.
    #[error("argument {0} is missing")]
    MissingArgument(&'static str),
    /// An argument's value is not valid for its type (a bad or out-of-range number, an
    /// unknown protocol, a boolean that is not 1/0/true/false/yes/no).
    #[error("argument {name} has invalid value {value:?}")]
    InvalidArgument {
        /// The argument name.
        name: &'static str,
        /// The value received.
        value: String,
    },
    /// The device refused the action with a UPnP error (see [`UpnpError::kind`]).
    #[error("{0}")]
    Upnp(UpnpError),
    /// The device answered a SOAP fault without a `UPnPError` detail.
    #[error("SOAP fault {faultcode}: {faultstring}")]
    Fault {
        /// `faultcode` (e.g. `s:Client`), empty when missing.
        faultcode: String,
        /// `faultstring`, empty when missing.
        faultstring: String,
    },
}

impl From<XmlFault> for SoapError {
    fn from(fault: XmlFault) -> Self {
        match fault {
            XmlFault::TooLarge { len, max } => Self::TooLarge { len, max },
            XmlFault::Dtd => Self::Dtd,
            XmlFault::Entity => Self::Entity,
            XmlFault::TooDeep => Self::TooDeep,
            XmlFault::TooManyElements => Self::TooManyElements,
            XmlFault::Malformed(e) => Self::Xml(e),
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` (XML 1.0 §2.4), so the result is safe both as
/// element content and inside a quoted attribute. Borrowed when nothing needs escaping.
///
/// Characters XML 1.0 cannot carry at all (most C0 controls) are passed through; callers
/// that accept such text from users should refuse it before it gets here.
pub fn escape(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(['&', '<', '>', '"', '\'']) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

const PROLOG: &str = "<?xml version=\"1.0\"?>\n";

fn envelope(body: impl FnOnce(&mut String)) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    out.push_str(PROLOG);
    out.push_str("<s:Envelope xmlns:s=\"");
    out.push_str(ENVELOPE_NS);
    out.push_str("\" s:encodingStyle=\"");
    out.push_str(ENCODING_STYLE);
    out.push_str("\"><s:Body>");
    body(&mut out);
    out.push_str("</s:Body></s:Envelope>\n");
    out.into_bytes()
}

/// `<u:ELEMENT xmlns:u="SERVICE_TYPE"><NAME>VALUE</NAME>…</u:ELEMENT>`, values escaped.
///
/// `element` and the argument names are written as they are: they must be XML names
/// (they come from this crate's constants or from a parsed request).
fn action_element(out: &mut String, service_type: &str, element: &str, args: &[(&str, &str)]) {
    out.push_str("<u:");
    out.push_str(element);
    out.push_str(" xmlns:u=\"");
    out.push_str(&escape(service_type));
    out.push_str("\">");
    for (name, value) in args {
        // Explicit end tags rather than `<x/>` for empty values: some devices' parsers
        // only understand the long form.
        out.push('<');
        out.push_str(name);
        out.push('>');
        out.push_str(&escape(value));
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out.push_str("</u:");
    out.push_str(element);
    out.push('>');
}

/// Builds an action request (UDA 2.0 §3.2, action invoke), arguments in the given order
/// (UDA requires the order of the service description).
pub fn build_request(service_type: &str, action: &str, args: &[(&str, &str)]) -> SoapRequest {
    SoapRequest {
        soap_action: format!("\"{service_type}#{action}\""),
        body: envelope(|out| action_element(out, service_type, action, args)),
    }
}

/// Builds a successful action response (`u:ACTIONResponse`) with escaped out arguments.
pub fn build_response(service_type: &str, action: &str, out_args: &[(&str, &str)]) -> Vec<u8> {
    let element = format!("{action}Response");
    envelope(|out| action_element(out, service_type, &element, out_args))
}

/// Builds the UPnP fault body (UDA 2.0 §3.2.5, "Action error response"): `faultcode`
/// `s:Client`, `faultstring` `UPnPError`, and `detail/UPnPError` with the code and the
/// escaped description. The caller sends it with HTTP status 500.
pub fn build_fault(code: u16, description: &str) -> Vec<u8> {
    envelope(|out| {
        out.push_str("<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"");
        out.push_str(CONTROL_NS);
        out.push_str("\"><errorCode>");
        out.push_str(&code.to_string());
        out.push_str("</errorCode><errorDescription>");
        out.push_str(&escape(description));
        out.push_str("</errorDescription></UPnPError></detail></s:Fault>");
    })
}

/// The first element inside `Envelope/Body`. Prefixes are ignored because UDA 2.0 §3.2
/// says they "do not have to be" `s`/`u` and control points must accept any legal ones;
/// `Header` and unknown elements are skipped.
fn body_element(body: &[u8]) -> Result<Element, SoapError> {
    let envelope = xml::parse_document(body, MAX_SOAP_LEN)?;
    if envelope.local != "Envelope" {
        return Err(SoapError::NotSoap("Envelope"));
    }
    let mut body = envelope
        .children
        .into_iter()
        .find(|c| c.local == "Body")
        .ok_or(SoapError::NotSoap("Body"))?;
    if body.children.is_empty() {
        return Err(SoapError::NotSoap("action element"));
    }
    Ok(body.children.swap_remove(0))
}

fn args_of(element: Element) -> Vec<(String, String)> {
    element
        .children
        .into_iter()
        .map(|c| (c.local, c.text))
        .collect()
}

/// Parses an action response for `action`: its out arguments in document order as
/// (local name, unescaped text). A fault becomes [`SoapError::Upnp`] (or
/// [`SoapError::Fault`] when it carries no `UPnPError`).
pub fn parse_response(body: &[u8], action: &str) -> Result<Vec<(String, String)>, SoapError> {
    let element = body_element(body)?;
    if element.local == "Fault" {
        return Err(parse_fault(&element));
    }
    let expected = format!("{action}Response");
    if element.local != expected {
        return Err(SoapError::WrongAction {
            expected,
            found: element.local,
        });
    }
    Ok(args_of(element))
}

fn parse_fault(fault: &Element) -> SoapError {
    // `detail/UPnPError`, tolerating devices that drop `detail` or nest differently.
    let Some(upnp) = fault.descendant("UPnPError") else {
        return SoapError::Fault {
            faultcode: fault.child_text("faultcode").unwrap_or_default().to_owned(),
            faultstring: fault
                .child_text("faultstring")
                .unwrap_or_default()
                .to_owned(),
        };
    };
    let Some(code) = upnp.child_text("errorCode") else {
        return SoapError::MissingArgument("errorCode");
    };
    let code = match parse_number::<u16>("errorCode", code) {
        Ok(code) => code,
        Err(e) => return e,
    };
    SoapError::Upnp(UpnpError {
        code,
        description: upnp
            .child_text("errorDescription")
            .unwrap_or_default()
            .to_owned(),
    })
}

pub(crate) fn invalid(name: &'static str, value: &str) -> SoapError {
    SoapError::InvalidArgument {
        name,
        value: value.to_owned(),
    }
}

/// A UPnP `ui1`/`ui2`/`ui4`: decimal digits only (no sign, no hex), surrounding
/// whitespace ignored, and within the type's range, else `InvalidArgument`.
pub(crate) fn parse_number<T: FromStr>(name: &'static str, value: &str) -> Result<T, SoapError> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, value));
    }
    t.parse().map_err(|_| invalid(name, value))
}

/// A UPnP `boolean` (UDA 1.1 §2, service description data types): `1`/`0`,
/// `true`/`false`, `yes`/`no`, in any case.
pub(crate) fn parse_bool(name: &'static str, value: &str) -> Result<bool, SoapError> {
    let t = value.trim();
    if t == "1" || t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if t == "0" || t.eq_ignore_ascii_case("false") || t.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(invalid(name, value))
    }
}

/// Parses an action request, device side: the first element of the body names the
/// action (local name) and the service (namespace URI); its children are the arguments.
pub fn parse_request(body: &[u8]) -> Result<SoapCall, SoapError> {
    let mut element = body_element(body)?;
    let service_type = element
        .ns
        .take()
        .ok_or(SoapError::NotSoap("action namespace"))?;
    let action = std::mem::take(&mut element.local);
    Ok(SoapCall {
        service_type,
        action,
        args: args_of(element),
    })
}

/// Splits a `SOAPAction` header value into (service type, action).
///
/// UDA requires the value in double quotes; unquoted values are accepted because some
/// control points send them. Anything else (a lone quote, no `#`, an empty part) is
/// `None`: a server compares the result with the body's action and answers 401 on
/// mismatch.
pub fn parse_soap_action(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => value,
    };
    if inner.contains('"') {
        return None;
    }
    let (service, action) = inner.rsplit_once('#')?;
    if service.is_empty() || action.is_empty() {
        return None;
    }
    Some((service, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::urn;

    fn vector(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn escape_specials() {
        assert!(matches!(escape("plain text"), Cow::Borrowed("plain text")));
        assert_eq!(escape(r#"a<b>&"c'd"#), "a&lt;b&gt;&amp;&quot;c&apos;d");
        assert_eq!(escape("]]>"), "]]&gt;");
        assert_eq!(escape("é<ü"), "é&lt;ü");
    }

    #[test]
    fn request_shape() {
        let r = build_request(urn::WAN_IP_CONNECTION_1, "GetExternalIPAddress", &[]);
        assert_eq!(
            r.soap_action,
            "\"urn:schemas-upnp-org:service:WANIPConnection:1#GetExternalIPAddress\""
        );
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:GetExternalIPAddress xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\
             </u:GetExternalIPAddress></s:Body></s:Envelope>\n"
        );
    }

    #[test]
    fn hostile_description_round_trips() {
        let nasty = r#"<x>&amp; ]]> "q" 'a' </u:AddPortMapping><![CDATA[ é"#;
        let r = build_request(
            urn::WAN_IP_CONNECTION_2,
            "AddPortMapping",
            &[("NewPortMappingDescription", nasty), ("NewRemoteHost", "")],
        );
        let call = parse_request(&r.body).unwrap();
        assert_eq!(call.service_type, urn::WAN_IP_CONNECTION_2);
        assert_eq!(call.action, "AddPortMapping");
        assert_eq!(
            call.args,
            [
                ("NewPortMappingDescription".to_owned(), nasty.to_owned()),
                ("NewRemoteHost".to_owned(), String::new())
            ]
        );
        let resp = build_response(urn::WAN_IP_CONNECTION_2, "X", &[("NewOut", nasty)]);
        assert_eq!(
            parse_response(&resp, "X").unwrap(),
            [("NewOut".to_owned(), nasty.to_owned())]
        );
    }

    #[test]
    fn response_with_other_prefixes() {
        let args = parse_response(
            &vector("soap-external-ip-response.xml"),
            "GetExternalIPAddress",
        )
        .unwrap();
        assert_eq!(
            args,
            [("NewExternalIPAddress".to_owned(), "203.0.113.1".to_owned())]
        );
    }

    #[test]
    fn wrong_action() {
        let resp = build_response(urn::WAN_IP_CONNECTION_1, "GetStatusInfo", &[]);
        assert_eq!(
            parse_response(&resp, "GetExternalIPAddress"),
            Err(SoapError::WrongAction {
                expected: "GetExternalIPAddressResponse".into(),
                found: "GetStatusInfoResponse".into()
            })
        );
    }

    #[test]
    fn faults_from_devices() {
        for (file, code, kind) in [
            ("soap-fault-718.xml", 718, ErrorCode::ConflictInMappingEntry),
            (
                "soap-fault-725.xml",
                725,
                ErrorCode::OnlyPermanentLeasesSupported,
            ),
            ("soap-fault-606.xml", 606, ErrorCode::ActionNotAuthorized),
        ] {
            match parse_response(&vector(file), "AddPortMapping") {
                Err(SoapError::Upnp(e)) => {
                    assert_eq!(e.code, code, "{file}");
                    assert_eq!(e.kind(), Some(kind), "{file}");
                }
                other => panic!("{file}: {other:?}"),
            }
        }
        let Err(SoapError::Upnp(e)) = parse_response(&vector("soap-fault-718.xml"), "X") else {
            panic!()
        };
        assert_eq!(e.description, "ConflictInMappingEntry");
        assert_eq!(e.to_string(), "error 718 ConflictInMappingEntry");
    }

    #[test]
    fn built_fault_is_byte_exact_and_parses() {
        let body = build_fault(718, "ConflictInMappingEntry");
        assert_eq!(body, vector("soap-fault-built-718.xml"));
        assert_eq!(
            parse_response(&body, "AddPortMapping"),
            Err(SoapError::Upnp(UpnpError {
                code: 718,
                description: "ConflictInMappingEntry".into()
            }))
        );
        let body = build_fault(899, "a <weird> & \"odd\" one");
        assert_eq!(
            parse_response(&body, "AddPortMapping"),
            Err(SoapError::Upnp(UpnpError {
                code: 899,
                description: "a <weird> & \"odd\" one".into()
            }))
        );
    }

    #[test]
    fn odd_faults() {
        let plain = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>Boom</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            parse_response(plain, "A"),
            Err(SoapError::Fault {
                faultcode: "s:Server".into(),
                faultstring: "Boom".into()
            })
        );
        let bad_code = br#"<Envelope><Body><Fault><detail><UPnPError><errorCode>7x8</errorCode></UPnPError></detail></Fault></Body></Envelope>"#;
        assert_eq!(
            parse_response(bad_code, "A"),
            Err(SoapError::InvalidArgument {
                name: "errorCode",
                value: "7x8".into()
            })
        );
        let no_code =
            br#"<Envelope><Body><Fault><detail><UPnPError/></detail></Fault></Body></Envelope>"#;
        assert_eq!(
            parse_response(no_code, "A"),
            Err(SoapError::MissingArgument("errorCode"))
        );
        let big = br#"<Envelope><Body><Fault><detail><UPnPError><errorCode>70000</errorCode></UPnPError></detail></Fault></Body></Envelope>"#;
        assert!(matches!(
            parse_response(big, "A"),
            Err(SoapError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn not_soap() {
        assert_eq!(
            parse_response(b"<html/>", "A"),
            Err(SoapError::NotSoap("Envelope"))
        );
        assert_eq!(
            parse_response(b"<Envelope><Header/></Envelope>", "A"),
            Err(SoapError::NotSoap("Body"))
        );
        assert_eq!(
            parse_request(b"<Envelope><Body> </Body></Envelope>"),
            Err(SoapError::NotSoap("action element"))
        );
        assert_eq!(
            parse_request(b"<Envelope><Body><AddPortMapping/></Body></Envelope>"),
            Err(SoapError::NotSoap("action namespace"))
        );
        assert!(matches!(
            parse_request(b"\xff\xfe<"),
            Err(SoapError::Xml(_))
        ));
    }

    #[test]
    fn refuses_dtd_entities_and_size() {
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope><Body><A xmlns="urn:x"><a>&x;</a></A></Body></Envelope>"#;
        assert_eq!(parse_request(dtd), Err(SoapError::Dtd));
        let ent = br#"<Envelope><Body><A xmlns="urn:x"><a>&x;</a></A></Body></Envelope>"#;
        assert_eq!(parse_request(ent), Err(SoapError::Entity));
        let huge = vec![b' '; MAX_SOAP_LEN + 1];
        assert_eq!(
            parse_response(&huge, "A"),
            Err(SoapError::TooLarge {
                len: MAX_SOAP_LEN + 1,
                max: MAX_SOAP_LEN
            })
        );
    }

    #[test]
    fn request_with_header_and_default_namespace() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Header><x>ignored</x></SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <DeletePortMapping xmlns="urn:schemas-upnp-org:service:WANIPConnection:1">
      <NewRemoteHost></NewRemoteHost>
      <NewExternalPort>5060</NewExternalPort>
      <NewProtocol>UDP</NewProtocol>
    </DeletePortMapping>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;
        let call = parse_request(body).unwrap();
        assert_eq!(call.service_type, urn::WAN_IP_CONNECTION_1);
        assert_eq!(call.action, "DeletePortMapping");
        assert_eq!(call.args.len(), 3);
        assert_eq!(call.args[1], ("NewExternalPort".into(), "5060".into()));
    }

    #[test]
    fn soap_action_header() {
        assert_eq!(
            parse_soap_action("\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\""),
            Some((urn::WAN_IP_CONNECTION_1, "AddPortMapping"))
        );
        assert_eq!(parse_soap_action("urn:x#A"), Some(("urn:x", "A")));
        for bad in [
            "'",
            "\"",
            "\"urn:x#A",
            "urn:x#A\"",
            "\"urn:x\"",
            "\"#A\"",
            "\"urn:x#\"",
            "",
            "\"a\"b#c\"",
        ] {
            assert_eq!(parse_soap_action(bad), None, "{bad:?}");
        }
    }
}
