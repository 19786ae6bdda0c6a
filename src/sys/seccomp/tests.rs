use super::*;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

fn profile(mode: Mode, userns: bool, caps: &[&str]) -> Profile {
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    Profile::workload(mode, userns, &caps).unwrap()
}

fn default() -> Program {
    compile(&profile(Mode::Enforce, false, &[])).unwrap()
}

fn nr(name: &str) -> u32 {
    table::X86_64
        .iter()
        .find(|(_, n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} not in the table"))
        .0
}

fn call(p: &Program, name: &str, args: [u64; 6]) -> u32 {
    bpf::run(&p.insns, X86_64, nr(name), args)
}

fn call0(p: &Program, name: &str) -> u32 {
    call(p, name, [0; 6])
}

#[test]
fn the_table_is_sorted_and_each_number_and_name_is_there_once() {
    let t = table::X86_64;
    assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    let mut names: Vec<&str> = t.iter().map(|(_, n, _)| *n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), t.len());
    // Spot checks against libc's numbers.
    for (name, want) in [
        ("read", libc::SYS_read),
        ("clone", libc::SYS_clone),
        ("unshare", libc::SYS_unshare),
        ("keyctl", libc::SYS_keyctl),
        ("rseq", libc::SYS_rseq),
        ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
        ("clone3", libc::SYS_clone3),
        ("memfd_secret", libc::SYS_memfd_secret),
        ("futex_waitv", libc::SYS_futex_waitv),
        ("fchmodat2", libc::SYS_fchmodat2),
        ("mseal", libc::SYS_mseal),
    ] {
        assert_eq!(i64::from(nr(name)), want, "{name}");
    }
}

#[test]
fn the_default_refuses_what_docker_refuses_a_process_without_capabilities() {
    let p = default();
    for name in [
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "open_by_handle_at",
        "name_to_handle_at",
        "clock_settime",
        "settimeofday",
        "memfd_secret",
        "acct",
        "swapon",
        "reboot",
        "syslog",
        "iopl",
        "ioperm",
        "vhangup",
        "sethostname",
        "quotactl",
        "lookup_dcookie",
        "fanotify_init",
        "kcmp",
        "pidfd_getfd",
        "mbind",
        "_sysctl",
        "uselib",
    ] {
        assert_eq!(call0(&p, name), EPERM, "{name}");
    }
}

#[test]
fn the_default_allows_what_ordinary_programs_do() {
    let p = default();
    for name in [
        "read",
        "write",
        "openat",
        "mmap",
        "mprotect",
        "futex",
        "rseq",
        "set_robust_list",
        "execve",
        "execveat",
        "wait4",
        "fcntl",
        "exit_group",
        "epoll_wait",
        "getrandom",
        "prctl",
        "seccomp",
        "arch_prctl",
        "ptrace",
        "pidfd_open",
        "clock_gettime",
        "statx",
        "close_range",
        "memfd_create",
        "landlock_create_ruleset",
        "futex_waitv",
        "uretprobe",
    ] {
        assert_eq!(call0(&p, name), RET_ALLOW, "{name}");
    }
    // Every plain table line is allowed.
    for &(n, name, rule) in table::X86_64 {
        if rule == Rule::Allow {
            assert_eq!(bpf::run(&p.insns, X86_64, n, [0; 6]), RET_ALLOW, "{name}");
        }
    }
}

#[test]
fn clone3_and_unknown_numbers_answer_enosys_other_architectures_are_killed() {
    let p = default();
    assert_eq!(call0(&p, "clone3"), ENOSYS);
    // The gap, past the table, the x32 ABI (bit 30), the largest number.
    for n in [337, 400, 423, 470, 1000, 0x4000_0000 | 39, u32::MAX] {
        assert_eq!(bpf::run(&p.insns, X86_64, n, [0; 6]), ENOSYS, "{n}");
    }
    for n in [0, 20, 39, 120] {
        assert_eq!(bpf::run(&p.insns, I386, n, [0; 6]), RET_KILL_PROCESS, "{n}");
    }
}

