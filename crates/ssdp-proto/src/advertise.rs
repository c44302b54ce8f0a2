//! The device side of SSDP (UDA 2.0 §1.2, §1.3.3): which advertised targets answer a
//! search, the datagrams a device sends, when to re-announce, and how often to answer one
//! source.
//!
//! Like the rest of this crate it is pure: time comes in as `now: Instant`, datagrams go out
//! as `Vec<u8>` for the caller to send.
//!
//! - [`answers`] / [`matches()`]: the targets a `M-SEARCH` asks for. Matching is exact (plus
//!   `ssdp:all`): a gateway that serves both IGD:1 and IGD:2 descriptions lists both versions'
//!   targets, each with the `LOCATION` of its own description, so a search for
//!   `InternetGatewayDevice:1` gets the IGD:1 description and one for `…:2` the IGD:2 one.
//! - [`response`] and [`notify`]: the answer to a search and the `NOTIFY` advertisements.
//! - [`Announcer`]: when to multicast `ssdp:alive` again (at start, then every interval plus
//!   jitter).
//! - [`RateLimiter`]: a per-source token bucket, so one LAN host cannot make the gateway
//!   spend its time (or another host's bandwidth, with a spoofed source) answering searches.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::message::{Notify, NotifyKind, SearchRequest, SearchResponse};

/// The shortest interval between two rounds of `ssdp:alive`: 900 s (UDA 2.0 §1.2.2 asks for
/// re-advertisement well within `max-age`, which should be at least 1800 s; more often is
/// multicast noise). [`Announcer::new`] raises shorter intervals to this.
pub const MIN_NOTIFY_INTERVAL: Duration = Duration::from_secs(900);

/// The longest interval [`Announcer::new`] accepts: one day; longer ones are lowered to it
/// (an advertisement must be renewed before its `max-age` runs out anyway).
pub const MAX_NOTIFY_INTERVAL: Duration = Duration::from_secs(86_400);

/// The `CACHE-CONTROL: max-age` to advertise, and the smallest one [`response`] and
/// [`notify`] send: 1800 s (UDA 2.0 §1.2.2: "should be greater than or equal to 1800").
pub const DEFAULT_MAX_AGE: u32 = 1800;

/// The search target that matches every advertised target (UDA 2.0 §1.3.2).
const SSDP_ALL: &str = "ssdp:all";

/// One thing the device advertises and answers searches for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertised {
    /// `NT` in a NOTIFY; what a search's `ST` must equal.
    pub nt: String,
    /// `USN`: `uuid:…` or `uuid:…::<NT>`.
    pub usn: String,
    /// `LOCATION`: the URL of the root description that lists this target (the address of
    /// the interface it is advertised on).
    pub location: String,
}

/// Whether a search for `st` is answered by the target `target_nt`: `ssdp:all` (compared
/// case-insensitively) matches every target; anything else must equal the target exactly.
///
/// There is no version matching: a search for `…:Type:1` does not match a `…:Type:2`
/// target. The gateway lists each version's targets with that version's `LOCATION`, so
/// every searcher gets the description of the version it asked for.
pub fn matches(st: &str, target_nt: &str) -> bool {
    st.eq_ignore_ascii_case(SSDP_ALL) || st == target_nt
}

/// The targets that answer `search`, in the order of `targets` (nothing is deduplicated;
/// the result is never longer than `targets`).
pub fn answers<'a>(search: &SearchRequest<'_>, targets: &'a [Advertised]) -> Vec<&'a Advertised> {
    targets
        .iter()
        .filter(|target| matches(search.st, &target.nt))
        .collect()
}

/// What every answer and advertisement carries besides the target itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerParams<'a> {
    /// `SERVER`: `OS/version UPnP/2.0 product/version`.
    pub server: &'a str,
    /// `CACHE-CONTROL: max-age`, seconds; values below [`DEFAULT_MAX_AGE`] are raised to it.
    pub max_age: u32,
    /// `BOOTID.UPNP.ORG`: increased at every start of the gateway (a 31-bit value, UDA 2.0
    /// §1.2.2).
    pub boot_id: u32,
    /// `CONFIGID.UPNP.ORG`: the descriptions' `configId` (0..=16777215).
    pub config_id: u32,
}

