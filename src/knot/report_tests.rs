use super::*;

fn read(bytes: &[u8]) -> Option<SpawnError> {
    SpawnError::from_report("/bin/app", bytes)
}

/// A failure of the setup stage with no errno: what an unreadable report
/// reads as.
fn is_unreadable(e: &SpawnError) -> bool {
    e.code == SETUP_FAILED
        && e.message.contains("its report does not read")
        && e.failure
            == Some(Failure {
                stage: Stage::Setup,
                errno: None,
                path: None,
            })
}

#[test]
fn an_empty_pipe_is_an_exec() {
    assert_eq!(read(b""), None);
}

#[test]
fn a_report_reads_back_as_written() {
    let hostile = [
        "/bin/app",
        "/srv/my app/bin/run me",
        "/bin/nope\n1999-01-01T00:00:00Z INFO forged\n",
        "/x\nF 127 executable 2 3 4\nabc",
        "",
        "/\u{1b}]0;pwned\u{7}/é",
    ];
    for path in hostile {
        for (stage, errno) in [
            (Stage::Executable, Some(libc::ENOENT)),
            (Stage::Executable, Some(libc::EACCES)),
            (Stage::Workdir, Some(libc::ENOTDIR)),
            (Stage::Setup, None),
        ] {
            let e = SpawnError::new(
                stage,
                format!("cannot execute {path}: it is\nnot there"),
                errno,
                Some(path.to_string()),
            );
            assert_eq!(read(&e.to_wire()), Some(e.clone()), "{path:?}");
        }
    }
    // No path, no stage.
    let e = SpawnError::new(Stage::Setup, "setsid: EPERM".into(), Some(1), None);
    assert_eq!(read(&e.to_wire()), Some(e.clone()));
    let e = SpawnError {
        code: SETUP_FAILED,
        message: "x".into(),
        failure: None,
    };
    assert_eq!(read(&e.to_wire()), Some(e.clone()));
}

#[test]
fn the_wire_form_is_a_header_then_the_bytes() {
    let e = SpawnError::new(
        Stage::Executable,
        "cannot execute /a b: No such file or directory (os error 2)".into(),
        Some(2),
        Some("/a b".into()),
    );
    assert_eq!(
        e.to_wire(),
        b"F 127 executable 2 4 59\n/a bcannot execute /a b: No such file or directory (os error 2)"
    );
    assert_eq!(e.code, NOT_FOUND);
    let e = SpawnError::new(Stage::Setup, "m".into(), None, None);
    assert_eq!(e.to_wire(), b"F 125 setup - - 1\nm");
}

#[test]
fn statuses_follow_the_stage_and_errno() {
    let code = |stage, errno| SpawnError::new(stage, String::new(), errno, None).code;
    assert_eq!(code(Stage::Executable, Some(libc::ENOENT)), NOT_FOUND);
    assert_eq!(code(Stage::Executable, Some(libc::EACCES)), EXEC_FAILED);
    assert_eq!(code(Stage::Executable, None), EXEC_FAILED);
    assert_eq!(code(Stage::Workdir, Some(libc::ENOENT)), SETUP_FAILED);
    assert_eq!(code(Stage::Setup, Some(libc::ENOENT)), SETUP_FAILED);
}

#[test]
fn a_report_cut_short_or_garbled_is_a_failure() {
    let whole = SpawnError::new(
        Stage::Executable,
        "cannot execute /bin/app: No such file or directory (os error 2)".into(),
        Some(libc::ENOENT),
        Some("/bin/app".into()),
    )
    .to_wire();
    // Every prefix of a report is a failure, none of them a success.
    for n in 1..whole.len() {
        let e = read(&whole[..n]).expect("a failure");
        assert!(is_unreadable(&e), "{n}: {e:?}");
    }
    // Bytes after it, too.
    let mut more = whole.clone();
    more.push(b'x');
    assert!(is_unreadable(&read(&more).unwrap()));
    for bad in [
        &b"\xff\xfe"[..],
        b"F",
        b"F 0 setup - - 0\n",
        b"F 1 setup - - 0\n",
        b"F 128 setup - - 0\n",
        b"F 125 mount - - 0\n",
        b"F 125 setup x - 0\n",
        b"F 125 setup - x 0\n",
        b"F 125 setup - - -\n",
        b"F 125 setup - 18446744073709551615 1\nx",
        b"F 125 setup - - 1 extra\nx",
        b"F 125 setup - 1 1\n\xffx",
        b"E",
        b"E2x",
        b"E-2",
        b"0 - - exited normally",
        b"125 setup",
        b"garbage",
        b"\0",
    ] {
        let e = read(bad).expect("a failure");
        assert!(is_unreadable(&e), "{bad:?}: {e:?}");
    }
    // Too long to be one.
    let big = vec![b'x'; REPORT_CAP + 1];
    assert!(is_unreadable(&read(&big).unwrap()));
}

#[test]
fn cairn_init_reports_its_errno() {
    let e = read(b"E2").unwrap();
    assert_eq!(e.code, NOT_FOUND);
    assert_eq!(
        e.message,
        "cannot execute /bin/app: No such file or directory (os error 2)"
    );
    assert_eq!(
        e.failure,
        Some(Failure {
            stage: Stage::Executable,
            errno: Some(libc::ENOENT),
            path: Some("/bin/app".into()),
        })
    );
    assert_eq!(read(b"E13").unwrap().code, EXEC_FAILED);
}

#[test]
fn an_older_report_still_reads() {
    let e = read(b"127 executable 2 cannot execute /bin/a b: gone").unwrap();
    assert_eq!(e.code, NOT_FOUND);
    assert_eq!(e.message, "cannot execute /bin/a b: gone");
    assert_eq!(
        e.failure,
        Some(Failure {
            stage: Stage::Executable,
            errno: Some(2),
            path: None,
        })
    );
    let e = read(b"125 - - setsid: Operation not permitted").unwrap();
    assert_eq!((e.code, e.failure), (SETUP_FAILED, None));
}
