//! Registration flows scripted by time against a fake registrar: first REGISTER bytes in both
//! Contact styles, 401 then 200, refresh with the cached nonce, stale nonce, wrong password,
//! 423, a 200 listing several bindings, the received/rport warning, keepalives, failures with
//! back-off, timeout, mapping change and unregister.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::digest::Credentials;
use sip_proto::register::{
    ConfigError, ContactStyle, Event, FailureReason, RegisterConfig, Registration,
    RegistrationState, Warning, KEEPALIVE,
};
use sip_proto::{parse, uas, Contacts, Message, SipHeaders, Uri};

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("vectors/", $name)).as_slice()
    };
}

const CHALLENGE: &str =
    r#"Digest realm="snomag.de", nonce="4f1a2b3c", qop="auth", algorithm=MD5, opaque="op""#;

fn registrar() -> SocketAddr {
    "203.0.113.10:5060".parse().unwrap()
}

/// Where the mapping says we are, and where the registrar sees us when the NAT agrees.
fn public() -> SocketAddr {
    "203.0.113.1:60123".parse().unwrap()
}

fn config() -> RegisterConfig {
    let mut config = RegisterConfig::new(
        Uri::parse("sip:km@snomag.de").unwrap(),
        registrar(),
        "192.168.0.91:5060".parse().unwrap(),
        "plugline-boot-1@192.168.0.91",
    );
    config.display_name = Some("km".into());
    config.public = Some(public());
    config.user_agent = Some("Plugline/0.1".into());
    config.credentials = Some(Credentials {
        username: "km".into(),
        password: "secret".into(),
    });
    config
}

/// Bytes 0, 1, 2, ... (mod 36): tokens read `0123456789abcdef...`.
fn counter() -> impl FnMut(&mut [u8]) {
    let mut n = 0u32;
    move |dest: &mut [u8]| {
        for byte in dest {
            *byte = u8::try_from(n % 36).unwrap();
            n += 1;
        }
    }
}

type Reg = Registration<Box<dyn FnMut(&mut [u8])>>;

fn start(t0: Instant, config: RegisterConfig) -> Reg {
    Registration::new(t0, config, Box::new(counter()) as Box<dyn FnMut(&mut [u8])>).unwrap()
}

/// The next REGISTER on the wire (panics if the next datagram is something else).
fn next_register(reg: &mut Reg) -> Vec<u8> {
    let transmit = reg.poll_transmit().expect("a REGISTER is due");
    assert_eq!(transmit.destination, registrar());
    assert!(transmit.payload.starts_with(b"REGISTER "), "{transmit:?}");
    transmit.payload
}

/// The registrar's answer to `request`, with `received`/`rport` for source `seen`.
fn reply(
    request: &[u8],
    code: u16,
    reason: &str,
    extra: &[(&str, &str)],
    seen: SocketAddr,
) -> Vec<u8> {
    let message = parse(request).unwrap();
    let mut tag = |dest: &mut [u8]| dest.fill(7);
    let mut response = uas::response_to(&message, seen, &mut tag, code, reason).unwrap();
    for (name, value) in extra {
        response.push_header(name, value).unwrap();
    }
    response.to_bytes()
}

fn feed(reg: &mut Reg, now: Instant, response: &[u8]) {
    assert!(reg.handle_response(now, &parse(response).unwrap()));
}

fn events(reg: &mut Reg) -> Vec<Event> {
    std::iter::from_fn(|| reg.poll_event()).collect()
}

fn header<'a>(message: &'a Message<'_>, name: &str) -> &'a str {
    message.header(name).unwrap_or_default()
}

/// The Contact of our REGISTER, as the registrar would list it, with `expires`.
fn our_contact(request: &[u8], expires: u32) -> String {
    let message = parse(request).unwrap();
    format!("{};expires={expires}", header(&message, "Contact"))
}

#[test]
fn first_register_public_style_bytes() {
    let mut reg = start(Instant::now(), config());
    assert_eq!(next_register(&mut reg), vector!("ours-register-public.sip"));
    assert_eq!(reg.poll_transmit(), None);
}

#[test]
fn first_register_snom_style_bytes() {
    let mut config = config();
    config.contact_style = ContactStyle::SnomRoute;
    let mut reg = start(Instant::now(), config);
    assert_eq!(next_register(&mut reg), vector!("ours-register-snom.sip"));
}

