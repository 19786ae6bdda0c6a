//! The system call filter, seen from inside: a probe (tests/helpers/
//! secprobe.c) calls what Docker's default profile refuses and what every
//! program needs, under the default filter and without one; user
//! namespaces with `allow-user-namespaces`; `seccomp: log`.

use super::*;

/// Build tests/helpers/secprobe.c into the image: static (`/bin/secprobe`)
/// or, with `dynamic`, linked against the host's glibc (`/bin/secprobe-dyn`,
/// with the libraries it needs copied into the image).
pub(super) fn secprobe(fx: &Fixture, dynamic: bool) -> Result<PathBuf, String> {
    let name = if dynamic { "secprobe-dyn" } else { "secprobe" };
    let bin = fx.set.p("images/bb/bin").join(name);
    let flags: &[&str] = if dynamic {
        &["-pthread"]
    } else {
        &["-static", "-pthread"]
    };
    common::build_helper("secprobe", flags, &bin)?;
    if dynamic {
        copy_libraries(fx, &bin);
    }
    Ok(bin)
}

/// Copy the shared libraries `bin` needs (`ldd`) into the image, at the
/// same paths.
pub(super) fn copy_libraries(fx: &Fixture, bin: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    for lib in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let real = fs::canonicalize(lib).expect("library");
        let dst = fx.set.p("images/bb").join(lib.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        fs::copy(&real, &dst).expect("copy library");
    }
}

/// A container config running `exe ARGS...` as UID:GID.
pub(super) fn program(exe: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    probe(extra)
        .replace("executable: /bin/sh", &format!("executable: {exe}"))
        .replace(
            "arguments: [-c]",
            &format!("arguments: [{}]", args.join(", ")),
        )
}

const SANDBOX: &str = "allow-users: [1000-1999]\nallow-groups: [1000-1999]\n";

/// The probe's answers, by call, in a sandbox with `sandbox_extra`.
fn probe_answers(fx: &mut Fixture, sandbox_extra: &str) -> BTreeMap<String, String> {
    fx.sandbox(&format!("{SANDBOX}{sandbox_extra}"));
    fx.command("secprobe", &program("/bin/secprobe", &[], ""));
    let out = fx.run("secprobe", &[]);
    kv(&ok(&out))
}

/// Calls the default filter refuses: (probe check, what it answers, whether
/// the kernel alone answers the same to this uid-1234 process, so that the
/// run without a filter cannot tell the two apart).
const REFUSED: &[(&str, &str, bool)] = &[
    ("unshare_user", "EPERM", false),
    ("unshare_user_mount_net", "EPERM", false),
    ("clone_newuser", "EPERM", false),
    ("clone3", "ENOSYS", false),
    ("setns", "EPERM", false),
    ("mount", "EPERM", false),
    ("umount2", "EPERM", false),
    ("pivot_root", "EPERM", true),
    ("chroot", "EPERM", false),
    ("open_tree", "EPERM", false),
    ("fsopen", "EPERM", true),
    ("mount_setattr", "EPERM", false),
    ("statmount", "EPERM", false),
    ("keyctl", "EPERM", false),
    ("add_key", "EPERM", false),
    ("request_key", "EPERM", false),
    ("bpf", "EPERM", false),
    ("perf_event_open", "EPERM", false),
    ("userfaultfd", "EPERM", false),
    ("io_uring_setup", "EPERM", false),
    ("io_uring_enter", "EPERM", false),
    ("io_uring_register", "EPERM", false),
    ("kexec_load", "EPERM", false),
    ("init_module", "EPERM", false),
    ("finit_module", "EPERM", false),
    ("open_by_handle_at", "EPERM", false),
    ("name_to_handle_at", "EPERM", false),
    ("clock_settime", "EPERM", false),
    ("settimeofday", "EPERM", false),
    ("memfd_secret", "EPERM", false),
    ("kcmp", "EPERM", false),
    ("pidfd_getfd", "EPERM", false),
    ("reboot", "EPERM", true),
    ("swapon", "EPERM", true),
    ("acct", "EPERM", true),
    ("sethostname", "EPERM", true),
    ("quotactl", "EPERM", false),
    ("mbind", "EPERM", false),
    ("move_pages", "EPERM", false),
    ("socket_vsock", "EPERM", false),
    ("socket_alg", "EPERM", false),
    ("personality_no_aslr", "EPERM", false),
    ("tiocsti", "EPERM", false),
    // x32 calls and numbers no kernel has: ENOSYS, with or without us.
    ("x32", "ENOSYS", true),
    ("unknown", "ENOSYS", true),
    // An i386 call (int 0x80) from the 64-bit probe: killed, SIGSYS.
    ("int80", "killed:31", false),
];

/// Calls every program makes, which the filter lets through.
const ALLOWED: &[&str] = &[
    "getpid",
    "clone_fork",
    "unshare_fs",
    "socket_inet",
    "socket_inet6",
    "socket_unix",
    "socket_netlink",
    "socketpair",
    "personality_query",
    "pthread",
    "memfd_create",
    "tcgets",
    "execve",
    "prctl",
    "clock_gettime",
];

