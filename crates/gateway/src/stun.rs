//! Learning the public address from a STUN server (RFC 5389 Binding), for a gateway whose WAN
//! address is private (double NAT, CGNAT): the address clients should announce is the one the
//! internet sees, not the WAN interface's.
//!
//! The codec is a few pure functions; `query` is the thin I/O around them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

/// RFC 5389 §6 magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const MAPPED_ADDRESS: u16 = 0x0001;
const HEADER_LEN: usize = 20;
/// Attempts (UDP loses packets; RFC 5389 §7.2.1 retransmits).
pub const ATTEMPTS: u32 = 3;
/// Wait per attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

/// A Binding Request with this transaction id.
pub fn binding_request(transaction: [u8; 12]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..20].copy_from_slice(&transaction);
    out
}

/// The mapped IPv4 address of a Binding Success Response to `transaction`, or None for
/// anything else (another transaction, an error response, IPv6, a malformed message).
pub fn parse_binding_response(msg: &[u8], transaction: [u8; 12]) -> Option<SocketAddrV4> {
    if msg.len() < HEADER_LEN
        || u16::from_be_bytes([msg[0], msg[1]]) != BINDING_SUCCESS
        || u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]) != MAGIC_COOKIE
        || msg[8..20] != transaction
    {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let body = msg.get(HEADER_LEN..HEADER_LEN + len)?;
    let mut plain = None;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        if (kind == XOR_MAPPED_ADDRESS || kind == MAPPED_ADDRESS) && alen >= 8 && value[1] == 0x01 {
            let port = u16::from_be_bytes([value[2], value[3]]);
            let ip = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
            if kind == XOR_MAPPED_ADDRESS {
                let cookie = MAGIC_COOKIE;
                return Some(SocketAddrV4::new(
                    Ipv4Addr::from(ip ^ cookie),
                    port ^ (cookie >> 16) as u16,
                ));
            }
            plain = Some(SocketAddrV4::new(Ipv4Addr::from(ip), port));
        }
        // Attributes are padded to 4 bytes (RFC 5389 §15).
        at += 4 + alen.div_ceil(4) * 4;
    }
    plain
}

/// Ask `server` which address our packets from `from` arrive with.
pub async fn query(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<SocketAddrV4> {
    let socket = UdpSocket::bind((from, 0)).await?;
    let mut transaction = [0u8; 12];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id());
    transaction.copy_from_slice(&seed.to_be_bytes()[4..16]);
    let request = binding_request(transaction);
    let mut buf = [0u8; 512];
    for _ in 0..ATTEMPTS {
        socket.send_to(&request, server).await?;
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT;
        while let Ok(Ok((n, source))) =
            tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            if source != server {
                continue;
            }
            if let Some(mapped) = parse_binding_response(&buf[..n], transaction) {
                return Ok(mapped);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no STUN answer from {server}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(transaction: [u8; 12], mapped: SocketAddrV4) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        out.extend_from_slice(&12u16.to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&transaction);
        out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(mapped.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
        out.extend_from_slice(&(u32::from(*mapped.ip()) ^ MAGIC_COOKIE).to_be_bytes());
        out
    }

    #[test]
    fn round_trip_and_refusals() {
        let t = [7u8; 12];
        let mapped = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 77), 40000);
        let r = response(t, mapped);
        assert_eq!(parse_binding_response(&r, t), Some(mapped));
        assert_eq!(parse_binding_response(&r, [8u8; 12]), None);
        assert_eq!(parse_binding_response(&r[..25], t), None);
        assert_eq!(parse_binding_response(&binding_request(t), t), None);
        for cut in 0..r.len() {
            let _ = parse_binding_response(&r[..cut], t);
        }
    }

    #[tokio::test]
    async fn query_learns_the_mapped_address() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, HEADER_LEN);
            let mut t = [0u8; 12];
            t.copy_from_slice(&buf[8..20]);
            let mapped = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 77), 40000);
            server.send_to(&response(t, mapped), from).await.unwrap();
        });
        let got = query(Ipv4Addr::LOCALHOST, addr).await.unwrap();
        assert_eq!(got.ip(), &Ipv4Addr::new(198, 51, 100, 77));
        answer.await.unwrap();
    }
}