#[test]
fn challenge_then_200_then_refresh_with_cached_nonce() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    let unauthorized = reply(
        &first,
        401,
        "Unauthorized",
        &[("WWW-Authenticate", CHALLENGE)],
        public(),
    );
    feed(&mut reg, t0, &unauthorized);
    assert!(events(&mut reg).is_empty());

    let second = next_register(&mut reg);
    assert_eq!(second, vector!("ours-register-public-auth.sip"));

    // The registrar lists our binding with the expiry it grants.
    let contact = our_contact(&second, 1800);
    let ok = reply(&second, 200, "OK", &[("Contact", &contact)], public());
    let t1 = t0 + Duration::from_millis(40);
    feed(&mut reg, t1, &ok);
    assert_eq!(
        events(&mut reg),
        [Event::Registered {
            expires: Duration::from_secs(1800)
        }]
    );
    assert_eq!(reg.state(), RegistrationState::Registered);
    assert_eq!(
        reg.binding_expires_at(),
        Some(t1 + Duration::from_secs(1800))
    );

    // The next deadlines: Timer K of the finished transaction, then keepalives every 25 s.
    let mut keepalives = 0;
    while let Some(at) = reg.poll_timeout() {
        if at >= t1 + Duration::from_secs(900) {
            break;
        }
        reg.handle_timeout(at);
        while let Some(transmit) = reg.poll_transmit() {
            assert_eq!(transmit.payload, KEEPALIVE);
            assert_eq!(transmit.destination, registrar());
            keepalives += 1;
        }
    }
    assert_eq!(keepalives, 35, "900 s / 25 s, the last one at 875 s");
    assert_eq!(
        reg.poll_timeout(),
        Some(t1 + Duration::from_secs(900)),
        "refresh half-way"
    );

    reg.handle_timeout(t1 + Duration::from_secs(900));
    let refresh = next_register(&mut reg);
    let refresh = parse(&refresh).unwrap();
    assert_eq!(reg.state(), RegistrationState::Registering);
    assert_eq!(refresh.cseq().unwrap().seq, 3);
    assert_eq!(refresh.call_id().unwrap(), "plugline-boot-1@192.168.0.91");
    assert_eq!(refresh.from().unwrap().tag(), Some("0123456789"));
    let auth = header(&refresh, "Authorization");
    assert!(
        auth.contains(r#"nonce="4f1a2b3c""#) && auth.ends_with("nc=00000002"),
        "{auth}"
    );
    assert_ne!(
        refresh.top_via().unwrap().branch(),
        parse(&second).unwrap().top_via().unwrap().branch()
    );
}

#[test]
fn stale_nonce_is_answered_again() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", CHALLENGE)],
            public(),
        ),
    );
    let second = next_register(&mut reg);
    // The nonce expired between challenge and answer: stale=true with a new nonce.
    let stale = r#"Digest realm="snomag.de", nonce="99aa", qop="auth", stale=true"#;
    feed(
        &mut reg,
        t0,
        &reply(
            &second,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", stale)],
            public(),
        ),
    );
    assert!(events(&mut reg).is_empty(), "stale is not a failure");
    let third = next_register(&mut reg);
    let third_message = parse(&third).unwrap();
    let auth = header(&third_message, "Authorization");
    assert!(
        auth.contains(r#"nonce="99aa""#) && auth.ends_with("nc=00000001"),
        "{auth}"
    );
    feed(
        &mut reg,
        t0,
        &reply(
            &third,
            200,
            "OK",
            &[("Contact", &our_contact(&third, 3600))],
            public(),
        ),
    );
    assert_eq!(
        events(&mut reg),
        [Event::Registered {
            expires: Duration::from_secs(3600)
        }]
    );
}

#[test]
fn wrong_password_fails_with_back_off() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", CHALLENGE)],
            public(),
        ),
    );
    let second = next_register(&mut reg);
    // A fresh challenge right after our answer, not stale: the password is wrong.
    let again = r#"Digest realm="snomag.de", nonce="5b5b", qop="auth""#;
    feed(
        &mut reg,
        t0,
        &reply(
            &second,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", again)],
            public(),
        ),
    );
    let retry_at = t0 + Duration::from_secs(30);
    assert_eq!(
        events(&mut reg),
        [Event::Failed {
            reason: FailureReason::AuthenticationFailed {
                realm: "snomag.de".into()
            },
            retry_at: Some(retry_at)
        }]
    );
    assert_eq!(reg.poll_transmit(), None);
    assert_eq!(reg.state(), RegistrationState::WaitingToRetry);

    // The retry answers the cached challenge again; a second failure waits twice as long.
    reg.handle_timeout(retry_at);
    let retry = next_register(&mut reg);
    let forbidden = reply(&retry, 403, "Forbidden", &[], public());
    feed(&mut reg, retry_at, &forbidden);
    let Ok::<[Event; 1], _>(
        [Event::Failed {
            reason,
            retry_at: Some(next),
        }],
    ) = events(&mut reg).try_into()
    else {
        panic!("expected one failure");
    };
    assert!(reason.is_permanent());
    assert_eq!(
        reason.to_string(),
        "registrar refused the registration: 403 Forbidden (account not allowed to register)"
    );
    assert_eq!(next, retry_at + Duration::from_secs(60));
}

