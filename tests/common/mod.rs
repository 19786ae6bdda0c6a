//! Shared helpers for integration tests: temp config sets, running the real
//! binary, and the CI rule (a test that cannot run fails under `CI=true`).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod debian;

/// The cairn binary under test. A test of another workspace member
/// (agent/tests) has no `CARGO_BIN_EXE_cairn`: it takes the cairn built in
/// the same target dir (`target/<profile>/cairn`, next to `deps/`).
pub fn cairn_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_cairn") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("cairn")))
            .unwrap_or_else(|| PathBuf::from("cairn")),
    }
}

/// Run `cairn ARGS...` and capture its output.
pub fn cairn(args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run cairn")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Compile `tests/helpers/NAME.c` with the C compiler into `out`, with
/// `flags` (`-static`, `-pthread`, ...) before `-O2`.
pub fn build_helper(name: &str, flags: &[&str], out: &Path) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(format!("{name}.c"));
    let done = Command::new("cc")
        .args(flags)
        .args(["-O2", "-o"])
        .arg(out)
        .arg(&src)
        .output()
        .map_err(|e| format!("cannot run cc ({e}); install gcc and libc6-dev"))?;
    if !done.status.success() {
        return Err(format!(
            "cc {} {}: {}",
            flags.join(" "),
            src.display(),
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    Ok(())
}

/// Skip (or, under CI=true, fail) when `cond` is not met.
#[macro_export]
macro_rules! require {
    ($cond:expr, $why:expr) => {
        if !$cond {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("cannot run under CI: {}", $why);
            }
            eprintln!("skipped: {}", $why);
            return;
        }
    };
}

/// A temporary directory holding one config set.
pub struct ConfigSet {
    pub dir: tempfile::TempDir,
}

impl ConfigSet {
    pub fn new() -> ConfigSet {
        ConfigSet {
            dir: tempfile::Builder::new()
                .prefix("cairn-test.")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
    /// Write a file (creating parent dirs).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write");
        p
    }
    pub fn master(&self) -> String {
        self.s("master.yaml")
    }
    /// (Re)write `master.yaml`: the runtime and log dirs in this temp dir,
    /// then `extra`.
    pub fn write_master(&self, extra: &str) -> PathBuf {
        self.write(
            "master.yaml",
            format!(
                "runtime-dir: {run}\ndefault-log-dir: {log}\nstdio-log-dir: {log}/stdio\n{extra}",
                run = self.s("run"),
                log = self.s("log"),
            ),
        )
    }
}

/// Copy a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

// ---------------------------------------------------------------------------
// Helpers for tests that run real containers (root, busybox image, cgroups).

/// Whether this process runs as root (containers need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `path` is an ELF file without a program interpreter, i.e. a
/// statically linked executable that runs in an image with no libc.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        // PT_INTERP (3) names the dynamic loader.
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) != 3
    })
}

/// Debian's busybox-static (`/bin/busybox`, statically linked), if present.
pub fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| is_static_elf(p))
}

/// Why container tests cannot run here, or the busybox to build images from.
pub fn container_prereqs() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("container tests need root (namespaces, mounts, cgroups)".into());
    }
    static_busybox().ok_or_else(|| {
        "no statically linked /bin/busybox (apt-get install busybox-static)".to_string()
    })
}

/// Build a busybox image in `dir`: the binary, one symlink per applet, the
/// directories cairn mounts over (and the ones tests use as volume mount
/// points), regular empty `/etc/hosts` and `/etc/resolv.conf`, `/config`.
pub fn make_busybox_image(busybox: &Path, dir: &Path) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    for d in [
        "bin", "proc", "dev", "sys", "tmp", "etc", "config", "data", "ro", "state", "work",
    ] {
        fs::create_dir_all(dir.join(d)).expect("mkdir in image");
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod image");
    let bin = dir.join("bin/busybox");
    fs::copy(busybox, &bin).expect("copy busybox");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod busybox");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            symlink("busybox", dir.join("bin").join(applet)).expect("applet symlink");
        }
    }
    fs::write(dir.join("etc/hosts"), "").expect("etc/hosts");
    fs::write(dir.join("etc/resolv.conf"), "").expect("etc/resolv.conf");
}

