//! Digest access authentication, client side, as SIP uses it (RFC 3261 §22.4, RFC 7616,
//! RFC 8760 for SHA-256 in SIP): read a `WWW-Authenticate` / `Proxy-Authenticate` challenge and
//! compute the `Authorization` / `Proxy-Authorization` answer.
//!
//! Supported: algorithms MD5, SHA-256 and SHA-512-256, each also as `-sess` (RFC 7616 §3.4.2);
//! `qop=auth` (preferred) and `qop=auth-int` (§3.4.3); no qop at all (the RFC 2069 form RFC 3261
//! §22.4 still allows); `opaque` echoed (§3.3); `stale` (§3.3: the nonce expired, the password
//! was right: retry with the new nonce); `userhash` (§3.4.4). The nonce count and the cnonce are
//! the caller's: this module keeps no state and draws no randomness.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use thiserror::Error;

use crate::message::{is_token, quote, split_unquoted, take_quoted};

/// A digest algorithm (RFC 7616 §3.3 `algorithm`, §6.1 registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5`, the default when a challenge names none (RFC 7616 §3.3).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616 §3.3, RFC 8760 for SIP).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Reads an `algorithm` value (case-insensitive); `None` if unknown.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The name as written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether A1 is the session form `H(user:realm:pass):nonce:cnonce` (RFC 7616 §3.4.2).
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Lower-case hex of the hash of `data`.
    fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex(&Sha512_256::digest(data)),
        }
    }

    /// The hash family's rank: a client picks the strongest challenge it supports
    /// (RFC 7616 §3.7).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 0,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 2,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: authentication only.
    Auth,
    /// `auth-int`: authentication with the body hashed in (§3.4.3).
    AuthInt,
}

impl Qop {
    /// The name as written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The response had no challenge header (a 401 without WWW-Authenticate or a 407 without
    /// Proxy-Authenticate breaks RFC 3261 §21.4.2/§21.4.8).
    #[error("no challenge in the response")]
    NoChallenge,
    /// The scheme is not `Digest` (RFC 3261 §22.1 only defines Digest).
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The challenge lacks `realm` or `nonce`, or a parameter is not `name=value`.
    #[error("challenge is malformed: {0}")]
    Malformed(&'static str),
    /// An `algorithm` this client does not implement; the server must offer another one.
    #[error("algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    /// A `qop` list with neither `auth` nor `auth-int`.
    #[error("no supported qop in {0:?}")]
    UnsupportedQop(String),
}

/// A parsed digest challenge (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`, unquoted.
    pub realm: String,
    /// `nonce`, unquoted.
    pub nonce: String,
    /// `opaque`, unquoted; echoed unchanged (§3.3).
    pub opaque: Option<String>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// The offered qops this client knows, in the server's order; empty when the challenge has
    /// no `qop` (RFC 2069 compatibility).
    pub qop: Vec<Qop>,
    /// `stale=true`: the previous nonce expired but the credentials were right (§3.3).
    pub stale: bool,
    /// `userhash=true`: send the hashed username (§3.4.4).
    pub userhash: bool,
}

impl Challenge {
    /// Parses one `Digest ...` challenge.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let value = value.trim_start();
        let (scheme, rest) = value
            .split_once(char::is_whitespace)
            .ok_or(DigestError::NotDigest)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop) =
            (None, None, None, None, None);
        let (mut stale, mut userhash) = (false, false);
        for piece in split_unquoted(rest, ',') {
            let (name, raw) = piece
                .split_once('=')
                .ok_or(DigestError::Malformed("parameter without value"))?;
            let (name, raw) = (name.trim(), raw.trim());
            if !is_token(name) {
                return Err(DigestError::Malformed("parameter name"));
            }
            let value = match take_quoted(raw) {
                Some((content, "")) => content,
                Some(_) => return Err(DigestError::Malformed("text after quoted value")),
                None => raw.to_owned(),
            };
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "algorithm" => algorithm = Some(value),
                "qop" => qop = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                "userhash" => userhash = value.eq_ignore_ascii_case("true"),
                _ => {} // domain, charset and extensions do not change the answer
            }
        }
        let algorithm = match algorithm {
            None => Algorithm::Md5,
            Some(name) => Algorithm::parse(&name).ok_or(DigestError::UnsupportedAlgorithm(name))?,
        };
        let qop = match qop {
            None => Vec::new(),
            Some(list) => {
                let known: Vec<Qop> = list
                    .split(',')
                    .filter_map(|q| match q.trim() {
                        q if q.eq_ignore_ascii_case("auth") => Some(Qop::Auth),
                        q if q.eq_ignore_ascii_case("auth-int") => Some(Qop::AuthInt),
                        _ => None,
                    })
                    .collect();
                if known.is_empty() {
                    return Err(DigestError::UnsupportedQop(list));
                }
                known
            }
        };
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Malformed("no realm"))?,
            nonce: nonce.ok_or(DigestError::Malformed("no nonce"))?,
            opaque,
            algorithm,
            qop,
            stale,
            userhash,
        })
    }

    /// Picks the challenge to answer among a response's challenges: the strongest supported
    /// algorithm, the first of equals (RFC 7616 §3.7). If none is usable, the first error.
    pub fn select<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, DigestError> {
        let mut best: Option<Challenge> = None;
        let mut first_error = None;
        for value in values {
            match Challenge::parse(value) {
                Ok(challenge) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| challenge.algorithm.strength() > b.algorithm.strength())
                    {
                        best = Some(challenge);
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        best.ok_or(first_error.unwrap_or(DigestError::NoChallenge))
    }

    /// The qop this client answers with: `auth` if offered, else `auth-int`, else none.
    pub fn chosen_qop(&self) -> Option<Qop> {
        if self.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            self.qop.first().copied()
        }
    }
}

