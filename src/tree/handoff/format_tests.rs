use super::*;

fn hinstance(name: &str) -> HInstance {
    let spec = InstanceSpec::placeholder("s", name, 0);
    HInstance {
        spec,
        hash: format!("h-{name}"),
        generation: 0,
        state: State::Running,
        pid: None,
        start_ticks: None,
        pidfd: None,
        ready_fd: None,
        started_ago_ms: None,
        deadline_in_ms: None,
        failures: 0,
        stop_requested: false,
        killed: false,
        spawns: 1,
        last_exit: None,
        replacing: false,
        fresh_replacement: false,
        pending: None,
        error: None,
        drop_state: false,
        since_unix_ms: 0,
        leaf_ready: false,
        execd: false,
        probe_pipe_fd: None,
        probe_seen: false,
        notify: None,
    }
}

fn head(instances: Vec<HInstance>, follow: u32) -> Handoff {
    Handoff {
        version: VERSION,
        lock_fd: 3,
        started_unix_ms: 0,
        upgrades: 1,
        reloads: 1,
        began_ns: 0,
        instances,
        follow,
        sockets: Vec::new(),
        counters: Vec::new(),
        unknown_children: 0,
        shutting_down: false,
        retiring: Vec::new(),
        logged_hash: Vec::new(),
        died_away: Vec::new(),
        halted: Vec::new(),
        generations: Vec::new(),
        replies: Vec::new(),
    }
}

fn names(t: Taken) -> (Vec<String>, bool) {
    let Taken {
        mut head,
        text,
        rest,
    } = t;
    let torn = std::cell::Cell::new(false);
    let got = instances(&mut head, &text, rest, &torn)
        .map(|i| i.hash)
        .collect();
    (got, torn.get())
}

#[test]
fn ours_is_a_header_then_a_line_per_instance() {
    let list = vec![hinstance("a"), hinstance("b")];
    let fd = write_memfd(&head(Vec::new(), 2), &list).unwrap();
    let mut text = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut text).unwrap();
    assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 3);
    assert_eq!(
        names(parse(text).unwrap()),
        (vec!["h-a".into(), "h-b".into()], false)
    );
}

#[test]
fn an_older_cairns_hand_off_is_read_too() {
    // One JSON object holding the instances, no newline (to_vec).
    let text = serde_json::to_vec(&head(vec![hinstance("a"), hinstance("b")], 0)).unwrap();
    assert!(!text.contains(&b'\n'));
    assert_eq!(
        names(parse(text).unwrap()),
        (vec!["h-a".into(), "h-b".into()], false)
    );
}

#[test]
fn a_torn_or_short_hand_off_is_flagged() {
    let list = vec![hinstance("a"), hinstance("b")];
    let fd = write_memfd(&head(Vec::new(), 2), &list).unwrap();
    let mut text = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut text).unwrap();
    let second = text.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut torn = text.clone();
    torn[second + 3] = b'#';
    assert_eq!(names(parse(torn).unwrap()), (vec!["h-b".into()], true));
    let short = text[..second].to_vec();
    assert_eq!(names(parse(short).unwrap()), (vec![], true));
}

fn text_of(h: &Handoff, list: &[HInstance]) -> Vec<u8> {
    let mut text = Vec::new();
    std::fs::File::from(write_memfd(h, list).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

#[test]
fn a_hand_off_of_a_version_it_does_not_know_is_refused() {
    for v in [0, VERSION + 1, 99] {
        let mut h = head(Vec::new(), 1);
        h.version = v;
        let err = parse(text_of(&h, &[hinstance("a")])).err().unwrap();
        assert!(matches!(err, HandoffError::Version(n) if n == v), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "hand-off: version {v} is not one this cairn reads (1 to {VERSION}); not reading it"
            )
        );
    }
    // Without a version it is 1 (every cairn before versions); read.
    let mut v1 = serde_json::to_value(head(Vec::new(), 1)).unwrap();
    v1.as_object_mut().unwrap().remove("version");
    let mut text = serde_json::to_vec(&v1).unwrap();
    text.push(b'\n');
    text.extend(serde_json::to_vec(&hinstance("a")).unwrap());
    assert_eq!(names(parse(text).unwrap()), (vec!["h-a".into()], false));
}

#[test]
fn what_version_2_added_comes_through() {
    let mut h = head(Vec::new(), 1);
    h.retiring = vec![41, 42];
    h.logged_hash = vec![("s/a.0".into(), "h1".into())];
    let rec = ExitRecord {
        status: 137,
        signal: Some(9),
        oom_killed: true,
        failure: None,
    };
    h.died_away = vec![("s/a.1".into(), rec, Some("why".into()))];
    let mut i = hinstance("a");
    i.leaf_ready = true;
    i.state = State::Stopping;
    let Taken {
        mut head,
        text,
        rest,
    } = parse(text_of(&h, &[i])).unwrap();
    assert_eq!(head.version, VERSION);
    assert_eq!(head.retiring, vec![41, 42]);
    assert_eq!(head.logged_hash, h.logged_hash);
    assert_eq!(head.died_away, h.died_away);
    let torn = std::cell::Cell::new(false);
    let got: Vec<HInstance> = instances(&mut head, &text, rest, &torn).collect();
    assert!(got[0].leaf_ready);
    assert_eq!(got[0].state, State::Stopping);
}

#[test]
fn an_instance_in_a_state_it_does_not_know_is_not_read_as_backoff() {
    let mut line = serde_json::to_value(hinstance("a")).unwrap();
    line["state"] = "draining".into();
    let mut text = serde_json::to_vec(&head(Vec::new(), 2)).unwrap();
    for l in [line, serde_json::to_value(hinstance("b")).unwrap()] {
        text.push(b'\n');
        text.extend(serde_json::to_vec(&l).unwrap());
    }
    // Torn: the tree then adopts what it did not get (`recover`).
    assert_eq!(names(parse(text).unwrap()), (vec!["h-b".into()], true));
}

/// A restart in progress survives an upgrade: the wanted generations,
/// each instance's, and the answers not yet written come through.
#[test]
fn restart_generations_and_answers_come_through() {
    let mut h = head(Vec::new(), 1);
    h.generations = vec![("s/a.0".into(), 3)];
    h.replies = vec![(
        "upgrade.1-2".into(),
        crate::tree::request::Reply { error: None },
    )];
    let mut i = hinstance("a");
    i.generation = 2;
    let Taken {
        mut head,
        text,
        rest,
    } = parse(text_of(&h, &[i])).unwrap();
    assert_eq!(head.generations, h.generations);
    assert_eq!(head.replies, h.replies);
    let torn = std::cell::Cell::new(false);
    let got: Vec<HInstance> = instances(&mut head, &text, rest, &torn).collect();
    assert_eq!(got[0].generation, 2);
}