/// The unicast answer to a search whose `ST` was `search_st`, for one matching `target`
/// (UDA 2.0 §1.3.3): `HTTP/1.1 200 OK` with CACHE-CONTROL, EXT, LOCATION, SERVER, ST, USN,
/// BOOTID.UPNP.ORG and CONFIGID.UPNP.ORG.
///
/// `ST` echoes the search target, except for `ssdp:all`, which is answered with the
/// target's own `NT` (§1.3.3: one answer per target, each naming what it is).
///
/// Returns an empty `Vec` when the datagram cannot be written (an empty field, or a value
/// with a control character that would inject headers; see
/// [`EmitError`](crate::EmitError)): nothing should be sent then.
pub fn response(search_st: &str, target: &Advertised, p: &AnswerParams<'_>) -> Vec<u8> {
    let st = if search_st.eq_ignore_ascii_case(SSDP_ALL) {
        target.nt.as_str()
    } else {
        search_st
    };
    let message = SearchResponse {
        st,
        usn: &target.usn,
        location: &target.location,
        max_age: Some(p.max_age.max(DEFAULT_MAX_AGE)),
        server: Some(p.server),
        boot_id: Some(p.boot_id),
        config_id: Some(p.config_id),
        headers: Vec::new(),
    };
    let mut out = Vec::with_capacity(384);
    match message.emit(&mut out) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// A multicast `NOTIFY` for one target (UDA 2.0 §1.2), to send to
/// [`MULTICAST_ENDPOINT_V4`](crate::MULTICAST_ENDPOINT_V4):
///
/// - `ssdp:alive`: LOCATION, CACHE-CONTROL, SERVER, BOOTID.UPNP.ORG, CONFIGID.UPNP.ORG;
/// - `ssdp:byebye`: no LOCATION, CACHE-CONTROL or SERVER; BOOTID and CONFIGID;
/// - `ssdp:update`: LOCATION, BOOTID, CONFIGID and `NEXTBOOTID.UPNP.ORG` =
///   `boot_id + 1` (wrapping within 31 bits); the caller then uses that value as its new
///   boot id.
///
/// Returns an empty `Vec` when the datagram cannot be written (see [`response`]).
pub fn notify(kind: NotifyKind, target: &Advertised, p: &AnswerParams<'_>) -> Vec<u8> {
    let alive = kind == NotifyKind::Alive;
    let message = Notify {
        nt: &target.nt,
        nts: kind,
        usn: &target.usn,
        location: kind.needs_location().then_some(target.location.as_str()),
        max_age: alive.then_some(p.max_age.max(DEFAULT_MAX_AGE)),
        server: alive.then_some(p.server),
        boot_id: Some(p.boot_id),
        config_id: Some(p.config_id),
        next_boot_id: (kind == NotifyKind::Update)
            .then_some(p.boot_id.wrapping_add(1) & 0x7FFF_FFFF),
        headers: Vec::new(),
    };
    let mut out = Vec::with_capacity(384);
    match message.emit(&mut out) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// When to multicast `ssdp:alive` for every target: once at start, then every interval plus
/// a jitter in `[0, interval / 10)`, so gateways started together do not announce together.
///
/// A pure state machine: the caller asks [`Announcer::poll_due`] whenever it wakes and sleeps
/// until [`Announcer::poll_timeout`]. When `poll_due` returns `true`, the caller sends
/// `ssdp:alive` for every target (UDA 2.0 §1.2.2 suggests each datagram more than once,
/// spaced a little apart; that spacing is the caller's). The jitter comes from a small
/// xorshift generator seeded by `jitter_seed`, so a schedule is reproducible in tests.
#[derive(Debug, Clone)]
pub struct Announcer {
    interval: Duration,
    next: Instant,
    rng: u64,
}

impl Announcer {
    /// A schedule whose first round is due at `now`. `interval` is clamped into
    /// [`MIN_NOTIFY_INTERVAL`]`..=`[`MAX_NOTIFY_INTERVAL`].
    pub fn new(now: Instant, interval: Duration, jitter_seed: u64) -> Self {
        Announcer {
            interval: interval.clamp(MIN_NOTIFY_INTERVAL, MAX_NOTIFY_INTERVAL),
            next: now,
            rng: seed(jitter_seed),
        }
    }

    /// The interval in use (after clamping).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether a round of `ssdp:alive` is due at `now`. Returns `true` once per round: the
    /// next round is then scheduled `interval + jitter` after `now` (a caller that wakes late
    /// gets one round, not a burst of missed ones).
    pub fn poll_due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        let delay = self.interval + self.jitter();
        // Cannot overflow for any real clock (the delay is at most 1.1 days); if it did,
        // announcing again at the next poll is the safe answer.
        self.next = now.checked_add(delay).unwrap_or(now);
        true
    }

    /// When the next round is due; sleep until then.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// Makes a round due at `now` (for example after the LAN address or a description
    /// changed); the schedule continues from there.
    pub fn announce_now(&mut self, now: Instant) {
        self.next = self.next.min(now);
    }

    /// A jitter in `[0, interval / 10)`, nanosecond resolution.
    fn jitter(&mut self) -> Duration {
        let range = u64::try_from((self.interval / 10).as_nanos()).unwrap_or(u64::MAX);
        if range == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % range)
    }

    /// xorshift64 (Marsaglia 2003, shifts 13, 7, 17).
    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Spreads a seed over all 64 bits (one splitmix64 step), so that small or similar seeds give
/// unrelated schedules, and avoids xorshift's one fixed point, zero.
fn seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z == 0 {
        0x9E37_79B9_7F4A_7C15
    } else {
        z
    }
}