/// Without a filter, a uid-1234 workload made new user, mount and network
/// namespaces, and reached keyctl, io_uring, userfaultfd, perf, BPF,
/// memfd_secret, AF_VSOCK and AF_ALG sockets. The default filter refuses
/// each with EPERM (clone3 with ENOSYS, so libc falls back to clone),
/// and the run without a filter shows that the refusal is the filter's.
#[test]
fn the_default_filter_refuses_what_docker_refuses() {
    let mut fx = fixture!();
    let built = secprobe(&fx, false);
    require!(built.is_ok(), built.err().unwrap_or_default());
    let filtered = probe_answers(&mut fx, "");
    let open = probe_answers(&mut fx, "seccomp: unconfined\n");
    let got = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    for (check, want, kernel_too) in REFUSED {
        let (f, o) = (got(&filtered, check), got(&open, check));
        if f != *want {
            wrong.push(format!("{check}: {f} under the filter, want {want}"));
        }
        if !kernel_too && o == *want {
            wrong.push(format!("{check}: {o} without a filter too"));
        }
    }
    for check in ALLOWED {
        for (m, how) in [(&filtered, "under the filter"), (&open, "without a filter")] {
            if got(m, check) != "ok" {
                wrong.push(format!("{check}: {} {how}", got(m, check)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nfiltered: {filtered:?}\nunfiltered: {open:?}",
        wrong.join("\n")
    );
}

/// The workload runs in filter mode (2), with one filter: ours.
#[test]
fn the_workload_runs_under_one_filter() {
    let mut fx = fixture!();
    let show = "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status";
    let out = fx.probe("status", "", show);
    let text = ok(&out);
    assert_eq!(field(&text, "Seccomp"), Some("2"), "{text}");
    assert_eq!(field(&text, "Seccomp_filters"), Some("1"), "{text}");
    assert_eq!(field(&text, "NoNewPrivs"), Some("1"), "{text}");
    fx.sandbox(&format!("{SANDBOX}seccomp: unconfined\n"));
    let out = fx.run("status", &[show]);
    assert_eq!(field(&ok(&out), "Seccomp"), Some("0"));
}

/// `unshare -U` (busybox) is refused by default, and works in a sandbox
/// with `allow-user-namespaces: true`.
#[test]
fn user_namespaces_only_with_allow_user_namespaces() {
    let mut fx = fixture!();
    let script = "unshare -U id -u; echo status=$?";
    let out = fx.probe("userns", "", script);
    let text = ok(&out);
    assert_eq!(
        kv(&text).get("status").map(String::as_str),
        Some("1"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(err.contains("Operation not permitted"), "{err}");

    fx.sandbox(&format!("{SANDBOX}allow-user-namespaces: true\n"));
    let out = fx.run("userns", &[script]);
    let text = ok(&out);
    // Unmapped in the new namespace: the overflow uid.
    assert_eq!(text, "65534\nstatus=0\n", "{}", stderr(&out));
    // The rest of the filter still holds there.
    fx.command("secprobe", &program("/bin/secprobe", &[], ""));
    let built = secprobe(&fx, false);
    require!(built.is_ok(), built.err().unwrap_or_default());
    let v = kv(&ok(&fx.run("secprobe", &[])));
    assert_eq!(v["unshare_user_mount_net"], "ok");
    assert_eq!(v["clone_newuser"], "ok");
    for check in ["keyctl", "io_uring_setup", "bpf", "socket_vsock"] {
        assert_eq!(v[check], "EPERM", "{check}");
    }
}

/// The kernel log from now on (/dev/kmsg, without blocking).
struct KernelLog(fs::File);

impl KernelLog {
    fn open() -> Result<KernelLog, String> {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| format!("/dev/kmsg: {e}"))?;
        f.seek(std::io::SeekFrom::End(0))
            .map_err(|e| format!("/dev/kmsg: {e}"))?;
        Ok(KernelLog(f))
    }

    /// The first record holding every one of `needles`, waiting up to 3 s
    /// (kauditd prints asynchronously).
    fn find(&mut self, needles: &[&str]) -> Option<String> {
        use std::io::Read;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = vec![0u8; 8192];
        while Instant::now() < deadline {
            match self.0.read(&mut buf) {
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if needles.iter().all(|n| rec.contains(n)) {
                        return Some(rec);
                    }
                }
                // EPIPE: records were overwritten; go on from there.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        None
    }
}

/// `seccomp: log` lets every call through and the kernel logs those the
/// default filter refuses: an audit record of type 1326 with action code
/// 0x7ffc0000 (SECCOMP_RET_LOG) in the kernel log (where docs/config/
/// sandbox.md says to look).
#[test]
fn log_mode_lets_calls_through_and_the_kernel_logs_them() {
    let mut fx = fixture!();
    let built = secprobe(&fx, false);
    require!(built.is_ok(), built.err().unwrap_or_default());
    fx.sandbox(&format!("{SANDBOX}seccomp: log\n"));
    // Exactly one call the default refuses (the kernel rate-limits these
    // records): keyctl, number 250 on x86_64.
    fx.command("logged", &program("/bin/secprobe", &["one", "keyctl"], ""));
    let mut klog = KernelLog::open();
    let out = fx.run("logged", &[]);
    assert_eq!(ok(&out), "keyctl=ok\n");
    // The reliable part: the call went through, under a filter.
    fx.command("status", &probe(""));
    let status = ok(&fx.run("status", &["grep ^Seccomp: /proc/self/status"]));
    assert_eq!(field(&status, "Seccomp"), Some("2"), "{status}");
    let logged = fs::read_to_string("/proc/sys/kernel/seccomp/actions_logged").unwrap();
    assert!(logged.split_whitespace().any(|a| a == "log"), "{logged}");
    // The record, where the kernel log can be read.
    match klog.as_mut() {
        Ok(klog) => {
            let rec = klog.find(&[
                "type=1326",
                &format!("uid={UID} "),
                "comm=\"secprobe\"",
                "syscall=250 ",
                "code=0x7ffc0000",
            ]);
            assert!(rec.is_some(), "no audit record of the logged keyctl");
        }
        Err(e) => eprintln!("NOTE: the record itself was not checked: {e}"),
    }
}
