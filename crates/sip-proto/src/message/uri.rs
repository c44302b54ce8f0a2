//! SIP and SIPS URIs (RFC 3261 §19.1): `sip:user@host:port;params?headers`, parsed and
//! formatted, and the comparison a UA needs to find its own Contact in a registrar's list
//! (§19.1.4).
//!
//! Components are kept as written: escaped characters (`%3A`) are not decoded, so formatting a
//! parsed URI gives back its text and an echoed URI compares equal to what was sent.

use std::fmt;

use super::error::UriError;
use super::headers::{is_host, split_host_port, Params};
use super::MAX_PARAMS;

/// The URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:` (§19.1.1).
    Sip,
    /// `sips:`, which asks for TLS on every hop (§19.1.2).
    Sips,
}

/// A SIP or SIPS URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `sip` or `sips`.
    pub scheme: Scheme,
    /// The userinfo before `@` (user, and `:password` if someone put one there), verbatim.
    pub user: Option<String>,
    /// A hostname, IPv4 address or bracketed IPv6 reference.
    pub host: String,
    /// The port, if written (5060 is implied for `sip` over UDP, §19.1.2).
    pub port: Option<u16>,
    /// The `;uri-parameters` (`transport`, `lr`, `line`, ...), in order.
    pub params: Params,
    /// The `?name=value&...` headers (§19.1.1), in order, verbatim. A Snom phone behind NAT
    /// puts `Route=sip:<public>:<port>` here.
    pub headers: Vec<(String, String)>,
}

impl Uri {
    /// A `sip:` URI with just a user and a host and port.
    pub fn sip(user: Option<&str>, host: impl Into<String>, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            host: host.into(),
            port,
            params: Params::default(),
            headers: Vec::new(),
        }
    }

    /// Parses `sip:[userinfo@]host[:port][;params][?headers]` (scheme case-insensitive).
    ///
    /// The userinfo ends at the first `@` that comes before any `?`, so an `@` inside a header
    /// value (`?Route=sip:a@b`) is not taken for it.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let s = s.trim_matches([' ', '\t']);
        let (scheme, rest) = s.split_once(':').ok_or(UriError::UnsupportedScheme)?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else {
            return Err(UriError::UnsupportedScheme);
        };
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(UriError::InvalidComponent);
        }
        let question = rest.find('?').unwrap_or(rest.len());
        let (user, rest) = match rest.find('@') {
            Some(at) if at < question => (
                Some(rest.get(..at).unwrap_or_default()),
                rest.get(at + 1..).unwrap_or_default(),
            ),
            _ => (None, rest),
        };
        if user.is_some_and(str::is_empty) {
            return Err(UriError::InvalidComponent);
        }
        let (before_headers, headers) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, params) = before_headers
            .split_once(';')
            .unwrap_or((before_headers, ""));
        let (host, port) = parse_hostport(hostport)?;
        let params = Params::parse(params).ok_or(UriError::InvalidComponent)?;
        Ok(Uri {
            scheme,
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            params,
            headers: parse_headers(headers)?,
        })
    }

    /// `host:port`, `host`, `[v6]:port` as written in the URI.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// Whether `other` names the same contact as `self`, for finding our binding in a
    /// registrar's 200 (§10.2.4, comparison after §19.1.4).
    ///
    /// Scheme, user (case-sensitive) and host (case-insensitive) must be equal. Deviations from
    /// §19.1.4, chosen because registrars rewrite what they echo: a missing port equals 5060
    /// (`sips`: 5061); URI parameters other than `transport`, `user`, `maddr` and `method` are
    /// ignored, and those four only have to agree when both sides have them; URI headers must
    /// be equal when the echo has any (a registrar that drops `?Route=...` still matches, one
    /// that lists another phone's `?Route` does not).
    pub fn same_contact(&self, other: &Uri) -> bool {
        let default_port = |uri: &Uri| {
            uri.port.unwrap_or(match uri.scheme {
                Scheme::Sip => 5060,
                Scheme::Sips => 5061,
            })
        };
        let params_agree = ["transport", "user", "maddr", "method"].iter().all(|name| {
            match (self.params.value(name), other.params.value(name)) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            }
        });
        let headers_agree = other.headers.is_empty()
            || (other.headers.len() == self.headers.len()
                && other.headers.iter().all(|(name, value)| {
                    self.headers
                        .iter()
                        .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
                }));
        self.scheme == other.scheme
            && self.user == other.user
            && self.host.eq_ignore_ascii_case(&other.host)
            && default_port(self) == default_port(other)
            && params_agree
            && headers_agree
    }
}