/// Token units per token: buckets count billionths of a token, so refilling at `per_second`
/// tokens per second adds exactly `per_second` units per elapsed nanosecond (no floats, no
/// rounding drift).
const UNIT: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
struct Bucket {
    /// Tokens left, in [`UNIT`]s.
    units: u64,
    /// When `units` was last brought up to date.
    updated: Instant,
    /// Position in the recency order (a key of [`RateLimiter::recency`]).
    stamp: u64,
}

/// A per-source token bucket for answering `M-SEARCH`: each source may be answered `burst`
/// times at once, then `per_second` times per second.
///
/// Memory is bounded: at most `max_sources` sources are tracked; when a new one arrives and
/// the table is full, the source seen least recently is forgotten (it starts again with a
/// full bucket if it comes back). A source that keeps sending is always recent, so it stays
/// tracked, and limited. IPv4-mapped IPv6 sources count as their IPv4 address. Each call costs
/// O(log max_sources).
///
/// One "allow" is one search answered, however many datagrams that answer takes; a caller
/// that wants to bound datagrams can call [`RateLimiter::allow`] once per datagram instead.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    capacity: u64,
    per_second: u64,
    max_sources: usize,
    buckets: BTreeMap<IpAddr, Bucket>,
    /// Sources by last use, oldest first.
    recency: BTreeMap<u64, IpAddr>,
    next_stamp: u64,
}

impl RateLimiter {
    /// A limiter allowing `burst` answers at once and `per_second` answers per second after
    /// that, per source, tracking at most `max_sources` sources (at least 1). `burst` 0
    /// refuses everything; `per_second` 0 allows only the first `burst`.
    pub fn new(burst: u32, per_second: u32, max_sources: usize) -> Self {
        RateLimiter {
            capacity: u64::from(burst) * UNIT,
            per_second: u64::from(per_second),
            max_sources: max_sources.max(1),
            buckets: BTreeMap::new(),
            recency: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    /// Whether to answer a search from `source` at `now`; a `true` uses one token.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let source = source.to_canonical();
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let bucket = match self.buckets.get_mut(&source) {
            Some(bucket) => {
                let elapsed = now.saturating_duration_since(bucket.updated);
                let refill = elapsed
                    .as_nanos()
                    .saturating_mul(u128::from(self.per_second));
                let units = u128::from(bucket.units).saturating_add(refill);
                bucket.units = u64::try_from(units).unwrap_or(u64::MAX).min(self.capacity);
                bucket.updated = bucket.updated.max(now);
                self.recency.remove(&bucket.stamp);
                bucket.stamp = stamp;
                bucket
            }
            None => {
                if self.buckets.len() >= self.max_sources {
                    if let Some((_, oldest)) = self.recency.pop_first() {
                        self.buckets.remove(&oldest);
                    }
                }
                self.buckets.entry(source).or_insert(Bucket {
                    units: self.capacity,
                    updated: now,
                    stamp,
                })
            }
        };
        self.recency.insert(stamp, source);
        if bucket.units >= UNIT {
            bucket.units -= UNIT;
            true
        } else {
            false
        }
    }

    /// How many sources are tracked (at most `max_sources`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::message::{parse, Message};

    const IGD1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
    const IGD2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
    const LOC1: &str = "http://192.168.1.1:5000/rootDesc1.xml";
    const LOC2: &str = "http://192.168.1.1:5000/rootDesc.xml";

    fn target(nt: &str, usn: &str, location: &str) -> Advertised {
        Advertised {
            nt: nt.to_owned(),
            usn: usn.to_owned(),
            location: location.to_owned(),
        }
    }

    fn targets() -> Vec<Advertised> {
        vec![
            target("upnp:rootdevice", "uuid:r::upnp:rootdevice", LOC2),
            target("uuid:r", "uuid:r", LOC2),
            target(IGD2, &format!("uuid:r::{IGD2}"), LOC2),
            target(IGD1, &format!("uuid:r::{IGD1}"), LOC1),
        ]
    }

    const PARAMS: AnswerParams<'static> = AnswerParams {
        server: "Linux/6.1 UPnP/2.0 plugline/0.1",
        max_age: 1800,
        boot_id: 7,
        config_id: 42,
    };