#[test]
fn no_credentials_is_a_clear_failure() {
    let t0 = Instant::now();
    let mut config = config();
    config.credentials = None;
    config.retry = None;
    let mut reg = start(t0, config);
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            401,
            "Unauthorized",
            &[("WWW-Authenticate", CHALLENGE)],
            public(),
        ),
    );
    assert_eq!(
        events(&mut reg),
        [Event::Failed {
            reason: FailureReason::NoCredentials,
            retry_at: None
        }]
    );
    assert_eq!(
        reg.poll_timeout().map(|at| at > t0),
        Some(true),
        "only Timer K is left"
    );
    // Without automatic retry the caller decides when to try again.
    reg.register(t0 + Duration::from_secs(5));
    assert_eq!(
        parse(&next_register(&mut reg)).unwrap().cseq().unwrap().seq,
        2
    );
}

#[test]
fn interval_too_brief_raises_expires() {
    let t0 = Instant::now();
    let mut config = config();
    config.expires = 60;
    let mut reg = start(t0, config);
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            423,
            "Interval Too Brief",
            &[("Min-Expires", "600")],
            public(),
        ),
    );
    let second = next_register(&mut reg);
    let message = parse(&second).unwrap();
    assert_eq!(message.expires().unwrap(), Some(600));
    assert_eq!(message.cseq().unwrap().seq, 2);
    assert_eq!(reg.requested_expires(), 600);
    // No expires parameter on the Contact: the Expires header counts (§10.2.4).
    let contact = header(&message, "Contact").to_owned();
    feed(
        &mut reg,
        t0,
        &reply(
            &second,
            200,
            "OK",
            &[("Contact", &contact), ("Expires", "600")],
            public(),
        ),
    );
    assert_eq!(
        events(&mut reg),
        [Event::Registered {
            expires: Duration::from_secs(600)
        }]
    );

    // A 423 whose Min-Expires is no higher than what we asked is a failure, not a loop.
    let mut reg = start(t0, self::config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            423,
            "Interval Too Brief",
            &[("Min-Expires", "60")],
            public(),
        ),
    );
    assert!(matches!(
        events(&mut reg)[..],
        [Event::Failed {
            reason: FailureReason::IntervalTooBrief {
                min_expires: Some(60)
            },
            ..
        }]
    ));
}

#[test]
fn our_expiry_is_found_among_many_contacts() {
    let t0 = Instant::now();
    let mut config = config();
    config.contact_style = ContactStyle::SnomRoute;
    let mut reg = start(t0, config);
    let first = next_register(&mut reg);
    // Other phones of the same account, one even with the same private address behind
    // another NAT; ours echoed with its parameters reordered and an expires of 120.
    let contacts = [
        "<sip:km@192.168.0.91:5060?Route=sip:198.51.100.7:5060>;expires=3000",
        "\"Desk\" <sip:km@198.51.100.20:5062>;expires=1000;q=0.5",
        "<sip:km@192.168.0.91:5060?Route=sip:203.0.113.1:60123>;q=1.0;expires=120",
    ];
    let ok = reply(
        &first,
        200,
        "OK",
        &[
            ("Contact", &contacts[..2].join(", ")),
            ("m", contacts[2]),
            ("Expires", "3600"),
        ],
        public(),
    );
    feed(&mut reg, t0, &ok);
    assert_eq!(
        events(&mut reg),
        [Event::Registered {
            expires: Duration::from_secs(120)
        }]
    );
    assert_eq!(
        reg.poll_timeout(),
        Some(t0 + Duration::from_secs(5)),
        "Timer K"
    );
    reg.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        reg.poll_timeout(),
        Some(t0 + Duration::from_secs(25)),
        "keepalive"
    );
}

#[test]
fn unlisted_contact_warns_and_uses_expires_header() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    let rewritten = "<sip:km@198.51.100.99:4000>;expires=900";
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            200,
            "OK",
            &[("Contact", rewritten), ("Expires", "1200")],
            public(),
        ),
    );
    assert_eq!(
        events(&mut reg),
        [
            Event::Warning(Warning::ContactNotListed {
                contact: "sip:km@203.0.113.1:60123".into(),
                expires: 1200
            }),
            Event::Registered {
                expires: Duration::from_secs(1200)
            }
        ]
    );
}

