//! A minimal STUN server (RFC 5389): it answers each Binding Request with a Binding Success
//! Response whose XOR-MAPPED-ADDRESS is the request's source address and port.
//!
//! miniupnpd refuses a WAN address in a reserved range such as 203.0.113.0/24 unless it learns
//! it through STUN (`ext_perform_stun=yes`); with this responder on the wan host it concludes
//! that there is no filtering NAT and uses 203.0.113.1 (see [`crate::miniupnpd`]).
//!
//! Message layout (all big-endian): type (2 bytes, the two top bits zero), length of the
//! attributes (2), magic cookie `0x2112A442` (4), transaction id (12), then attributes of
//! type (2), length (2), value padded to 4 bytes. XOR-MAPPED-ADDRESS (`0x0020`) holds a zero
//! byte, the family (1 = IPv4, 2 = IPv6), the port XOR the cookie's top 16 bits, and the
//! address XOR the cookie (IPv4) or XOR cookie ‖ transaction id (IPv6).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The RFC 5389 magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Message type of a Binding Request.
pub const BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding Success Response.
pub const BINDING_SUCCESS: u16 = 0x0101;
/// Attribute type of XOR-MAPPED-ADDRESS.
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;

/// How long one `recv_from` blocks before the thread checks its stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);

/// Builds a Binding Request without attributes.
pub fn binding_request(transaction_id: [u8; 12]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_LEN);
    msg.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(&transaction_id);
    msg
}

/// The answer to `request` received from `sender`: a Binding Success Response with the same
/// transaction id and XOR-MAPPED-ADDRESS = `sender`, or `None` when `request` is not a
/// well-formed RFC 5389 Binding Request (its attributes, e.g. CHANGE-REQUEST, are ignored).
pub fn binding_response(request: &[u8], sender: SocketAddr) -> Option<Vec<u8>> {
    if request.len() < HEADER_LEN {
        return None;
    }
    let msg_type = u16::from_be_bytes([request[0], request[1]]);
    let length = usize::from(u16::from_be_bytes([request[2], request[3]]));
    let cookie = u32::from_be_bytes([request[4], request[5], request[6], request[7]]);
    if msg_type != BINDING_REQUEST
        || cookie != MAGIC_COOKIE
        || length % 4 != 0
        || HEADER_LEN + length != request.len()
    {
        return None;
    }
    let mut txid = [0u8; 12];
    txid.copy_from_slice(&request[8..HEADER_LEN]);

    let cookie_bytes = MAGIC_COOKIE.to_be_bytes();
    let xport = sender.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut value = vec![0u8];
    match sender.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&xport.to_be_bytes());
            value.extend(ip.octets().iter().zip(cookie_bytes).map(|(a, k)| a ^ k));
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&xport.to_be_bytes());
            let key = cookie_bytes.iter().chain(txid.iter());
            value.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
        }
    }
    let attr_len = value.len() as u16;
    let mut msg = Vec::with_capacity(HEADER_LEN + 4 + value.len());
    msg.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    msg.extend_from_slice(&(4 + attr_len).to_be_bytes());
    msg.extend_from_slice(&cookie_bytes);
    msg.extend_from_slice(&txid);
    msg.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    msg.extend_from_slice(&attr_len.to_be_bytes());
    msg.extend_from_slice(&value);
    Some(msg)
}