fn parse_hostport(s: &str) -> Result<(&str, Option<u16>), UriError> {
    match split_host_port(s) {
        Some(parsed) => Ok(parsed),
        None => {
            // Tell a bad port from a bad host for the caller's log.
            let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
            Err(if is_host(host) && !s.starts_with('[') {
                UriError::InvalidPort
            } else {
                UriError::InvalidHost
            })
        }
    }
}

fn parse_headers(s: &str) -> Result<Vec<(String, String)>, UriError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let pieces: Vec<&str> = s.split('&').collect();
    if pieces.len() > MAX_PARAMS {
        return Err(UriError::InvalidComponent);
    }
    pieces
        .into_iter()
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            if name.is_empty() {
                return Err(UriError::InvalidComponent);
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}{}", self.host_port(), self.params)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            write!(f, "{separator}{name}={value}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snom_contact_uri_with_route_header() {
        let text = "sip:km@192.168.0.91:5060;line=2;transport=udp?Route=sip:66.31.121.76:60123";
        let uri = Uri::parse(text).unwrap();
        assert_eq!(uri.scheme, Scheme::Sip);
        assert_eq!(uri.user.as_deref(), Some("km"));
        assert_eq!(uri.host, "192.168.0.91");
        assert_eq!(uri.port, Some(5060));
        assert_eq!(uri.params.value("line"), Some("2"));
        assert_eq!(uri.params.value("transport"), Some("udp"));
        assert_eq!(
            uri.headers,
            [("Route".to_owned(), "sip:66.31.121.76:60123".to_owned())]
        );
        assert_eq!(uri.to_string(), text);
    }

    #[test]
    fn at_sign_in_a_header_is_not_userinfo() {
        let uri = Uri::parse("sip:192.0.2.1?Route=sip:a@b").unwrap();
        assert_eq!(uri.user, None);
        assert_eq!(uri.host, "192.0.2.1");
        assert_eq!(uri.headers[0].1, "sip:a@b");
    }

    #[test]
    fn refused_uris() {
        assert_eq!(Uri::parse("tel:+123"), Err(UriError::UnsupportedScheme));
        assert_eq!(Uri::parse("sip:"), Err(UriError::InvalidHost));
        assert_eq!(Uri::parse("sip:a@h:70000"), Err(UriError::InvalidPort));
        assert_eq!(Uri::parse("sip:a@h x"), Err(UriError::InvalidComponent));
        assert_eq!(Uri::parse("sip:@h"), Err(UriError::InvalidComponent));
        assert!(Uri::parse("SIPS:[2001:db8::1]:5061").is_ok());
    }

    #[test]
    fn contact_comparison() {
        let ours = Uri::parse("sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123")
            .unwrap();
        let echoed = Uri::parse("sip:km@192.168.0.91;line=2;transport=UDP").unwrap();
        assert!(ours.same_contact(&echoed));
        let other_phone =
            Uri::parse("sip:km@192.168.0.91:5060?Route=sip:198.51.100.9:5060").unwrap();
        assert!(!ours.same_contact(&other_phone));
        let tcp = Uri::parse("sip:km@192.168.0.91:5060;transport=tcp").unwrap();
        assert!(!ours.same_contact(&tcp));
        assert!(!ours.same_contact(&Uri::parse("sip:KM@192.168.0.91").unwrap()));
    }
}
