use super::*;

#[test]
fn go_message_carries_our_root() {
    let m = go_message();
    assert_eq!(root_in_go_message(&m), root_identity());
    assert!(root_identity().is_some());
    let mut none = [0u8; 17];
    none[0] = b'g';
    assert_eq!(root_in_go_message(&none), None);
    let mut other = m;
    other[0] = b'x';
    assert_eq!(root_in_go_message(&other), None);
}

fn sys(errno: i32, op: &'static str, target: &str) -> crate::sys::Error {
    crate::sys::Error::new(op, target, std::io::Error::from_raw_os_error(errno))
}

#[test]
fn child_errors_name_the_path_and_keep_the_errno() {
    use crate::protocol::{Failure, SETUP_FAILED};
    let at = |p: &str| Some(p.to_string());
    let cases = [
        (
            ChildError::Lookup {
                path: "/bin/web server".into(),
                source: sys(libc::ENOENT, "openat2", "/bin/web server"),
            },
            "cannot execute /bin/web server: No such file or directory (os error 2)",
            127,
            Stage::Executable,
            Some(libc::ENOENT),
            at("/bin/web server"),
        ),
        (
            ChildError::Exec {
                path: "/bin/app".into(),
                source: sys(libc::ENOEXEC, "execve", "/bin/app"),
            },
            "cannot execute /bin/app: Exec format error (os error 8)",
            126,
            Stage::Executable,
            Some(libc::ENOEXEC),
            at("/bin/app"),
        ),
        (
            ChildError::Workdir {
                path: "/srv/app".into(),
                source: sys(libc::EXDEV, "openat2", "/srv/app"),
            },
            "workdir /srv/app: Invalid cross-device link (os error 18) (it leads through \
             a link such as /proc/self/fd/N, or too many symlinks)",
            SETUP_FAILED,
            Stage::Workdir,
            Some(libc::EXDEV),
            at("/srv/app"),
        ),
        (
            ChildError::EnterWorkdir {
                path: "/srv/app".into(),
                source: sys(libc::EACCES, "fchdir", "workdir"),
            },
            "workdir: fchdir workdir: Permission denied (os error 13)",
            SETUP_FAILED,
            Stage::Workdir,
            Some(libc::EACCES),
            at("/srv/app"),
        ),
        (
            ChildError::StdioFile {
                path: "/log/out".into(),
                source: sys(libc::EROFS, "openat2", "/log/out"),
            },
            "stdout-stderr-file /log/out: Read-only file system (os error 30)",
            SETUP_FAILED,
            Stage::Setup,
            Some(libc::EROFS),
            at("/log/out"),
        ),
        (
            ChildError::Step {
                step: "setsid",
                source: sys(libc::EPERM, "setsid", ""),
            },
            "setsid: setsid: Operation not permitted (os error 1)",
            SETUP_FAILED,
            Stage::Setup,
            Some(libc::EPERM),
            None,
        ),
        (
            ChildError::ForeignRoot,
            "the workload's root is not the container's root",
            SETUP_FAILED,
            Stage::Setup,
            None,
            None,
        ),
    ];
    for (e, message, code, stage, errno, path) in cases {
        let r = e.report();
        assert_eq!(r.message, message);
        assert_eq!(r.code, code, "{message}");
        assert_eq!(r.failure, Some(Failure { stage, errno, path }), "{message}");
    }
}