/// Decodes a Binding Success Response: its transaction id and XOR-MAPPED-ADDRESS.
pub fn parse_binding_response(response: &[u8]) -> Option<([u8; 12], SocketAddr)> {
    if response.len() < HEADER_LEN {
        return None;
    }
    let msg_type = u16::from_be_bytes([response[0], response[1]]);
    let length = usize::from(u16::from_be_bytes([response[2], response[3]]));
    let cookie = u32::from_be_bytes([response[4], response[5], response[6], response[7]]);
    if msg_type != BINDING_SUCCESS
        || cookie != MAGIC_COOKIE
        || HEADER_LEN + length != response.len()
    {
        return None;
    }
    let mut txid = [0u8; 12];
    txid.copy_from_slice(&response[8..HEADER_LEN]);
    let mut pos = HEADER_LEN;
    while pos + 4 <= response.len() {
        let attr = u16::from_be_bytes([response[pos], response[pos + 1]]);
        let len = usize::from(u16::from_be_bytes([response[pos + 2], response[pos + 3]]));
        let value = response.get(pos + 4..pos + 4 + len)?;
        if attr == XOR_MAPPED_ADDRESS && len >= 4 {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
            let cookie = MAGIC_COOKIE.to_be_bytes();
            let ip = match (value[1], len) {
                (0x01, 8) => {
                    let mut o = [0u8; 4];
                    for (i, b) in o.iter_mut().enumerate() {
                        *b = value[4 + i] ^ cookie[i];
                    }
                    IpAddr::V4(Ipv4Addr::from(o))
                }
                (0x02, 20) => {
                    let key: Vec<u8> = cookie.iter().chain(txid.iter()).copied().collect();
                    let mut o = [0u8; 16];
                    for (i, b) in o.iter_mut().enumerate() {
                        *b = value[4 + i] ^ key[i];
                    }
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                _ => return None,
            };
            return Some((txid, SocketAddr::new(ip, port)));
        }
        pos += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// A thread answering STUN Binding Requests on a UDP socket; stops (within ~100 ms) when
/// dropped.
#[derive(Debug)]
pub struct StunResponder {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    local: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl StunResponder {
    /// Starts answering on `socket` (already bound, e.g. to 203.0.113.10:3478 inside the wan
    /// namespace via [`crate::Netns::enter`]). Anything that is not a Binding Request is ignored.
    pub fn spawn(socket: UdpSocket) -> io::Result<StunResponder> {
        socket.set_read_timeout(Some(RECV_TIMEOUT))?;
        let local = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let answered = Arc::clone(&answered);
            thread::Builder::new()
                .name(format!("stun {local}"))
                .spawn(move || serve(&socket, &stop, &answered))?
        };
        Ok(StunResponder {
            stop,
            answered,
            local,
            thread: Some(thread),
        })
    }

    /// The address it answers on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many Binding Requests it has answered (or tried to answer) so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

fn serve(socket: &UdpSocket, stop: &AtomicBool, answered: &AtomicU64) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(reply) = binding_response(&buf[..n], from) {
                    // Counted before sending, so a client that got the answer sees the count.
                    answered.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&reply, from);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // E.g. ECONNREFUSED from an earlier reply: keep serving, but never spin.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Drop for StunResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn loopback_socket() -> UdpSocket {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    #[test]
    fn answers_a_binding_request_on_loopback() {
        let responder = StunResponder::spawn(loopback_socket()).unwrap();
        let client = loopback_socket();
        // Hand-built request: type 0x0001, length 0, magic cookie, transaction id.
        let txid = *b"plugline-123";
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        request.extend_from_slice(&txid);
        assert_eq!(request, binding_request(txid));
        client.send_to(&request, responder.local_addr()).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, responder.local_addr());
        let resp = &buf[..n];
        // Header: success response, 12 bytes of attributes, cookie, same transaction id.
        assert_eq!(&resp[0..4], &[0x01, 0x01, 0x00, 0x0C]);
        assert_eq!(&resp[4..8], &[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&resp[8..20], &txid);
        // XOR-MAPPED-ADDRESS by hand.
        assert_eq!(&resp[20..24], &[0x00, 0x20, 0x00, 0x08]);
        assert_eq!(resp[25], 0x01);
        let port = u16::from_be_bytes([resp[26], resp[27]]) ^ 0x2112;
        let ip = Ipv4Addr::new(
            resp[28] ^ 0x21,
            resp[29] ^ 0x12,
            resp[30] ^ 0xA4,
            resp[31] ^ 0x42,
        );
        let me = client.local_addr().unwrap();
        assert_eq!(SocketAddr::new(ip.into(), port), me);
        assert_eq!(parse_binding_response(resp), Some((txid, me)));
        assert_eq!(responder.answered(), 1);
    }

    #[test]
    fn ignores_other_messages_and_accepts_attributes() {
        let responder = StunResponder::spawn(loopback_socket()).unwrap();
        let client = loopback_socket();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 1500];
        // Not STUN, wrong cookie (RFC 3489 style), a response instead of a request.
        let mut old = binding_request([7; 12]);
        old[4] = 0;
        let mut resp = binding_request([7; 12]);
        resp[1] = 0x01;
        resp[0] = 0x01;
        for junk in [&b"hello"[..], &old[..], &resp[..]] {
            client.send_to(junk, responder.local_addr()).unwrap();
            assert!(client.recv_from(&mut buf).is_err(), "answered {junk:?}");
        }
        // A request with a CHANGE-REQUEST attribute (as miniupnpd sends) is answered.
        let mut req = binding_request([9; 12]);
        req[3] = 8;
        req.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x06]);
        client.send_to(&req, responder.local_addr()).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        let (txid, addr) = parse_binding_response(&buf[..n]).unwrap();
        assert_eq!(txid, [9; 12]);
        assert_eq!(addr, client.local_addr().unwrap());
    }

    #[test]
    fn ipv6_round_trip() {
        let sender: SocketAddr = "[2001:db8::1]:4242".parse().unwrap();
        let resp = binding_response(&binding_request([3; 12]), sender).unwrap();
        assert_eq!(parse_binding_response(&resp), Some(([3; 12], sender)));
    }

    #[test]
    fn drop_stops_promptly() {
        let responder = StunResponder::spawn(loopback_socket()).unwrap();
        let start = Instant::now();
        drop(responder);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