/// A username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username (often the AOR's user part, sometimes a separate auth id).
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never let a password reach a log through `{:?}`.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the answer is computed over: the request's method, Request-URI and body (RFC 3261
/// §22.4: `uri` is the Request-URI).
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request's method, `REGISTER` for example.
    pub method: &'a str,
    /// The Request-URI exactly as on the request line.
    pub uri: &'a str,
    /// The body (only hashed for `auth-int`).
    pub body: &'a [u8],
}

/// A computed `Authorization` (or `Proxy-Authorization`) value; `Display` writes the header
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The username as sent (hashed when the challenge asked for `userhash`).
    pub username: String,
    /// Echoed `realm`.
    pub realm: String,
    /// Echoed `nonce`.
    pub nonce: String,
    /// The digest-uri: the Request-URI.
    pub uri: String,
    /// The request digest, lower-case hex.
    pub response: String,
    /// The algorithm used.
    pub algorithm: Algorithm,
    /// `cnonce`, sent with a qop or a `-sess` algorithm.
    pub cnonce: Option<String>,
    /// Echoed `opaque`.
    pub opaque: Option<String>,
    /// The qop used, with its nonce count.
    pub qop: Option<(Qop, u32)>,
    /// Whether `username` is hashed (§3.4.4).
    pub userhash: bool,
}

/// Answers `challenge` for `request`, with nonce count `nc` (1 for a nonce's first use, then
/// counting up, RFC 7616 §3.4) and the caller's random `cnonce`.
pub fn authorize(
    challenge: &Challenge,
    credentials: &Credentials,
    request: RequestInfo<'_>,
    nc: u32,
    cnonce: &str,
) -> Authorization {
    let alg = challenge.algorithm;
    let qop = challenge.chosen_qop();
    // §3.4.2: A1 = username:realm:passwd, or for -sess H(username:realm:passwd):nonce:cnonce.
    let mut ha1 = alg.hex(
        format!(
            "{}:{}:{}",
            credentials.username, challenge.realm, credentials.password
        )
        .as_bytes(),
    );
    if alg.is_sess() {
        ha1 = alg.hex(format!("{ha1}:{}:{cnonce}", challenge.nonce).as_bytes());
    }
    // §3.4.3: A2 = method:uri, or for auth-int method:uri:H(body).
    let a2 = match qop {
        Some(Qop::AuthInt) => format!(
            "{}:{}:{}",
            request.method,
            request.uri,
            alg.hex(request.body)
        ),
        _ => format!("{}:{}", request.method, request.uri),
    };
    let ha2 = alg.hex(a2.as_bytes());
    // §3.4.1: with a qop, KD(H(A1), nonce:nc:cnonce:qop:H(A2)); RFC 2069 form without.
    let response = match qop {
        Some(qop) => alg.hex(
            format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:{}:{ha2}",
                challenge.nonce,
                qop.as_str()
            )
            .as_bytes(),
        ),
        None => alg.hex(format!("{ha1}:{}:{ha2}", challenge.nonce).as_bytes()),
    };
    let username = if challenge.userhash {
        alg.hex(format!("{}:{}", credentials.username, challenge.realm).as_bytes())
    } else {
        credentials.username.clone()
    };
    Authorization {
        username,
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: request.uri.to_owned(),
        response,
        algorithm: alg,
        cnonce: (qop.is_some() || alg.is_sess()).then(|| cnonce.to_owned()),
        opaque: challenge.opaque.clone(),
        qop: qop.map(|qop| (qop, nc)),
        userhash: challenge.userhash,
    }
}