#[test]
fn received_and_rport_mismatch_warns_once() {
    let t0 = Instant::now();
    let mut config = config();
    config.keepalive = None;
    let mut reg = start(t0, config);
    let first = next_register(&mut reg);
    // The NAT sent our packet from port 5060, not from the mapped 60123.
    let seen: SocketAddr = "203.0.113.1:5060".parse().unwrap();
    let ok = reply(
        &first,
        200,
        "OK",
        &[("Contact", &our_contact(&first, 600))],
        seen,
    );
    assert!(String::from_utf8_lossy(&ok).contains(";rport=5060;received=203.0.113.1"));
    feed(&mut reg, t0, &ok);
    let events_now = events(&mut reg);
    let warning = Warning::AddressMismatch {
        mapped: public(),
        seen_ip: seen.ip(),
        seen_port: Some(5060),
    };
    assert_eq!(
        events_now,
        [
            Event::Warning(warning.clone()),
            Event::Registered {
                expires: Duration::from_secs(600)
            }
        ]
    );
    assert_eq!(
        warning.to_string(),
        "registrar sees our requests coming from 203.0.113.1:5060 but we announce \
         203.0.113.1:60123: the NAT does not use the mapped address for outgoing packets, so \
         calls may not reach us"
    );

    // The refresh sees the same thing: no second warning.
    let refresh_at = t0 + Duration::from_secs(300);
    reg.handle_timeout(refresh_at);
    let refresh = next_register(&mut reg);
    feed(
        &mut reg,
        refresh_at,
        &reply(
            &refresh,
            200,
            "OK",
            &[("Contact", &our_contact(&refresh, 600))],
            seen,
        ),
    );
    assert_eq!(
        events(&mut reg),
        [Event::Registered {
            expires: Duration::from_secs(600)
        }]
    );

    // Another public IP altogether is reported too.
    let mut reg = start(t0, self::config());
    let first = next_register(&mut reg);
    let elsewhere: SocketAddr = "198.51.100.1:60123".parse().unwrap();
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            200,
            "OK",
            &[("Contact", &our_contact(&first, 600))],
            elsewhere,
        ),
    );
    assert!(
        events(&mut reg).contains(&Event::Warning(Warning::AddressMismatch {
            mapped: public(),
            seen_ip: elsewhere.ip(),
            seen_port: Some(60123),
        }))
    );
}

#[test]
fn unregister_on_shutdown() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            200,
            "OK",
            &[("Contact", &our_contact(&first, 3600))],
            public(),
        ),
    );
    events(&mut reg);

    let t1 = t0 + Duration::from_secs(10);
    reg.unregister(t1);
    let bye = next_register(&mut reg);
    assert_eq!(bye, vector!("ours-unregister-public.sip"));
    assert_eq!(reg.state(), RegistrationState::Unregistering);
    // The registrar answers with the remaining bindings (none of ours).
    feed(&mut reg, t1, &reply(&bye, 200, "OK", &[], public()));
    assert_eq!(events(&mut reg), [Event::Unregistered]);
    assert!(reg.is_closed());
    assert_eq!(reg.poll_transmit(), None);
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn unregister_answers_a_challenge_and_closes_on_failure() {
    let t0 = Instant::now();
    let mut config = config();
    config.credentials = Some(Credentials {
        username: "km".into(),
        password: "secret".into(),
    });
    let mut reg = start(t0, config);
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            200,
            "OK",
            &[("Contact", &our_contact(&first, 3600))],
            public(),
        ),
    );
    events(&mut reg);
    reg.unregister(t0);
    let bye = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &bye,
            407,
            "Proxy Authentication Required",
            &[("Proxy-Authenticate", CHALLENGE)],
            public(),
        ),
    );
    let bye_auth = next_register(&mut reg);
    let message = parse(&bye_auth).unwrap();
    assert_eq!(message.expires().unwrap(), Some(0));
    assert!(header(&message, "Proxy-Authorization").starts_with("Digest username=\"km\""));
    feed(
        &mut reg,
        t0,
        &reply(&bye_auth, 500, "Server Error", &[], public()),
    );
    assert_eq!(
        events(&mut reg),
        [Event::Failed {
            reason: FailureReason::Rejected {
                code: 500,
                reason: "Server Error".into()
            },
            retry_at: None
        }]
    );
    assert!(reg.is_closed());
}

