//! The control point's search (UDA 2.0 §1.3): when to send each M-SEARCH, and which answers
//! are worth a look.
//!
//! UDP multicast is lossy, so UDA 2.0 §1.3.2 asks control points to send each search more than
//! once; [`Searcher`] sends every target at each offset of [`SearchConfig::schedule`] (by
//! default 0, 150, 450 and 1050 ms: early repeats catch a lost first datagram without waiting
//! for a long timeout). Answers arrive as unicast `HTTP/1.1 200 OK` (§1.3.3) and, from devices
//! that happen to advertise meanwhile, as multicast `NOTIFY ssdp:alive` (§1.2.2); both are
//! turned into [`Candidate`]s, one per description `LOCATION`, because a gateway answers once
//! per matching device and service and once per repeated search.
//!
//! [`Searcher`] is a pure state machine in the `quinn-proto` style. The caller owns the socket
//! and the clock:
//!
//! 1. send every datagram [`Searcher::poll_transmit`] returns to
//!    [`MULTICAST_ENDPOINT_V4`](crate::MULTICAST_ENDPOINT_V4), until it returns `None`;
//! 2. wait for a datagram or until [`Searcher::poll_timeout`], feeding every datagram received
//!    to [`Searcher::handle_datagram`];
//! 3. repeat; when `poll_timeout` is `None` all searches are sent, and answers are still due
//!    until [`Searcher::answers_due_until`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::message::{clamp_mx, parse, Message, NotifyKind, SearchRequest, MX_MIN};

/// When every target is sent, as offsets from the start of the search: 0, 150 ms, 450 ms and
/// 1050 ms (intervals doubling from 150 ms).
pub const DEFAULT_SCHEDULE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(150),
    Duration::from_millis(450),
    Duration::from_millis(1050),
];

/// The most distinct `LOCATION`s one [`Searcher`] remembers and reports; later new ones are
/// ignored. A home network has a handful of UPnP devices; the bound keeps a LAN host that
/// sprays fake answers from growing our memory.
pub const MAX_CANDIDATES: usize = 64;

/// What to search for, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchConfig {
    /// The search targets (`ST`), each sent in its own M-SEARCH, in this order. A target that
    /// is empty or contains a control character cannot be sent and is dropped.
    pub targets: Vec<String>,
    /// `MX` for every search, clamped to [`MX_MIN`]`..=`[`MX_MAX`](crate::MX_MAX). Default 1:
    /// a home gateway answers at once, and a small MX keeps discovery fast.
    pub mx: u8,
    /// Offsets from the start at which every target is (re)sent. Sorted and deduplicated by
    /// [`Searcher::new`]; offsets too large to add to the start instant are dropped.
    pub schedule: Vec<Duration>,
}

impl Default for SearchConfig {
    /// No targets, `mx` 1, [`DEFAULT_SCHEDULE`].
    fn default() -> Self {
        SearchConfig {
            targets: Vec::new(),
            mx: MX_MIN,
            schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

/// A device that answered one of our targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Who sent the answer.
    pub source: SocketAddr,
    /// `LOCATION`: the root device description URL (unique among one searcher's candidates).
    pub location: String,
    /// The target that matched, spelled as in [`SearchConfig::targets`] (the answer's `ST` or
    /// `NT` matched it case-insensitively).
    pub st: String,
    /// `USN` of the answer.
    pub usn: String,
    /// `SERVER` of the answer, if any.
    pub server: Option<String>,
    /// `BOOTID.UPNP.ORG` of the answer, if any (and well-formed).
    pub boot_id: Option<u32>,
}

/// The M-SEARCH schedule of one search and the filter for its answers.
///
/// Input: [`handle_datagram`](Self::handle_datagram) with every datagram received on the search
/// socket. Output: [`poll_transmit`](Self::poll_transmit) until it returns `None`, then sleep
/// until [`poll_timeout`](Self::poll_timeout). Nothing here reads a clock: `now` is passed in.
#[derive(Debug, Clone)]
pub struct Searcher {
    start: Instant,
    /// The sendable targets and their ready-made datagrams, in configuration order.
    targets: Vec<(String, Vec<u8>)>,
    mx: u8,
    /// Sorted, deduplicated send instants.
    rounds: Vec<Instant>,
    /// The next round to send (`rounds.len()` once all are sent).
    round: usize,
    /// The next target to send in `round`.
    target: usize,
    /// Every `LOCATION` reported so far.
    seen: HashSet<String>,
}

impl Searcher {
    /// A search starting at `now`: the first round is due at `now` plus the first offset.
    pub fn new(now: Instant, config: SearchConfig) -> Self {
        let mx = clamp_mx(config.mx.into());
        let targets: Vec<(String, Vec<u8>)> = config
            .targets
            .into_iter()
            .filter_map(|target| {
                let mut datagram = Vec::new();
                SearchRequest::new(&target, mx).emit(&mut datagram).ok()?;
                Some((target, datagram))
            })
            .collect();
        let mut rounds: Vec<Instant> = config
            .schedule
            .iter()
            .filter_map(|offset| now.checked_add(*offset))
            .collect();
        rounds.sort_unstable();
        rounds.dedup();
        // Without targets there is nothing to send: the schedule is done at once.
        let round = if targets.is_empty() { rounds.len() } else { 0 };
        Searcher {
            start: now,
            targets,
            mx,
            rounds,
            round,
            target: 0,
            seen: HashSet::new(),
        }
    }

    /// The next M-SEARCH datagram due at `now`, to be sent to 239.255.255.250:1900, or `None`
    /// when none is due. Call it again until it returns `None`: each call returns one datagram.
    ///
    /// A caller that polls late, past several rounds, gets one round for all of them: repeats
    /// sent back to back would be lost together, which defeats the reason for repeating.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        if self.target == 0 {
            // Starting a round: skip to the latest round already due.
            while self
                .rounds
                .get(self.round + 1)
                .is_some_and(|&next| next <= now)
            {
                self.round += 1;
            }
        }
        let (_, datagram) = self.targets.get(self.target)?;
        let datagram = datagram.clone();
        self.target += 1;
        if self.target == self.targets.len() {
            self.target = 0;
            self.round += 1;
        }
        Some(datagram)
    }