    #[test]
    fn matching_is_exact_except_ssdp_all() {
        assert!(matches("ssdp:all", IGD1));
        assert!(matches("SSDP:ALL", "uuid:r"));
        assert!(matches(IGD1, IGD1));
        assert!(!matches(IGD1, IGD2));
        assert!(!matches(IGD2, IGD1));
        assert!(!matches("upnp:rootdevice", "uuid:r"));
        assert!(!matches("", IGD1));
    }

    #[test]
    fn answers_pick_the_searched_version() {
        let targets = targets();
        let st = |st: &str| {
            let search = SearchRequest::new(st, 2);
            answers(&search, &targets)
                .into_iter()
                .map(|t| t.location.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(st(IGD1), [LOC1]);
        assert_eq!(st(IGD2), [LOC2]);
        assert_eq!(st("upnp:rootdevice"), [LOC2]);
        assert_eq!(st("ssdp:all").len(), targets.len());
        assert!(st("urn:schemas-upnp-org:device:InternetGatewayDevice:3").is_empty());
        assert!(st("uuid:other").is_empty());
    }

    fn parse_response(datagram: &[u8]) -> SearchResponse<'_> {
        match parse(datagram).unwrap() {
            Message::Response(response) => response,
            other => panic!("not a response: {other:?}"),
        }
    }

    fn parse_notify(datagram: &[u8]) -> Notify<'_> {
        match parse(datagram).unwrap() {
            Message::Notify(notify) => notify,
            other => panic!("not a notify: {other:?}"),
        }
    }

    #[test]
    fn responses() {
        let targets = targets();
        let datagram = response(IGD1, &targets[3], &PARAMS);
        let r = parse_response(&datagram);
        assert_eq!(r.st, IGD1);
        assert_eq!(r.usn, format!("uuid:r::{IGD1}"));
        assert_eq!(r.location, LOC1);
        assert_eq!(r.max_age, Some(1800));
        assert_eq!(r.server, Some(PARAMS.server));
        assert_eq!((r.boot_id, r.config_id), (Some(7), Some(42)));
        assert!(r
            .headers
            .iter()
            .any(|h| h.name == "EXT" && h.value.is_empty()));

        // ssdp:all is answered with each target's own NT.
        for t in &targets {
            let datagram = response("ssdp:all", t, &PARAMS);
            let r = parse_response(&datagram);
            assert_eq!(r.st, t.nt);
            assert_eq!(r.usn, t.usn);
        }

        // max-age is never below 1800; larger values pass.
        let short = AnswerParams {
            max_age: 60,
            ..PARAMS
        };
        let datagram = response(IGD1, &targets[3], &short);
        assert_eq!(parse_response(&datagram).max_age, Some(DEFAULT_MAX_AGE));
        let long = AnswerParams {
            max_age: 3600,
            ..PARAMS
        };
        let datagram = response(IGD1, &targets[3], &long);
        assert_eq!(parse_response(&datagram).max_age, Some(3600));

        // Values that would inject headers give no datagram at all.
        let hostile = target(IGD1, "uuid:r", "http://h/\r\nX-Evil: 1");
        assert!(response(IGD1, &hostile, &PARAMS).is_empty());
        assert!(response("a\r\nb", &targets[3], &PARAMS).is_empty());
        let bad_server = AnswerParams {
            server: "x\ny",
            ..PARAMS
        };
        assert!(response(IGD1, &targets[3], &bad_server).is_empty());
    }