#[test]
fn unregister_while_the_first_register_is_in_flight() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    // The first REGISTER may already have reached the registrar: unregister anyway.
    reg.unregister(t0);
    assert_eq!(reg.state(), RegistrationState::Unregistering);
    assert!(matches!(
        parse(&next_register(&mut reg)).unwrap().expires(),
        Ok(Some(0))
    ));
}

#[test]
fn timeout_after_64_t1_then_retry() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let mut sent = 0;
    let mut now = t0;
    while reg.state() == RegistrationState::Registering {
        while reg.poll_transmit().is_some() {
            sent += 1;
        }
        now = reg.poll_timeout().unwrap();
        reg.handle_timeout(now);
    }
    assert_eq!(sent, 11);
    assert_eq!(now, t0 + Duration::from_secs(32));
    let Ok::<[Event; 1], _>([Event::Failed { reason, retry_at }]) = events(&mut reg).try_into()
    else {
        panic!("one failure");
    };
    assert_eq!(reason, FailureReason::Timeout);
    assert_eq!(retry_at, Some(now + Duration::from_secs(30)));
    reg.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(
        parse(&next_register(&mut reg)).unwrap().cseq().unwrap().seq,
        2
    );
}

#[test]
fn retry_after_lengthens_the_delay() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            503,
            "Service Unavailable",
            &[("Retry-After", "120 (maintenance)")],
            public(),
        ),
    );
    assert!(matches!(
        events(&mut reg)[..],
        [Event::Failed { retry_at: Some(at), .. }] if at == t0 + Duration::from_secs(120)
    ));
}

#[test]
fn mapping_change_reregisters_with_the_new_contact() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    feed(
        &mut reg,
        t0,
        &reply(
            &first,
            200,
            "OK",
            &[("Contact", &our_contact(&first, 3600))],
            public(),
        ),
    );
    events(&mut reg);
    let moved: SocketAddr = "203.0.113.1:61000".parse().unwrap();
    reg.set_public_address(t0 + Duration::from_secs(60), Some(moved));
    let again = next_register(&mut reg);
    let message = parse(&again).unwrap();
    assert_eq!(message.top_via().unwrap().sent_by(), "203.0.113.1:61000");
    let Contacts::Addresses(contacts) = message.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(contacts[0].uri, "sip:km@203.0.113.1:61000");
    // Same value again: nothing new is sent.
    reg.set_public_address(t0 + Duration::from_secs(61), Some(moved));
    assert_eq!(reg.poll_transmit(), None);
    // No mapping at all: the local address is announced.
    reg.set_public_address(t0 + Duration::from_secs(62), None);
    let local = parse(&next_register(&mut reg))
        .unwrap()
        .top_via()
        .unwrap()
        .sent_by();
    assert_eq!(local, "192.168.0.91:5060");
}

#[test]
fn retransmitted_200_is_absorbed() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = next_register(&mut reg);
    let ok = reply(
        &first,
        200,
        "OK",
        &[("Contact", &our_contact(&first, 3600))],
        public(),
    );
    feed(&mut reg, t0, &ok);
    assert_eq!(events(&mut reg).len(), 1);
    feed(&mut reg, t0 + Duration::from_secs(1), &ok);
    assert!(events(&mut reg).is_empty());
    // After Timer K the transaction is gone and the copy is a stray.
    reg.handle_timeout(t0 + Duration::from_secs(5));
    assert!(!reg.handle_response(t0 + Duration::from_secs(6), &parse(&ok).unwrap()));
}

#[test]
fn bad_configurations_are_refused() {
    let t0 = Instant::now();
    let new = |config| Registration::new(t0, config, counter()).err();
    let mut c = config();
    c.user_agent = Some("evil\r\nVia: x".into());
    assert_eq!(new(c), Some(ConfigError::ControlCharacter("user_agent")));
    let mut c = config();
    c.expires = 0;
    assert_eq!(new(c), Some(ConfigError::ZeroExpires));
    let mut c = config();
    c.call_id = "two words".into();
    assert_eq!(new(c), Some(ConfigError::InvalidCallId));
    let mut c = config();
    c.timers.t1 = Duration::MAX;
    assert_eq!(new(c), Some(ConfigError::IntervalTooLong));
    let mut c = config();
    c.aor = Uri::parse("sips:km@snomag.de").unwrap();
    assert_eq!(new(c), Some(ConfigError::SipsOverUdp));
    let mut c = config();
    c.contact_params = vec![sip_proto::Param::new("description", Some("\"unbalanced"))];
    assert!(matches!(new(c), Some(ConfigError::Unparsable(_))));
}
