//! The fast path of map changes: nf_tables netlink messages from the process itself.
//!
//! One change (one [`Change`], or a delete + add replacing a key) is ONE netlink batch
//! (`NFNL_MSG_BATCH_BEGIN`, one `NFT_MSG_NEWSETELEM` / `NFT_MSG_DELSETELEM` per change,
//! `NFNL_MSG_BATCH_END`) written to a `NETLINK_NETFILTER` socket the backend keeps open, so
//! the kernel applies it in one transaction and no process hop is involved. Each element
//! message asks for an ACK; the kernel's `NLMSG_ERROR` answers (0 = applied) are read back
//! before [`Socket::apply`] returns.
//!
//! The encoding is what `nft add element ip plugline udp_dnat { 8080 : 192.168.0.91 . 80 }`
//! sends (nftables 1.0.6, captured with strace; see the byte-exact tests below): the key is
//! the 2-byte port in network order (an attribute pads it to 4 bytes), the data is the
//! `ipv4_addr . inet_service` concatenation, 4 bytes of address then the port in a 4-byte
//! register slot (2 bytes, 2 zero bytes). Two differences from nft: every element message
//! carries `NLM_F_ACK` (nft relies on errors only), and no `NFTA_SET_ELEM_LIST_SET_ID` (nft
//! adds it for sets created in the same batch; ours exist already).
//!
//! Semantics match the nft path: `NEWSETELEM` with `NLM_F_CREATE` and without `NLM_F_EXCL`
//! succeeds when the element exists with the same data and fails with `EEXIST` when the key
//! maps to another target (the kernel has no `NLM_F_REPLACE` for set elements); the caller
//! then sends a delete and an add in one batch.
//!
//! A netlink socket belongs to the network namespace of the thread that creates it: with an
//! empty command prefix the socket is created in the caller's namespace; with the prefix
//! `ip netns exec <name>` it is created on a short-lived thread that `setns()`'d into
//! `/run/netns/<name>`; any other prefix gets no socket (the caller stays on `nft -i`).

use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use super::{map_name, Change};
use crate::Protocol;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
/// `SOL_NETLINK` and its `NETLINK_CAP_ACK` option (acks without the echoed request).
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_IPV4: u8 = 2;
const NFNETLINK_V0: u8 = 0;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

/// Size of the receive buffer: acks are 36 bytes; an error with an extended ack is small too.
const RECV_BUF: usize = 16 * 1024;

/// A small netlink message builder over a `Vec<u8>` (native byte order for the netlink
/// headers, as the kernel expects; attribute payloads are given ready-encoded).
struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    fn new() -> Builder {
        Builder { buf: Vec::new() }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Starts a message (nlmsghdr + nfgenmsg); returns its offset for [`end_msg`](Self::end_msg).
    fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn end_msg(&mut self, start: usize) {
        self.pad();
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(ty, &data);
    }

    /// Starts a nested attribute; returns its offset for [`end_nest`](Self::end_nest).
    fn begin_nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end_nest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// Appends the `NEWSETELEM` / `DELSETELEM` message of `change` to `b`.
fn encode_change(b: &mut Builder, table: &str, change: &Change, seq: u32, ack: bool) {
    let ack = if ack { NLM_F_ACK } else { 0 };
    let (ty, flags, protocol, port) = match change {
        Change::Add(f) => (
            NFT_MSG_NEWSETELEM,
            NLM_F_REQUEST | NLM_F_CREATE | ack,
            f.protocol,
            f.external_port,
        ),
        Change::Delete(p, port) => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | ack, *p, *port),
    };
    let msg = b.begin_msg(
        (NFNL_SUBSYS_NFTABLES << 8) | ty,
        flags,
        seq,
        NFPROTO_IPV4,
        0,
    );
    b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    b.attr_str(NFTA_SET_ELEM_LIST_SET, map_name(protocol));
    let elements = b.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let elem = b.begin_nest(NFTA_LIST_ELEM);
    let key = b.begin_nest(NFTA_SET_ELEM_KEY);
    b.attr(NFTA_DATA_VALUE, &port.to_be_bytes());
    b.end_nest(key);
    if let Change::Add(f) = change {
        let data = b.begin_nest(NFTA_SET_ELEM_DATA);
        let mut value = [0u8; 8];
        value[..4].copy_from_slice(&f.internal_client.octets());
        value[4..6].copy_from_slice(&f.internal_port.to_be_bytes());
        b.attr(NFTA_DATA_VALUE, &value);
        b.end_nest(data);
    }
    b.end_nest(elem);
    b.end_nest(elements);
    b.end_msg(msg);
}