    #[test]
    fn notifies() {
        let t = &targets()[2];
        let datagram = notify(NotifyKind::Alive, t, &PARAMS);
        let n = parse_notify(&datagram);
        assert_eq!(n.nts, NotifyKind::Alive);
        assert_eq!((n.nt, n.usn), (t.nt.as_str(), t.usn.as_str()));
        assert_eq!(n.location, Some(LOC2));
        assert_eq!(n.max_age, Some(1800));
        assert_eq!(n.server, Some(PARAMS.server));
        assert_eq!((n.boot_id, n.config_id), (Some(7), Some(42)));
        assert_eq!(n.next_boot_id, None);
        assert!(datagram.starts_with(b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"));

        let datagram = notify(NotifyKind::ByeBye, t, &PARAMS);
        let n = parse_notify(&datagram);
        assert_eq!(n.nts, NotifyKind::ByeBye);
        assert_eq!((n.location, n.max_age, n.server), (None, None, None));
        assert_eq!((n.boot_id, n.config_id), (Some(7), Some(42)));
        let text = String::from_utf8(datagram.clone()).unwrap();
        assert!(!text.contains("LOCATION"));

        let datagram = notify(NotifyKind::Update, t, &PARAMS);
        let n = parse_notify(&datagram);
        assert_eq!(n.nts, NotifyKind::Update);
        assert_eq!(n.location, Some(LOC2));
        assert_eq!((n.boot_id, n.next_boot_id), (Some(7), Some(8)));
        let wrap = AnswerParams {
            boot_id: 0x7FFF_FFFF,
            ..PARAMS
        };
        let datagram = notify(NotifyKind::Update, t, &wrap);
        assert_eq!(parse_notify(&datagram).next_boot_id, Some(0));

        let hostile = target("a\rb", "uuid:r", LOC2);
        assert!(notify(NotifyKind::Alive, &hostile, &PARAMS).is_empty());
        assert!(notify(NotifyKind::ByeBye, &hostile, &PARAMS).is_empty());
        // A byebye needs no location, so an empty one is fine there only.
        let nowhere = target(IGD2, "uuid:r", "");
        assert!(notify(NotifyKind::Alive, &nowhere, &PARAMS).is_empty());
        assert!(!notify(NotifyKind::ByeBye, &nowhere, &PARAMS).is_empty());
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn announcer_schedule() {
        let t0 = Instant::now();
        let mut a = Announcer::new(t0, S(900), 1);
        assert_eq!(a.interval(), S(900));
        assert_eq!(a.poll_timeout(), t0);
        assert!(a.poll_due(t0), "due at start");
        assert!(!a.poll_due(t0), "once");
        let mut due = a.poll_timeout();
        for _ in 0..50 {
            // Not early, and exactly once when due.
            assert!(!a.poll_due(due - Duration::from_nanos(1)));
            assert!(a.poll_due(due));
            assert!(!a.poll_due(due));
            let next = a.poll_timeout();
            let gap = next - due;
            assert!(gap >= S(900) && gap < S(990), "{gap:?}");
            due = next;
        }

        // A late caller gets one round, scheduled from when it woke.
        let late = due + S(10_000);
        assert!(a.poll_due(late));
        assert!(!a.poll_due(late));
        assert!(a.poll_timeout() >= late + S(900));

        // announce_now brings the round forward, never back.
        let now = late + S(1);
        a.announce_now(now);
        assert_eq!(a.poll_timeout(), now);
        a.announce_now(now + S(5));
        assert_eq!(a.poll_timeout(), now);
        assert!(a.poll_due(now));
    }

    fn gaps(seed: u64, interval: Duration, rounds: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut a = Announcer::new(t0, interval, seed);
        assert!(a.poll_due(t0));
        let mut out = Vec::new();
        let mut now = t0;
        for _ in 0..rounds {
            let next = a.poll_timeout();
            out.push(next - now);
            now = next;
            assert!(a.poll_due(now));
        }
        out
    }

    #[test]
    fn announcer_jitter_is_deterministic_bounded_and_spread() {
        assert_eq!(gaps(7, S(1000), 20), gaps(7, S(1000), 20));
        assert_ne!(gaps(7, S(1000), 20), gaps(8, S(1000), 20));
        assert_ne!(gaps(0, S(1000), 20), gaps(1, S(1000), 20));
        let all = gaps(0, S(1000), 1000);
        assert!(all.iter().all(|g| *g >= S(1000) && *g < S(1100)));
        let distinct: HashSet<_> = all.iter().collect();
        assert!(distinct.len() > 990);
        // Both halves of the jitter range are used.
        assert!(all.iter().any(|g| *g < S(1050)));
        assert!(all.iter().any(|g| *g >= S(1050)));
    }

    #[test]
    fn announcer_interval_is_clamped() {
        let t0 = Instant::now();
        assert_eq!(Announcer::new(t0, S(10), 0).interval(), MIN_NOTIFY_INTERVAL);
        assert_eq!(
            Announcer::new(t0, Duration::ZERO, 0).interval(),
            MIN_NOTIFY_INTERVAL
        );
        assert_eq!(
            Announcer::new(t0, Duration::MAX, 0).interval(),
            MAX_NOTIFY_INTERVAL
        );
        let mut a = Announcer::new(t0, Duration::MAX, 0);
        assert!(a.poll_due(t0));
        assert!(a.poll_timeout() < t0 + S(86_400 + 8_641));
        assert!(gaps(3, S(1), 100)
            .iter()
            .all(|g| *g >= S(900) && *g < S(990)));
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, last))
    }

    #[test]
    fn rate_limiter_bucket_scripted() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(2, 1, 16);
        let a = v4(10);
        assert!(limiter.allow(t0, a));
        assert!(limiter.allow(t0, a));
        assert!(!limiter.allow(t0, a), "burst used up");
        assert!(!limiter.allow(t0 + MS(999), a), "not a whole token yet");
        assert!(limiter.allow(t0 + MS(1000), a), "one token after 1 s");
        assert!(!limiter.allow(t0 + MS(1000), a));
        assert!(!limiter.allow(t0 + MS(1500), a));
        assert!(limiter.allow(t0 + MS(2000), a), "the half token was kept");
        // A long quiet time refills only up to the burst.
        let later = t0 + S(3600);
        assert!(limiter.allow(later, a));
        assert!(limiter.allow(later, a));
        assert!(!limiter.allow(later, a));
        // Time going backwards never refills.
        assert!(!limiter.allow(t0, a));
        assert!(!limiter.allow(later, a));

        // Sources are independent, and an IPv4-mapped IPv6 source is the IPv4 one.
        let b = v4(11);
        assert!(limiter.allow(later, b));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 168, 1, 11).to_ipv6_mapped());
        assert!(limiter.allow(later, mapped));
        assert!(!limiter.allow(later, b));
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
        assert!(limiter.allow(later, v6));
        assert_eq!(limiter.len(), 3);
    }

    #[test]
    fn rate_limiter_rates() {
        let t0 = Instant::now();
        // 10 per second: exactly one token every 100 ms once the burst is spent.
        let mut limiter = RateLimiter::new(1, 10, 4);
        let a = v4(1);
        let allowed = (0..=1000)
            .filter(|ms| limiter.allow(t0 + MS(*ms), a))
            .count();
        assert_eq!(allowed, 11, "1 burst + 10 refills over one second");

        let mut never = RateLimiter::new(0, 100, 4);
        assert!(!never.allow(t0, a));
        assert!(never.is_empty());

        let mut once = RateLimiter::new(3, 0, 4);
        assert_eq!((0..10).filter(|s| once.allow(t0 + S(*s), a)).count(), 3);
    }

    #[test]
    fn rate_limiter_memory_is_bounded_and_evicts_least_recent() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, 1, 2);
        let (a, b, c) = (v4(1), v4(2), v4(3));
        assert!(limiter.allow(t0, a));
        assert!(limiter.allow(t0, b));
        // a is used again (refused, but seen): b is now the least recent.
        assert!(!limiter.allow(t0, a));
        assert!(limiter.allow(t0, c));
        assert_eq!(limiter.len(), 2);
        // a is still tracked (and still empty); b was forgotten, so it starts full.
        assert!(!limiter.allow(t0, a));
        assert!(limiter.allow(t0, b));
        assert_eq!(limiter.len(), 2);

        // A flood of distinct sources never grows the table past its bound.
        let mut limiter = RateLimiter::new(1, 1, 100);
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limiter.allow(t0, ip));
            assert!(limiter.len() <= 100);
        }
        assert_eq!(limiter.len(), 100);
        assert_eq!(limiter.recency.len(), 100);

        // max_sources 0 behaves as 1.
        let mut tiny = RateLimiter::new(1, 1, 0);
        assert!(tiny.allow(t0, a));
        assert!(!tiny.allow(t0, a));
        assert!(tiny.allow(t0, b));
        assert_eq!(tiny.len(), 1);
    }
}
