//! The HTTP/1.1 exchanges UPnP needs: GET of a description and POST of a SOAP envelope.
//!
//! hyper does the framing (chunked bodies, HTTP/1.0 routers, header parsing); this module adds
//! what a port-mapping client must enforce on top: one deadline for the whole exchange, a cap on
//! the body read (a hostile LAN host could otherwise stream forever), and the local address of
//! the connection, which is the address the gateway sees us as (the default internal client).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use crate::error::{Error, Result};

/// The User-Agent we send, so gateway logs show who asked.
pub const CLIENT_USER_AGENT: &str = concat!("plugline/", env!("CARGO_PKG_VERSION"), " UPnP/2.0");

/// A finished exchange.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// Our side of the TCP connection.
    pub local_addr: SocketAddr,
}

/// One HTTP exchange, bounded by `timeout` from connect to the last body byte and by `max_body`.
pub(crate) async fn exchange(
    method: Method,
    url: &Url,
    extra_headers: &[(&str, &str)],
    body: Vec<u8>,
    max_body: usize,
    timeout: Duration,
) -> Result<Answer> {
    let method_name: &'static str = if method == Method::POST {
        "POST"
    } else {
        "GET"
    };
    let what = format!("{method_name} {url}");
    match tokio::time::timeout(
        timeout,
        exchange_inner(method, url, extra_headers, body, max_body),
    )
    .await
    {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(reason)) => Err(Error::Http {
            method: method_name,
            url: url.to_string(),
            reason,
        }),
        Err(_) => Err(Error::Timeout {
            what,
            after: timeout,
        }),
    }
}

async fn exchange_inner(
    method: Method,
    url: &Url,
    extra_headers: &[(&str, &str)],
    body: Vec<u8>,
    max_body: usize,
) -> std::result::Result<Answer, String> {
    if url.scheme() != "http" {
        return Err("only http:// URLs are used by UPnP".into());
    }
    let host = url.host_str().ok_or("URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    // IPv6 literals keep their brackets in host_str(), which connect() cannot parse.
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((connect_host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let local_addr = stream.local_addr().map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection task ends by itself when the exchange is over or the peer closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });

    let path = match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    };
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, host_header)
        .header(USER_AGENT, CLIENT_USER_AGENT)
        .header(CONNECTION, "close");
    if !body.is_empty() {
        builder = builder
            .header(CONTENT_TYPE, "text/xml; charset=\"utf-8\"")
            .header(CONTENT_LENGTH, body.len());
    }
    for (name, value) in extra_headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    if let Some(len) = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_body as u64 {
            return Err(format!(
                "body of {len} bytes is over the limit of {max_body}"
            ));
        }
    }
    let body = Limited::new(response.into_body(), max_body)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("body is over the limit of {max_body} bytes")
            } else {
                format!("reading body: {e}")
            }
        })?
        .to_bytes();
    Ok(Answer {
        status,
        body,
        local_addr,
    })
}
