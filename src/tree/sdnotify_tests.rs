use super::*;

#[test]
fn one_datagram_may_say_many_things() {
    let m = parse(b"READY=1\nSTATUS=serving 3 clients\nWATCHDOG=1\n");
    assert!(m.ready && m.watchdog && !m.stopping && !m.watchdog_trigger);
    assert_eq!(m.status.as_deref(), Some("serving 3 clients"));
    assert_eq!(m.extend, None);
    let m = parse(b"STOPPING=1\nEXTEND_TIMEOUT_USEC=5000000");
    assert!(m.stopping && !m.ready);
    assert_eq!(m.extend, Some(Duration::from_secs(5)));
}

#[test]
fn only_the_protocols_values_count() {
    assert_eq!(parse(b""), Message::default());
    assert_eq!(
        parse(b"READY=0\nREADY=yes\nREADY\nSTOPPING=2"),
        Message::default()
    );
    assert_eq!(parse(b"WATCHDOG=0\nWATCHDOG=\n"), Message::default());
    // Unknown keys and lines without `=` are ignored; values may hold `=`.
    let m = parse(b"MAINPID=7\nERRNO=2\nBUSERROR=x\nnonsense\nSTATUS=a=b\nREADY=1");
    assert!(m.ready);
    assert_eq!(m.status.as_deref(), Some("a=b"));
    assert!(parse(b"WATCHDOG=trigger").watchdog_trigger);
    // Keys are exact: no spaces, no case folding.
    assert_eq!(parse(b" READY=1\nready=1\nREADY =1"), Message::default());
    // The last STATUS wins; an empty one clears it to "".
    assert_eq!(parse(b"STATUS=a\nSTATUS=b").status.as_deref(), Some("b"));
    assert_eq!(parse(b"STATUS=").status.as_deref(), Some(""));
}

#[test]
fn extensions_are_numbers_and_capped() {
    assert_eq!(parse(b"EXTEND_TIMEOUT_USEC=x").extend, None);
    assert_eq!(parse(b"EXTEND_TIMEOUT_USEC=-1").extend, None);
    assert_eq!(parse(b"EXTEND_TIMEOUT_USEC=").extend, None);
    assert_eq!(parse(b"EXTEND_TIMEOUT_USEC=0").extend, Some(Duration::ZERO));
    assert_eq!(
        parse(b"EXTEND_TIMEOUT_USEC=18446744073709551615").extend,
        Some(EXTEND_MAX)
    );
    assert_eq!(
        parse(b"EXTEND_TIMEOUT_USEC=99999999999999999999999").extend,
        None
    );
}

#[test]
fn status_is_escaped_and_capped() {
    let m = parse(b"STATUS=\x1b[31mred\x1b[0m \xff tab\there");
    let s = m.status.expect("status");
    assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
    assert!(s.contains("\\x1b[31mred"), "{s:?}");
    assert!(s.contains("\\xff"), "{s:?}");
    let long = [b"STATUS=".as_slice(), &[b'a'; 5000]].concat();
    assert_eq!(parse(&long).status.map(|s| s.len()), Some(STATUS_MAX));
    // Cut on a character boundary.
    let wide = [b"STATUS=".as_slice(), "é".repeat(300).as_bytes()].concat();
    let s = parse(&wide).status.expect("status");
    assert!(
        s.len() <= STATUS_MAX && s.len() >= STATUS_MAX - 1,
        "{}",
        s.len()
    );
    // A bidi override shows as an escape, not as itself.
    let s = parse("STATUS=a\u{202e}b".as_bytes())
        .status
        .expect("status");
    assert!(!s.contains('\u{202e}'), "{s:?}");
}

#[test]
fn only_processes_of_the_instance_are_believed() {
    let ns = Some("pid:[4026532001]");
    let other = Some("pid:[4026531836]");
    assert_eq!(decide(Some(42), ns, ns, true), Verdict::Accept);
    // A host process (the host's pid namespace), another instance's.
    assert!(matches!(
        decide(Some(42), other, ns, true),
        Verdict::Refuse(_)
    ));
    assert!(matches!(
        decide(Some(42), Some("pid:[4026532002]"), ns, true),
        Verdict::Refuse(_)
    ));
    // Gone before it could be looked at: refused.
    assert!(matches!(
        decide(Some(42), None, ns, true),
        Verdict::Refuse(_)
    ));
    // No credentials, an invisible sender, an unknown instance.
    assert!(matches!(decide(None, ns, ns, true), Verdict::Refuse(_)));
    assert!(matches!(decide(Some(0), ns, ns, true), Verdict::Refuse(_)));
    assert!(matches!(decide(Some(-1), ns, ns, true), Verdict::Refuse(_)));
    assert!(matches!(
        decide(Some(42), ns, None, true),
        Verdict::Refuse(_)
    ));
    // A /proc of another pid namespace proves nothing.
    assert!(matches!(
        decide(Some(42), ns, ns, false),
        Verdict::Refuse(_)
    ));
}

#[test]
fn socket_file_names() {
    assert_eq!(file_name("box/web.0"), "box:web.0");
    let long = format!("box/{}.0", "w".repeat(100));
    let h = file_name(&long);
    assert_eq!(h.len(), 16);
    assert_eq!(h, file_name(&long));
    assert_ne!(h, file_name(&format!("box/{}.1", "w".repeat(100))));
    assert_eq!(file_name("a b/c").len(), 16);
    assert_eq!(file_name("../x").len(), 16);
    assert!(!file_name("x/..").contains('/'));
}

#[test]
fn refusals_are_logged_sparsely() {
    let logged: Vec<u64> = (0..=2000).filter(|&c| log_refusal(c)).collect();
    assert_eq!(logged, [1, 10, 100, 1000]);
}