#[test]
fn clone_and_unshare_without_namespace_flags_only() {
    let p = default();
    let fork_like = u64::from(libc::SIGCHLD as u32);
    let thread = 0x003d_0f00; // glibc's pthread_create flags
    for flags in [fork_like, thread, 0] {
        assert_eq!(call(&p, "clone", [flags, 0, 0, 0, 0, 0]), RET_ALLOW);
    }
    for ns in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWCGROUP,
    ] {
        let ns = ns as u32 as u64;
        assert_eq!(call(&p, "clone", [ns | fork_like, 0, 0, 0, 0, 0]), EPERM);
        // The kernel reads the low 32 bits only: high bits change nothing.
        assert_eq!(call(&p, "clone", [ns | 1 << 40, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(call(&p, "unshare", [ns, 0, 0, 0, 0, 0]), EPERM);
    }
    assert_eq!(call(&p, "unshare", [0x80, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWTIME
    assert_eq!(call(&p, "unshare", [0x200, 0, 0, 0, 0, 0]), RET_ALLOW); // CLONE_FS
    assert_eq!(call(&p, "clone", [1 << 40, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn socket_families_personalities_and_ioctls() {
    let p = default();
    for (family, want) in [
        (libc::AF_UNIX, RET_ALLOW),
        (libc::AF_INET, RET_ALLOW),
        (libc::AF_INET6, RET_ALLOW),
        (libc::AF_NETLINK, RET_ALLOW),
        (libc::AF_PACKET, RET_ALLOW),
        (libc::AF_VSOCK, EPERM),
        (libc::AF_ALG, EPERM),
        (libc::AF_BLUETOOTH, EPERM),
        (libc::AF_RDS, EPERM),
        (libc::AF_TIPC, EPERM),
        (libc::AF_KEY, EPERM),
    ] {
        let f = family as u64;
        assert_eq!(call(&p, "socket", [f, 1, 0, 0, 0, 0]), want, "{family}");
        assert_eq!(call(&p, "socketpair", [f, 1, 0, 0, 0, 0]), want, "{family}");
    }
    for (persona, want) in [
        (0, RET_ALLOW),
        (8, RET_ALLOW),
        (0xffff_ffff, RET_ALLOW),
        (0x0004_0000, EPERM), // ADDR_NO_RANDOMIZE
        (0x0040_0000, EPERM), // READ_IMPLIES_EXEC
    ] {
        assert_eq!(call(&p, "personality", [persona, 0, 0, 0, 0, 0]), want);
    }
    assert_eq!(call(&p, "ioctl", [0, 0x5412, 0, 0, 0, 0]), EPERM); // TIOCSTI
    assert_eq!(call(&p, "ioctl", [0, 0x541c, 0, 0, 0, 0]), EPERM); // TIOCLINUX
    assert_eq!(call(&p, "ioctl", [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW); // TCGETS
}

#[test]
fn a_capability_opens_its_group_and_nothing_else() {
    let admin = compile(&profile(Mode::Enforce, false, &["CAP_SYS_ADMIN"])).unwrap();
    for name in [
        "mount",
        "setns",
        "fsopen",
        "bpf",
        "perf_event_open",
        "clone3",
    ] {
        assert_eq!(call0(&admin, name), RET_ALLOW, "{name}");
    }
    let userns = u64::from(libc::CLONE_NEWUSER as u32);
    assert_eq!(call(&admin, "clone", [userns, 0, 0, 0, 0, 0]), RET_ALLOW);
    for name in ["keyctl", "io_uring_setup", "kexec_load", "clock_settime"] {
        assert_eq!(call0(&admin, name), EPERM, "{name}");
    }
    let time = compile(&profile(Mode::Enforce, false, &["CAP_SYS_TIME"])).unwrap();
    assert_eq!(call0(&time, "clock_settime"), RET_ALLOW);
    assert_eq!(call0(&time, "mount"), EPERM);
    let names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let every = compile(&profile(Mode::Enforce, false, &all)).unwrap();
    for name in [
        "keyctl",
        "add_key",
        "userfaultfd",
        "io_uring_setup",
        "kexec_load",
    ] {
        assert_eq!(call0(&every, name), EPERM, "{name}");
    }
}

#[test]
fn user_namespaces_open_namespaces_and_mounts_not_the_rest() {
    let p = compile(&profile(Mode::Enforce, true, &[])).unwrap();
    let userns = u64::from(libc::CLONE_NEWUSER as u32);
    assert_eq!(call(&p, "unshare", [userns, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&p, "clone", [userns, 0, 0, 0, 0, 0]), RET_ALLOW);
    for name in [
        "setns",
        "mount",
        "pivot_root",
        "chroot",
        "fsopen",
        "umount2",
    ] {
        assert_eq!(call0(&p, name), RET_ALLOW, "{name}");
    }
    for name in ["keyctl", "bpf", "perf_event_open", "init_module"] {
        assert_eq!(call0(&p, name), EPERM, "{name}");
    }
    assert_eq!(call0(&p, "clone3"), ENOSYS);
}

#[test]
fn log_mode_logs_instead_of_refusing() {
    let enforce = default();
    let log = compile(&profile(Mode::Log, false, &[])).unwrap();
    let args = [
        [0u64; 6],
        [u64::from(libc::CLONE_NEWUSER as u32), 0x5412, 0, 0, 0, 0],
        [40, 0x5412, 0, 0, 0, 0],
    ];
    for n in 0..600 {
        for a in args {
            let e = bpf::run(&enforce.insns, X86_64, n, a);
            let l = bpf::run(&log.insns, X86_64, n, a);
            let want = if e == RET_ALLOW { RET_ALLOW } else { RET_LOG };
            assert_eq!(l, want, "nr {n} args {a:?}");
        }
    }
    assert_eq!(bpf::run(&log.insns, I386, 1, [0; 6]), RET_LOG);
}

#[test]
fn the_parser_runs_no_programs_makes_no_processes_and_reaches_no_network() {
    let p = parser().unwrap();
    for name in [
        "execve", "execveat", "fork", "vfork", "socket", "connect", "kill",
    ] {
        assert_eq!(call0(p, name), EPERM, "{name}");
    }
    for name in ["unlink", "rename", "mkdir", "chmod", "mount", "keyctl"] {
        assert_eq!(call0(p, name), EPERM, "{name}");
    }
    let thread = 0x003d_0f00;
    assert_eq!(call(p, "clone", [thread, 0, 0, 0, 0, 0]), RET_ALLOW);
    let fork_like = u64::from(libc::SIGCHLD as u32);
    assert_eq!(call(p, "clone", [fork_like, 0, 0, 0, 0, 0]), EPERM);
    for name in ["read", "openat", "write", "mmap", "exit_group", "fstat"] {
        assert_eq!(call0(p, name), RET_ALLOW, "{name}");
    }
    assert!(std::ptr::eq(p, parser().unwrap()), "compiled once");
}

/// Steps the program takes for one call (the cost the kernel pays per
/// number when it fills its cache, and per call not in the cache).
fn steps(p: &[Insn], nr: u32) -> usize {
    bpf::run_counted(p, X86_64, nr, [0; 6]).1
}

#[test]
fn programs_are_small_and_shallow() {
    for p in [
        default(),
        compile(&profile(Mode::Log, true, &["CAP_SYS_ADMIN"])).unwrap(),
        parser().unwrap().clone(),
    ] {
        // About one instruction per range of numbers (~100 here): the
        // kernel JIT-compiles the program at every container start.
        assert!(p.len() < 128, "{} instructions", p.len());
        let worst = (0..600).map(|n| steps(&p.insns, n)).max().unwrap();
        assert!(worst <= 16, "{worst} steps");
    }
}

#[test]
fn long_left_branches_jump_through_ja() {
    // 300 alternating numbers: the shared RETs at the end are farther
    // from the first comparisons than a conditional jump reaches.
    let leaves: Vec<(u32, Leaf)> = (0..300)
        .map(|n| (n, Leaf::Ret(if n % 2 == 0 { RET_ALLOW } else { 7 })))
        .collect();
    let p = bpf::program(X86_64, RET_KILL_PROCESS, &leaves, 9).unwrap();
    assert!(p.iter().any(|i| i.code == bpf::JA));
    for n in 0..310 {
        let want = match n {
            300.. => 9,
            n if n % 2 == 0 => RET_ALLOW,
            _ => 7,
        };
        assert_eq!(bpf::run(&p, X86_64, n, [0; 6]), want, "{n}");
    }
}

#[test]
fn the_cache_compiles_each_profile_once() {
    let mut c = Cache::default();
    let a = profile(Mode::Enforce, false, &[]);
    let b = profile(Mode::Enforce, false, &["CAP_NET_BIND_SERVICE"]);
    let first = c.get(&a).unwrap();
    assert!(Arc::ptr_eq(&first, &c.get(&a).unwrap()));
    assert!(!Arc::ptr_eq(&first, &c.get(&b).unwrap()));
    assert_eq!(c.len(), 2);
    assert_eq!(first.profile(), &a);
    assert!(cap_mask(&["CAP_NOPE".to_string()]).is_err());
}

#[test]
fn a_program_survives_json() {
    let p = default();
    let back: Program = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}
