use super::*;

#[test]
fn a_context_without_oom_score_adj_counts_it_unknown() {
    let ctx: Context = serde_json::from_str(
        r#"{"cgroups":null,"sockets":[],"term":"dumb","extra_args":[],"hash":"h","ready":null}"#,
    )
    .unwrap();
    assert_eq!(ctx.oom_score_adj, -1);
}

#[test]
fn stages_read_back_by_name() {
    for (st, name) in [
        (Stage::Setup, "setup"),
        (Stage::Workdir, "workdir"),
        (Stage::Executable, "executable"),
    ] {
        assert_eq!(st.as_str(), name);
        assert_eq!(Stage::parse(name), Some(st));
        // The same names as in exit-status (serde).
        assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{name}\""));
    }
    assert_eq!(Stage::parse("exec"), None);
    assert_eq!(Stage::parse(""), None);
}

#[test]
fn the_filter_is_the_one_the_sandbox_asks_for() {
    use crate::config::isolation::Seccomp;
    let mut spec = InstanceSpec::placeholder("sb", "p", 0);
    let mut cache = seccomp::Cache::default();
    spec.isolation.seccomp = Seccomp::Unconfined;
    assert!(filter_profile(&spec).unwrap().is_none());
    assert!(filter(&spec, &mut cache).unwrap().is_none());
    for (setting, mode) in [
        (Seccomp::Default, seccomp::Mode::Enforce),
        (Seccomp::Log, seccomp::Mode::Log),
    ] {
        spec.isolation.seccomp = setting;
        let want = filter_profile(&spec).unwrap().expect("a profile");
        assert_eq!(want.mode, mode);
        let program = filter(&spec, &mut cache).unwrap().expect("a filter");
        assert_eq!(*program.profile(), want);
    }
}

#[test]
fn which_failures_are_permanent() {
    let f = |stage, errno| {
        Failure {
            stage,
            errno,
            path: None,
        }
        .permanent()
    };
    for e in [
        libc::ENOENT,
        libc::ENOTDIR,
        libc::ELOOP,
        libc::EXDEV,
        libc::EACCES,
        libc::ENOEXEC,
    ] {
        assert!(f(Stage::Executable, Some(e)), "{e}");
        assert!(f(Stage::Workdir, Some(e)), "{e}");
        assert!(!f(Stage::Setup, Some(e)), "{e}");
    }
    for e in [
        libc::ENOMEM,
        libc::EMFILE,
        libc::EIO,
        libc::E2BIG,
        libc::ETXTBSY,
    ] {
        assert!(!f(Stage::Executable, Some(e)), "{e}");
    }
    assert!(!f(Stage::Executable, None));
}

#[test]
fn an_exit_record_without_a_failure_reads_as_before() {
    // What cairn-init and older knots write.
    let r: ExitRecord =
        serde_json::from_str(r#"{"status":143,"signal":15,"oom_killed":false}"#).unwrap();
    assert_eq!(r.failure, None);
    let r = ExitRecord {
        status: 127,
        signal: None,
        oom_killed: false,
        failure: Some(Failure {
            stage: Stage::Executable,
            errno: Some(libc::ENOENT),
            path: None,
        }),
    };
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.contains(r#""failure":{"stage":"executable","errno":2}"#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<ExitRecord>(&text).unwrap(), r);
}

#[test]
fn a_failure_carries_its_path() {
    // What an older knot wrote reads with no path.
    let old: Failure = serde_json::from_str(r#"{"stage":"workdir","errno":20}"#).unwrap();
    assert_eq!(old.path, None);
    assert!(old.permanent());
    let f = Failure {
        stage: Stage::Executable,
        errno: Some(libc::ENOENT),
        path: Some("/bin/web server\n\"x\"".into()),
    };
    let text = serde_json::to_string(&f).unwrap();
    assert_eq!(
        text,
        r#"{"stage":"executable","errno":2,"path":"/bin/web server\n\"x\""}"#
    );
    assert_eq!(serde_json::from_str::<Failure>(&text).unwrap(), f);
}

#[test]
fn a_knot_record_reads_back_as_written() {
    let rec = KnotRecord {
        pid: 4400,
        ticks: 123_456,
        hash: "f034b441836ecf0e".into(),
        policy: Some(Policy {
            restart_timeout_ms: 1000,
            kill_timeout_ms: 5000,
            normal_exit_codes: vec![0, 3],
        }),
        sockets: vec![
            (6, "127.0.0.1".parse().unwrap(), 8080, None),
            (7, "::1".parse().unwrap(), 8081, Some("box:web.1".into())),
        ],
    };
    let text = rec.to_text();
    assert_eq!(
        text,
        "4400 123456 f034b441836ecf0e\npolicy 1000 5000 0,3\n\
         sock 6 127.0.0.1 8080 -\nsock 7 ::1 8081 box:web.1\n"
    );
    assert_eq!(KnotRecord::parse(&text), Some(rec));
}

#[test]
fn policy_lines() {
    let p = |l: &str| Policy::parse(&l.split_whitespace().collect::<Vec<_>>());
    assert_eq!(
        p("policy 1000 20000 0,1,143"),
        Some(Policy {
            restart_timeout_ms: 1000,
            kill_timeout_ms: 20000,
            normal_exit_codes: vec![0, 1, 143],
        })
    );
    assert_eq!(
        p("policy 0 5000 -").map(|p| p.normal_exit_codes),
        Some(vec![])
    );
    assert_eq!(p("policy 0 5000"), None);
    assert_eq!(p("policy 0 5000 - extra"), None);
    assert_eq!(p("policy x 5000 -"), None);
    assert_eq!(p("policy 0 x -"), None);
    assert_eq!(p("policy 0 5000 1,x"), None);
    assert_eq!(p("sock 3 127.0.0.1 80 -"), None);
}

#[test]
fn a_knot_record_of_an_older_cairn_still_reads() {
    // No policy line (before it existed), an unknown line, no codes.
    let rec = KnotRecord::parse("12 34 abc\nfuture 1 2\n").unwrap();
    assert_eq!((rec.pid, rec.ticks, rec.hash.as_str()), (12, 34, "abc"));
    assert_eq!(rec.policy, None);
    let rec = KnotRecord::parse("12 34 abc\npolicy 1 2 -\n").unwrap();
    assert_eq!(rec.policy.unwrap().normal_exit_codes, Vec::<i32>::new());
    assert_eq!(KnotRecord::parse("x 34 abc\n"), None);
    assert_eq!(KnotRecord::parse(""), None);
    // A bad policy line is skipped, not believed in part.
    let rec = KnotRecord::parse("12 34 abc\npolicy 1 2 0,x\n").unwrap();
    assert_eq!(rec.policy, None);
}