    /// When [`poll_transmit`](Self::poll_transmit) next has a datagram (possibly already past),
    /// or `None` when every round is sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rounds.get(self.round).copied()
    }

    /// When answers to the last search may still arrive: the last round plus `MX` seconds, the
    /// longest a device may wait before answering (UDA 2.0 §1.3.3). A caller that wants every
    /// answer listens until then; one that wants the first may stop at once.
    pub fn answers_due_until(&self) -> Instant {
        let last = self.rounds.last().copied().unwrap_or(self.start);
        last.checked_add(Duration::from_secs(self.mx.into()))
            .unwrap_or(last)
    }

    /// Looks at one received datagram and returns a new [`Candidate`] if it is a search
    /// response (`200 OK`) whose `ST` is one of the targets, or a `NOTIFY ssdp:alive` whose
    /// `NT` is one of the targets, at a `LOCATION` not reported before (the first answer for a
    /// location wins).
    ///
    /// Everything else returns `None`: malformed datagrams, other targets, M-SEARCHes (ours
    /// looped back, or other control points'), byebye and update notifications, repeated
    /// locations, and new locations beyond [`MAX_CANDIDATES`].
    pub fn handle_datagram(&mut self, source: SocketAddr, buf: &[u8]) -> Option<Candidate> {
        let (st, usn, location, server, boot_id) = match parse(buf).ok()? {
            Message::Response(response) => (
                response.st,
                response.usn,
                response.location,
                response.server,
                response.boot_id,
            ),
            Message::Notify(notify) if notify.nts == NotifyKind::Alive => (
                notify.nt,
                notify.usn,
                notify.location?,
                notify.server,
                notify.boot_id,
            ),
            Message::Notify(_) | Message::Search(_) => return None,
        };
        // Type URNs are case-sensitive in UDA 2.0, but some devices change the case of what they
        // echo; a false match costs one description fetch, a missed gateway costs the mapping.
        let (target, _) = self
            .targets
            .iter()
            .find(|(target, _)| target.eq_ignore_ascii_case(st))?;
        if self.seen.contains(location) || self.seen.len() >= MAX_CANDIDATES {
            return None;
        }
        self.seen.insert(location.to_owned());
        Some(Candidate {
            source,
            location: location.to_owned(),
            st: target.clone(),
            usn: usn.to_owned(),
            server: server.map(str::to_owned),
            boot_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MX_MAX;

    const IGD1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
    const IGD2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn searcher(start: Instant, targets: &[&str]) -> Searcher {
        Searcher::new(
            start,
            SearchConfig {
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
                ..SearchConfig::default()
            },
        )
    }

    fn drain(searcher: &mut Searcher, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| searcher.poll_transmit(now))
            .map(|datagram| match parse(&datagram) {
                Ok(Message::Search(search)) => search.st.to_owned(),
                other => panic!("not an M-SEARCH: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn default_schedule_by_time() {
        let start = Instant::now();
        let mut s = searcher(start, &[IGD2, IGD1]);
        assert_eq!(s.poll_timeout(), Some(start));
        assert_eq!(drain(&mut s, start), [IGD2, IGD1]);
        assert_eq!(s.poll_timeout(), Some(start + ms(150)));
        assert_eq!(drain(&mut s, start + ms(149)), Vec::<String>::new());
        assert_eq!(drain(&mut s, start + ms(150)), [IGD2, IGD1]);
        assert_eq!(s.poll_timeout(), Some(start + ms(450)));
        assert_eq!(drain(&mut s, start + ms(450)), [IGD2, IGD1]);
        assert_eq!(s.poll_timeout(), Some(start + ms(1050)));
        assert_eq!(drain(&mut s, start + ms(1049)), Vec::<String>::new());
        assert_eq!(drain(&mut s, start + ms(1060)), [IGD2, IGD1]);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(drain(&mut s, start + ms(5000)), Vec::<String>::new());
        assert_eq!(s.answers_due_until(), start + ms(2050));
    }

    #[test]
    fn a_round_half_sent_stays_due() {
        let start = Instant::now();
        let mut s = searcher(start, &[IGD2, IGD1]);
        assert!(s.poll_transmit(start).is_some());
        assert_eq!(s.poll_timeout(), Some(start));
        assert_eq!(drain(&mut s, start + ms(10)), [IGD1]);
    }

    #[test]
    fn late_polls_collapse_rounds() {
        let start = Instant::now();
        let mut s = searcher(start, &[IGD1]);
        assert_eq!(drain(&mut s, start + ms(500)), [IGD1]);
        assert_eq!(s.poll_timeout(), Some(start + ms(1050)));
    }

    #[test]
    fn custom_schedule_is_sorted_and_mx_clamped() {
        let start = Instant::now();
        let mut s = Searcher::new(
            start,
            SearchConfig {
                targets: vec![IGD1.into(), "bad\r\nX: y".into(), String::new()],
                mx: 9,
                schedule: vec![ms(300), ms(100), ms(300), Duration::MAX],
            },
        );
        assert_eq!(s.poll_timeout(), Some(start + ms(100)));
        let datagram = s.poll_transmit(start + ms(100)).unwrap();
        assert!(
            matches!(parse(&datagram), Ok(Message::Search(r)) if r.mx == MX_MAX && r.st == IGD1)
        );
        assert_eq!(s.poll_transmit(start + ms(100)), None);
        assert_eq!(drain(&mut s, start + ms(300)), [IGD1]);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.answers_due_until(), start + ms(5300));
    }

    #[test]
    fn no_targets_means_nothing_to_send() {
        let start = Instant::now();
        let mut s = searcher(start, &[]);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_transmit(start + ms(2000)), None);
    }

    fn response(st: &str, location: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nST: {st}\r\nUSN: uuid:gw::{st}\r\nLOCATION: {location}\r\n\
             SERVER: test/1\r\nBOOTID.UPNP.ORG: 9\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn answers_deduplicated_by_location() {
        let source: SocketAddr = "192.168.0.1:1900".parse().unwrap();
        let mut s = searcher(Instant::now(), &[IGD2, IGD1]);
        let first = s.handle_datagram(source, &response(&IGD1.to_uppercase(), "http://gw/d1.xml"));
        assert_eq!(
            first,
            Some(Candidate {
                source,
                location: "http://gw/d1.xml".into(),
                st: IGD1.into(),
                usn: format!("uuid:gw::{}", IGD1.to_uppercase()),
                server: Some("test/1".into()),
                boot_id: Some(9),
            })
        );
        assert_eq!(
            s.handle_datagram(source, &response(IGD1, "http://gw/d1.xml")),
            None
        );
        assert_eq!(
            s.handle_datagram(source, &response(IGD2, "http://gw/d1.xml")),
            None
        );
        let second = s
            .handle_datagram(source, &response(IGD2, "http://gw/d2.xml"))
            .unwrap();
        assert_eq!(second.st, IGD2);
    }

    #[test]
    fn ignores_what_is_not_an_answer() {
        let source: SocketAddr = "192.168.0.1:1900".parse().unwrap();
        let mut s = searcher(Instant::now(), &[IGD1]);
        let wrong_st = response(
            "urn:schemas-upnp-org:device:MediaServer:1",
            "http://gw/x.xml",
        );
        assert_eq!(s.handle_datagram(source, &wrong_st), None);
        let ours = s.poll_transmit(Instant::now()).unwrap();
        assert_eq!(s.handle_datagram(source, &ours), None);
        assert_eq!(s.handle_datagram(source, b"\x00garbage"), None);
        let notify = |nts: &str| {
            format!(
                "NOTIFY * HTTP/1.1\r\nNT: {IGD1}\r\nNTS: {nts}\r\nUSN: uuid:gw\r\n\
                 LOCATION: http://gw/n.xml\r\n\r\n"
            )
        };
        assert_eq!(
            s.handle_datagram(source, notify("ssdp:byebye").as_bytes()),
            None
        );
        assert_eq!(
            s.handle_datagram(source, notify("ssdp:update").as_bytes()),
            None
        );
        let alive = s
            .handle_datagram(source, notify("ssdp:alive").as_bytes())
            .unwrap();
        assert_eq!(
            (alive.location.as_str(), alive.st.as_str()),
            ("http://gw/n.xml", IGD1)
        );
    }

    #[test]
    fn candidates_are_bounded() {
        let source: SocketAddr = "192.168.0.66:1900".parse().unwrap();
        let mut s = searcher(Instant::now(), &[IGD1]);
        for i in 0..MAX_CANDIDATES {
            let answer = response(IGD1, &format!("http://x/{i}"));
            assert!(s.handle_datagram(source, &answer).is_some());
        }
        assert_eq!(
            s.handle_datagram(source, &response(IGD1, "http://x/last")),
            None
        );
    }
}