impl fmt::Display for Authorization {
    /// RFC 3261 §25.1 `credentials`: quoted strings except `algorithm`, `qop` and `nc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.as_str()
        )?;
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", quote(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", quote(opaque))?;
        }
        if let Some((qop, nc)) = self.qop {
            write!(f, ", qop={}, nc={nc:08x}", qop.as_str())?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa() -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
        }
    }

    /// RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
    const RFC7616_CHALLENGE: &str = r#"Digest
        realm="http-auth@example.org",
        qop="auth, auth-int",
        algorithm=ALG,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const GET_INDEX: RequestInfo<'static> = RequestInfo {
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    };

    fn rfc7616(alg: &str) -> Authorization {
        let challenge = Challenge::parse(&RFC7616_CHALLENGE.replace("ALG", alg)).unwrap();
        assert_eq!(challenge.qop, [Qop::Auth, Qop::AuthInt]);
        assert_eq!(challenge.chosen_qop(), Some(Qop::Auth));
        authorize(&challenge, &mufasa(), GET_INDEX, 1, RFC7616_CNONCE)
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let auth = rfc7616("SHA-256");
        assert_eq!(
            auth.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(
            auth.to_string(),
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             algorithm=SHA-256, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn rfc7616_md5_vector() {
        assert_eq!(rfc7616("MD5").response, "8ca523f5e9506fed4657c9700eebdbec");
    }

    /// RFC 2617 §3.5, the classic MD5 example (qop=auth, no algorithm parameter).
    #[test]
    fn rfc2617_md5_vector() {
        let challenge = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let credentials = Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let auth = authorize(&challenge, &credentials, GET_INDEX, 1, "0a4f113b");
        assert_eq!(auth.response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // H(H(A1):nonce:H(A2)) with no cnonce or nc on the wire.
        let challenge =
            Challenge::parse(r#"Digest realm="r", nonce="n", stale=TRUE, algorithm=md5"#).unwrap();
        assert!(challenge.stale);
        let credentials = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let request = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let auth = authorize(&challenge, &credentials, request, 1, "c");
        let ha1 = hex(&Md5::digest(b"u:r:p"));
        let ha2 = hex(&Md5::digest(b"REGISTER:sip:r"));
        assert_eq!(auth.response, hex(&Md5::digest(format!("{ha1}:n:{ha2}"))));
        assert_eq!(auth.cnonce, None);
        assert!(!auth.to_string().contains("nc="));
    }

    #[test]
    fn sess_and_auth_int() {
        let challenge = Challenge::parse(
            r#"Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256-sess"#,
        )
        .unwrap();
        let credentials = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let request = RequestInfo {
            method: "MESSAGE",
            uri: "sip:a@b",
            body: b"hi",
        };
        let auth = authorize(&challenge, &credentials, request, 2, "c");
        let h = |s: String| hex(&Sha256::digest(s));
        let ha1 = h(format!("{}:n:c", h("u:r:p".into())));
        let ha2 = h(format!("MESSAGE:sip:a@b:{}", h("hi".into())));
        assert_eq!(
            auth.response,
            h(format!("{ha1}:n:00000002:c:auth-int:{ha2}"))
        );
        assert!(auth.to_string().ends_with("qop=auth-int, nc=00000002"));
    }

    #[test]
    fn select_prefers_the_strongest_supported() {
        let chosen = Challenge::select([
            r#"Digest realm="r", nonce="a", algorithm=MD5"#,
            r#"Digest realm="r", nonce="b", algorithm=SHA-1024"#,
            r#"Digest realm="r", nonce="c", algorithm=SHA-256"#,
        ])
        .unwrap();
        assert_eq!(
            (chosen.algorithm, chosen.nonce.as_str()),
            (Algorithm::Sha256, "c")
        );
        assert_eq!(
            Challenge::select([r#"Digest realm="r", nonce="b", algorithm=SHA-1024"#]),
            Err(DigestError::UnsupportedAlgorithm("SHA-1024".into()))
        );
        assert_eq!(Challenge::select([]), Err(DigestError::NoChallenge));
        assert_eq!(
            Challenge::parse(r#"Basic realm="r""#),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="x""#),
            Err(DigestError::UnsupportedQop("x".into()))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r""#),
            Err(DigestError::Malformed("no nonce"))
        );
    }

    #[test]
    fn userhash_and_debug_hides_password() {
        let challenge =
            Challenge::parse(r#"Digest realm="r", nonce="n", qop=auth, userhash=true"#).unwrap();
        let auth = authorize(&challenge, &mufasa(), GET_INDEX, 1, "c");
        assert_eq!(auth.username, hex(&Md5::digest(b"Mufasa:r")));
        assert!(auth.to_string().ends_with("userhash=true"));
        assert!(!format!("{:?}", mufasa()).contains("Circle"));
    }
}