/// The key of `protocol . port` in an `inet_proto . inet_service` set: each part in its own
/// 4-byte register slot (the protocol number, then the port in network order).
fn proto_port_key(protocol: Protocol, port: u16) -> [u8; 8] {
    let number = match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    };
    let p = port.to_be_bytes();
    [number, 0, 0, 0, p[0], p[1], 0, 0]
}

/// The `GETSETELEM` request for one key of `set` (not batched: reads are not transactions),
/// as `nft get element ip <table> <set> { udp . 5000 }` sends it, plus `NLM_F_ACK`.
fn encode_get(table: &str, set: &str, key: &[u8], seq: u32) -> Vec<u8> {
    let mut b = Builder::new();
    let msg = b.begin_msg(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_IPV4,
        0,
    );
    b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    let elements = b.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let elem = b.begin_nest(NFTA_LIST_ELEM);
    let k = b.begin_nest(NFTA_SET_ELEM_KEY);
    b.attr(NFTA_DATA_VALUE, key);
    b.end_nest(k);
    b.end_nest(elem);
    b.end_nest(elements);
    b.end_msg(msg);
    b.buf
}

/// One batch: begin (sequence `seq`), one message per change (`seq + 1 …`), end.
fn encode_batch(table: &str, changes: &[Change], seq: u32, ack: bool) -> Vec<u8> {
    let mut b = Builder::new();
    let begin = b.begin_msg(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    b.end_msg(begin);
    let mut s = seq;
    for c in changes {
        s = s.wrapping_add(1);
        encode_change(&mut b, table, c, s, ack);
    }
    let end = b.begin_msg(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        s.wrapping_add(1),
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    b.end_msg(end);
    b.buf
}

/// What the kernel said about one message: (sequence number, errno; 0 = ok).
fn parse_acks(data: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= data.len() {
        let word =
            |at: usize| u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let len = word(off) as usize;
        if len < NLMSG_HDRLEN || off + len > data.len() {
            break;
        }
        let ty = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
        let seq = word(off + 8);
        if ty == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 {
            let errno = -(word(off + NLMSG_HDRLEN) as i32);
            out.push((seq, errno));
        }
        off += (len + 3) & !3;
    }
    out
}

/// The `NETLINK_NETFILTER` socket of a backend.
#[derive(Debug)]
pub(super) struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// Why a batch was not applied.
#[derive(Debug)]
pub(super) enum ApplyError {
    /// The kernel refused it: the errno.
    Refused(i32),
    /// The socket failed (or no answer in time): whether the batch was applied is unknown.
    Io(io::Error),
}

impl Socket {
    /// A socket for nft's namespace as `prefix` selects it: `None` when the prefix is not
    /// empty and not `ip netns exec <name>` (the caller stays on `nft -i`).
    pub(super) fn for_prefix(prefix: &[String], timeout: Duration) -> Option<io::Result<Socket>> {
        if prefix.is_empty() {
            return Some(Socket::open(timeout));
        }
        let name = netns_name(prefix)?;
        Some(Socket::open_in(name, timeout))
    }

    /// Opens the socket on a thread that entered `/run/netns/<name>`.
    fn open_in(name: &str, timeout: Duration) -> io::Result<Socket> {
        let path = format!("/run/netns/{name}");
        let ns = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        thread::Builder::new()
            .name("netlink-netns".into())
            .spawn(move || {
                // SAFETY: `ns` is an open namespace file for the whole call; setns(2) with
                // CLONE_NEWNET only changes the network namespace of this short-lived thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Socket::open(timeout)
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netlink namespace thread panicked")))
    }

    /// Opens and binds the socket in the calling thread's network namespace.
    fn open(timeout: Duration) -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int and its size is passed; the fd is open. Failure only
        // means acks echo the request (older kernels): harmless, so the result is ignored.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&one as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        // SAFETY: `tv` is a live timeval and its size is passed; the fd is open.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let addr = kernel_addr();
        // SAFETY: `addr` is a live sockaddr_nl (pid 0: the kernel assigns our port id) and
        // its size is passed; the fd is open.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket {
            fd,
            // Any start works; a distinct one per socket keeps traces readable.
            seq: std::process::id().wrapping_mul(1000),
            buf: vec![0; RECV_BUF],
        })
    }

    /// Applies `changes` to `table` in one batch and waits for the kernel's answer to each.
    pub(super) fn apply(&mut self, table: &str, changes: &[Change]) -> Result<(), ApplyError> {
        let first = self.seq.wrapping_add(1);
        let n = changes.len() as u32;
        // Begin, the changes, end: fresh sequence numbers, so late answers to an earlier
        // batch (after a failure we stopped reading at) are recognised and skipped.
        self.seq = self.seq.wrapping_add(n + 2);
        let batch = encode_batch(table, changes, first, true);
        self.send(&batch).map_err(ApplyError::Io)?;
        let in_batch = |seq: u32| seq.wrapping_sub(first) <= n + 1;
        let mut acked = 0u32;
        while acked < n {
            let got = self.recv().map_err(ApplyError::Io)?;
            for (seq, errno) in parse_acks(&self.buf[..got]) {
                if !in_batch(seq) {
                    continue;
                }
                if errno != 0 {
                    return Err(ApplyError::Refused(errno));
                }
                // Only the element messages ask for an ACK.
                if seq != first && seq != first.wrapping_add(n + 1) {
                    acked += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether `set` of `table` holds `protocol . port` (an `inet_proto . inet_service` set).
    pub(super) fn set_holds(
        &mut self,
        table: &str,
        set: &str,
        protocol: Protocol,
        port: u16,
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&encode_get(
            table,
            set,
            &proto_port_key(protocol, port),
            seq,
        ))?;
        // Found: the element, then the ACK (errno 0). Not found: only the error, ENOENT.
        loop {
            let got = self.recv()?;
            for (s, errno) in parse_acks(&self.buf[..got]) {
                if s != seq {
                    continue;
                }
                return match errno {
                    0 => Ok(true),
                    libc::ENOENT => Ok(false),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
        }
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        let addr = kernel_addr();
        loop {
            // SAFETY: `data` and `addr` are live for the call and their sizes are passed.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return if rc as usize == data.len() {
                    Ok(())
                } else {
                    Err(io::Error::other("short netlink send"))
                };
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram from the kernel into `self.buf`; returns its length.
    fn recv(&mut self) -> io::Result<usize> {
        loop {
            let mut from = kernel_addr();
            let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: `self.buf`, `from` and `from_len` are live and writable for the call,
            // and the sizes passed are theirs.
            let rc = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the kernel",
                        ))
                    }
                    _ => return Err(e),
                }
            }
            // Only the kernel's answers count.
            if from.nl_pid != 0 {
                continue;
            }
            return Ok(rc as usize);
        }
    }
}

/// The kernel's netlink address.
fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all zeros is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// `<name>` of a prefix `ip netns exec <name>` (`ip` possibly given as a path).
fn netns_name(prefix: &[String]) -> Option<&str> {
    match prefix {
        [ip, netns, exec, name]
            if (ip == "ip" || ip.ends_with("/ip"))
                && netns == "netns"
                && exec == "exec"
                && !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains('/') =>
        {
            Some(name)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Forward, Protocol};
    use std::net::Ipv4Addr;

    /// `nft add element ip plugline udp_dnat { 8080 : 192.168.0.91 . 80 }` (nftables 1.0.6,
    /// strace of its sendmsg): batch begin seq 0, NEWSETELEM seq 1, batch end seq 2.
    #[rustfmt::skip]
    const NFT_ADD: &[u8] = &[
        // BATCH_BEGIN: len 20, type 16, flags REQUEST, seq 0, pid 0; AF_UNSPEC, v0, res_id 10
        20, 0, 0, 0,  16, 0,  1, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10,
        // NEWSETELEM: len 96, type 10 << 8 | 12, flags REQUEST | CREATE, seq 1; AF_INET
        96, 0, 0, 0,  12, 10,  1, 4,  1, 0, 0, 0,  0, 0, 0, 0,  2, 0, 0, 0,
        // NFTA_SET_ELEM_LIST_TABLE "plugline", NFTA_SET_ELEM_LIST_SET "udp_dnat"
        13, 0, 1, 0,  b'p', b'l', b'u', b'g', b'l', b'i', b'n', b'e', 0, 0, 0, 0,
        13, 0, 2, 0,  b'u', b'd', b'p', b'_', b'd', b'n', b'a', b't', 0, 0, 0, 0,
        // NFTA_SET_ELEM_LIST_SET_ID 1 (nft only; we leave it out)
        8, 0, 4, 0,  0, 0, 0, 1,
        // ELEMENTS { LIST_ELEM { KEY { VALUE 8080 } DATA { VALUE 192.168.0.91 . 80 } } }
        36, 0, 3, 0x80,
        32, 0, 1, 0x80,
        12, 0, 1, 0x80,  6, 0, 1, 0,  0x1f, 0x90, 0, 0,
        16, 0, 2, 0x80,  12, 0, 1, 0,  192, 168, 0, 91,  0, 80, 0, 0,
        // BATCH_END: len 20, type 17, flags REQUEST, seq 2; AF_UNSPEC, v0, res_id 10
        20, 0, 0, 0,  17, 0,  1, 0,  2, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10,
    ];

    /// `nft delete element ip plugline udp_dnat { 8080 }` (same capture).
    #[rustfmt::skip]
    const NFT_DELETE: &[u8] = &[
        20, 0, 0, 0,  16, 0,  1, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10,
        // DELSETELEM: len 72, type 10 << 8 | 14, flags REQUEST, seq 1; AF_INET
        72, 0, 0, 0,  14, 10,  1, 0,  1, 0, 0, 0,  0, 0, 0, 0,  2, 0, 0, 0,
        13, 0, 1, 0,  b'p', b'l', b'u', b'g', b'l', b'i', b'n', b'e', 0, 0, 0, 0,
        13, 0, 2, 0,  b'u', b'd', b'p', b'_', b'd', b'n', b'a', b't', 0, 0, 0, 0,
        // ELEMENTS { LIST_ELEM { KEY { VALUE 8080 } } }
        20, 0, 3, 0x80,
        16, 0, 1, 0x80,
        12, 0, 1, 0x80,  6, 0, 1, 0,  0x1f, 0x90, 0, 0,
        20, 0, 0, 0,  17, 0,  1, 0,  2, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10,
    ];

    fn forward() -> Forward {
        Forward {
            protocol: Protocol::Udp,
            external_port: 8080,
            internal_client: Ipv4Addr::new(192, 168, 0, 91),
            internal_port: 80,
        }
    }

    /// `nft get element ip plt flowed { udp . 5000 }` (nftables 1.0.6, strace), sequence 1.
    #[rustfmt::skip]
    const NFT_GET_FLOWED: &[u8] = &[
        // GETSETELEM: len 64, type 10 << 8 | 13, flags REQUEST | ACK, seq 1; AF_INET
        64, 0, 0, 0,  13, 10,  5, 0,  1, 0, 0, 0,  0, 0, 0, 0,  2, 0, 0, 0,
        11, 0, 2, 0,  b'f', b'l', b'o', b'w', b'e', b'd', 0, 0,
        8, 0, 1, 0,  b'p', b'l', b't', 0,
        // ELEMENTS { LIST_ELEM { KEY { VALUE udp (17) . 5000 } } }
        24, 0, 3, 0x80,
        20, 0, 1, 0x80,
        16, 0, 1, 0x80,  12, 0, 1, 0,  17, 0, 0, 0,  0x13, 0x88, 0, 0,
    ];

    #[test]
    #[cfg(target_endian = "little")]
    fn get_matches_nft_bytes() {
        let key = proto_port_key(Protocol::Udp, 5000);
        assert_eq!(encode_get("plt", "flowed", &key, 1), NFT_GET_FLOWED);
        assert_eq!(proto_port_key(Protocol::Tcp, 80), [6, 0, 0, 0, 0, 80, 0, 0]);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn add_matches_nft_bytes() {
        // nft's bytes without the 8-byte SET_ID attribute (at offset 20 + 52).
        let mut expected = NFT_ADD.to_vec();
        expected.drain(72..80);
        expected[20] = 88;
        let ours = encode_batch("plugline", &[Change::Add(forward())], 0, false);
        assert_eq!(ours, expected);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn delete_matches_nft_bytes() {
        let ours = encode_batch("plugline", &[Change::Delete(Protocol::Udp, 8080)], 0, false);
        assert_eq!(ours, NFT_DELETE);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn replace_batch_and_ack_flags() {
        let f = Forward {
            protocol: Protocol::Tcp,
            ..forward()
        };
        let b = encode_batch(
            "plugline",
            &[Change::Delete(Protocol::Tcp, 8080), Change::Add(f)],
            41,
            true,
        );
        // begin 20 + delete 72 + add 88 + end 20.
        assert_eq!(b.len(), 200);
        // Sequence numbers 41..=44 and the ACK flag on the element messages only.
        let seq = |at: usize| u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]);
        let flags = |at: usize| u16::from_le_bytes([b[at + 6], b[at + 7]]);
        assert_eq!([seq(0), seq(20), seq(92), seq(180)], [41, 42, 43, 44]);
        assert_eq!(
            [flags(0), flags(20), flags(92), flags(180)],
            [1, 1 | 4, 1 | 4 | 0x400, 1]
        );
        // The delete's NFTA_SET_ELEM_LIST_SET payload.
        assert_eq!(&b[60..68], b"tcp_dnat");
    }

    #[test]
    fn reads_acks() {
        let mut data = Vec::new();
        for (seq, err) in [(7u32, 0i32), (8, -17)] {
            data.extend_from_slice(&36u32.to_ne_bytes());
            data.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            data.extend_from_slice(&0x100u16.to_ne_bytes());
            data.extend_from_slice(&seq.to_ne_bytes());
            data.extend_from_slice(&0u32.to_ne_bytes());
            data.extend_from_slice(&err.to_ne_bytes());
            data.extend_from_slice(&[0; 16]);
        }
        assert_eq!(parse_acks(&data), vec![(7, 0), (8, 17)]);
        assert_eq!(parse_acks(&data[..40]), vec![(7, 0)]);
    }

    #[test]
    fn netns_prefix() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            netns_name(&p(&["ip", "netns", "exec", "pl-gw-1"])),
            Some("pl-gw-1")
        );
        assert_eq!(
            netns_name(&p(&["/usr/sbin/ip", "netns", "exec", "gw"])),
            Some("gw")
        );
        assert_eq!(netns_name(&p(&["ip", "netns", "exec", "../x"])), None);
        assert_eq!(netns_name(&p(&["sudo"])), None);
        assert_eq!(netns_name(&p(&["ip", "netns", "exec", "gw", "env"])), None);
    }
}