/// chown(2) a host path (tests make volume dirs owned by the container user).
pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

/// A cgroup name no other test (or real install) uses: `cairn-test-PID-N`.
pub fn unique_cgroup_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cairn-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every place a cgroup root called `name` can live on this host: for each
/// cgroup (v1 or v2) hierarchy we see in our mountinfo, both
/// `<mount>/<name>` and `<mount>/<our cgroup there>/<name>` (cairn creates
/// its root below the cgroup it runs in, e.g. our memory cgroup).
pub fn cgroup_root_dirs(name: &str) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        let super_opts: Vec<&str> = r.nth(1).unwrap_or("").split(',').collect();
        let Some(mount) = left.split_whitespace().nth(4) else {
            continue;
        };
        let base = match fstype {
            "cgroup2" => own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/")
                .to_string(),
            "cgroup" => own
                .lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let (_, ctl, path) = (parts.next()?, parts.next()?, parts.next()?);
                    let ctls: Vec<&str> = ctl.split(',').filter(|c| !c.is_empty()).collect();
                    (!ctls.is_empty() && ctls.iter().all(|c| super_opts.contains(c)))
                        .then(|| path.to_string())
                })
                .next()
                .unwrap_or_else(|| "/".into()),
            _ => continue,
        };
        for dir in [
            Path::new(mount).join(name),
            Path::new(mount)
                .join(base.trim_start_matches('/'))
                .join(name),
        ] {
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    out
}

/// Leaf cgroups (direct subdirectories) under the root `name`, anywhere.
pub fn cgroup_leaves(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_root_dirs(name) {
        if let Ok(rd) = fs::read_dir(&root) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// Pids listed in `<dir>/cgroup.procs`.
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes a test's cgroup root from every hierarchy when dropped. The name
/// is unique to one test, so whatever is still inside was started by that
/// test (through cairn); it is killed before the rmdir.
pub struct CgroupGuard {
    pub name: String,
}

impl CgroupGuard {
    pub fn new() -> CgroupGuard {
        CgroupGuard {
            name: unique_cgroup_name(),
        }
    }
}

fn remove_cgroup_dir(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_dir(&e.path());
            }
        }
    }
    for _ in 0..200 {
        for pid in cgroup_procs(dir) {
            // SAFETY: plain kill(2) of a process in this test's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    eprintln!("warning: could not remove cgroup {}", dir.display());
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in cgroup_root_dirs(&self.name) {
            if dir.is_dir() {
                remove_cgroup_dir(&dir);
            }
        }
    }
}

/// Run `cmd` with `stdin` (or /dev/null), capturing stdout and stderr; kill
/// it (our own child) and panic if it takes longer than `timeout`.
pub fn output_within(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: std::time::Duration,
) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    wait_output_within(child, timeout)
}

/// Collect a spawned child's piped stdout and stderr and wait for it; kill
/// it (our own child) and panic if it takes longer than `timeout`.
pub fn wait_output_within(mut child: std::process::Child, timeout: std::time::Duration) -> Output {
    use std::io::Read;
    let mut out = child.stdout.take().expect("stdout pipe");
    let mut err = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish within {timeout:?}", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A new pseudo-terminal: (master, slave), neither our controlling tty.
pub fn open_pty() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt(3), grantpt(3), unlockpt(3) and the
    // TIOCGPTPEER ioctl on the fd just returned; every result is checked
    // and each new fd gets exactly one owner.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = fs::File::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0, "grantpt");
        assert_eq!(libc::unlockpt(m), 0, "unlockpt");
        let s = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(s >= 0, "TIOCGPTPEER: {}", std::io::Error::last_os_error());
        (master, fs::File::from_raw_fd(s))
    }
}

/// Pids of every live descendant of `pid` (from /proc/*/stat).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parent: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The comm field may hold spaces and parens: split after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(pp) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent.push((p, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}
