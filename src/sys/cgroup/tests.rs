use super::*;
use crate::sys::proc::{parse_cgroup, parse_mountinfo};

const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
31 24 0:27 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n\
32 24 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
33 24 0:29 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n\
34 24 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
35 24 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
36 24 0:32 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n";

const HYBRID_SELF: &str =
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n4:memory:/process_api/x\n2:cpuacct:/\n1:cpu:/\n0::/\n";

const PURE_V2: &str = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";

fn wanted(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn detects_hybrid_v1() {
    let c = detect(
        "cairn",
        &wanted(&["name", "cpu", "cpuacct", "memory", "blkio", "pids"]),
        &parse_mountinfo(HYBRID),
        &parse_cgroup(HYBRID_SELF),
        &["hugetlb".to_string()],
    );
    assert_eq!(c.hierarchies.len(), 6);
    assert!(c.hierarchies.iter().all(|h| !h.v2));
    let mem = c
        .hierarchies
        .iter()
        .find(|h| h.controllers == ["memory"])
        .unwrap();
    assert_eq!(mem.base, "/process_api/x");
    assert_eq!(
        mem.dir("cairn", Some("sb:web.0")),
        Path::new("/sys/fs/cgroup/memory/process_api/x/cairn/sb:web.0")
    );
    let name = c
        .hierarchies
        .iter()
        .find(|h| h.controllers == ["name"])
        .unwrap();
    assert_eq!(name.mount, Path::new("/sys/fs/cgroup/systemd"));
    assert!(c.supports("memory") && c.supports("pids") && c.supports("cpu"));
}

#[test]
fn detects_pure_v2() {
    let c = detect(
        "cairn",
        &wanted(&["name", "cpu", "cpuacct", "memory", "blkio", "pids"]),
        &parse_mountinfo(PURE_V2),
        &parse_cgroup("0::/system.slice/cairn.service\n"),
        &wanted(&["cpuset", "cpu", "io", "memory", "pids"]),
    );
    assert_eq!(c.hierarchies.len(), 1);
    let h = &c.hierarchies[0];
    assert!(h.v2);
    assert_eq!(h.controllers, ["cpu", "memory", "io", "pids"]);
    assert_eq!(
        h.dir("cairn", Some("a:b.0")),
        Path::new("/sys/fs/cgroup/system.slice/cairn.service/cairn/a:b.0")
    );
}

#[test]
fn missing_controllers_are_skipped() {
    let c = detect(
        "cairn",
        &wanted(&["memory", "pids"]),
        &parse_mountinfo(PURE_V2),
        &parse_cgroup("0::/\n"),
        &wanted(&["cpu"]),
    );
    assert!(c.is_empty());
    assert!(!c.supports("memory"));
}

#[test]
fn weights() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(0), 1);
}

/// A temp dir laid out like a cgroup2 mount: files the kernel would
/// provide are created by hand.
fn fake_v2(dir: &Path) -> Cgroups {
    fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    Cgroups {
        root: "cairn".into(),
        hierarchies: vec![Hierarchy {
            mount: dir.to_path_buf(),
            base: "/svc".into(),
            v2: true,
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        }],
    }
}

#[test]
fn v2_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let c = fake_v2(tmp.path());
    let root = tmp.path().join("svc/cairn");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    // The kernel creates these files in a new cgroup; pre-create them.
    let leaf = root.join("sb:web.0");
    fs::create_dir_all(&leaf).unwrap();
    for f in [
        "memory.max",
        "memory.swap.max",
        "cpu.weight",
        "pids.max",
        "cgroup.procs",
    ] {
        fs::write(leaf.join(f), "").unwrap();
    }
    c.create(
        "sb:web.0",
        &Limits {
            memory: Some(100 << 20),
            cpu_shares: Some(1024),
            pids: Some(64),
        },
    )
    .unwrap();
    let read = |f: &str| fs::read_to_string(leaf.join(f)).unwrap();
    assert_eq!(read("memory.max"), "104857600");
    assert_eq!(read("memory.swap.max"), "0");
    assert_eq!(read("cpu.weight"), "39");
    assert_eq!(read("pids.max"), "64");
    assert_eq!(
        fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
        "+cpu +memory +pids"
    );
    c.join_self("sb:web.0").unwrap();
    assert_eq!(read("cgroup.procs"), "0");
    assert_eq!(c.leaves(), ["sb:web.0"]);
}

#[test]
fn fail_closed_without_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = fake_v2(tmp.path());
    c.hierarchies[0].controllers = vec!["cpu".into()];
    let e = c
        .create(
            "x",
            &Limits {
                memory: Some(1 << 20),
                cpu_shares: None,
                pids: None,
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("memory cgroup controller is not available"),
        "{e}"
    );
    let e = c
        .create(
            "x",
            &Limits {
                memory: None,
                cpu_shares: None,
                pids: Some(5),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("pids"), "{e}");
}

#[test]
fn v1_self_join_writes_tasks() {
    // A self-move on v1 goes through `tasks` (no RCU grace period); the
    // fake hierarchy is plain files, so we see exactly what was written.
    let tmp = tempfile::tempdir().unwrap();
    let mut c = fake_v2(tmp.path());
    c.hierarchies[0].v2 = false;
    let leaf = tmp.path().join("svc/cairn/x");
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("tasks"), "").unwrap();
    fs::write(leaf.join("cgroup.procs"), "").unwrap();
    c.join_self("x").unwrap();
    assert_eq!(fs::read_to_string(leaf.join("tasks")).unwrap(), "0");
    assert_eq!(fs::read_to_string(leaf.join("cgroup.procs")).unwrap(), "");
}

#[test]
fn paths_below_a_mount_root() {
    assert_eq!(below_root("/docker/abc/x", "/"), "/docker/abc/x");
    assert_eq!(below_root("/docker/abc/x", "/docker/abc"), "/x");
    assert_eq!(below_root("/docker/abc", "/docker/abc"), "/");
    assert_eq!(below_root("/docker/abc", "/docker/abc/"), "/");
    // Not below the root (a prefix of a name is not a parent): unchanged.
    assert_eq!(
        below_root("/docker/abcd/x", "/docker/abc"),
        "/docker/abcd/x"
    );
}

#[test]
fn detects_inside_a_container_without_cgroupns() {
    // Docker on a v1 host: the container sees the host's cgroup paths in
    // /proc/self/cgroup, but its mounts start at its own cgroup.
    let mi = "\
32 24 0:28 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
33 24 0:29 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
    let own = "5:pids:/docker/abc\n4:memory:/docker/abc/sub\n";
    let c = detect(
        "cairn",
        &wanted(&["memory", "pids"]),
        &parse_mountinfo(mi),
        &parse_cgroup(own),
        &[],
    );
    let dirs: Vec<PathBuf> = c
        .hierarchies
        .iter()
        .map(|h| h.dir("cairn", Some("l")))
        .collect();
    assert_eq!(
        dirs,
        [
            PathBuf::from("/sys/fs/cgroup/memory/sub/cairn/l"),
            PathBuf::from("/sys/fs/cgroup/pids/cairn/l")
        ]
    );
    let v2 = detect(
        "cairn",
        &wanted(&["memory"]),
        &parse_mountinfo("30 24 0:26 /kubepods/p1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
        &parse_cgroup("0::/kubepods/p1/c2\n"),
        &wanted(&["memory"]),
    );
    assert_eq!(v2.hierarchies[0].base, "/c2");
}

/// Removes the test's cgroup root from every hierarchy (after its leaf).
struct RootGuard(Cgroups);

impl Drop for RootGuard {
    fn drop(&mut self) {
        let _ = self.0.destroy("leaf");
        for h in &self.0.hierarchies {
            let _ = fs::remove_dir(h.dir(&self.0.root, None));
        }
    }
}

/// Real kernel, as root: a leaf whose processes fork without pause is
/// emptied by `kill_all` and can be removed. On a host with the v1 freezer
/// (which the cgroup-controllers here ask for) the leaf is frozen while
/// it is killed and left thawed.
#[test]
fn kill_all_empties_a_leaf_that_keeps_forking() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs tests as root");
        return;
    }
    let root = format!("cairn-test-killall-{}", std::process::id());
    let cg = detect_host(&root, &wanted(&["name", "freezer", "pids"])).expect("detect");
    assert!(!cg.is_empty(), "no cgroup hierarchy to test with");
    let guard = RootGuard(cg);
    let cg = &guard.0;
    let limits = Limits {
        memory: None,
        cpu_shares: None,
        pids: Some(64),
    };
    cg.create("leaf", &limits).expect("create the leaf");
    // It waits for a line, so it is in the leaf before it forks.
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read go; while :; do sleep 300 & done"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sh");
    cg.join("leaf", child.id() as i32).expect("join");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
    }
    let t0 = std::time::Instant::now();
    while cg.procs("leaf").len() < 20 && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::yield_now();
    }
    assert!(cg.procs("leaf").len() >= 20, "{:?}", cg.procs("leaf"));
    cg.kill_all("leaf");
    let _ = child.wait();
    let t0 = std::time::Instant::now();
    while !cg.procs("leaf").is_empty() && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::yield_now();
    }
    assert_eq!(cg.procs("leaf"), Vec::<i32>::new(), "left in the leaf");
    let freezer = cg.hierarchies.iter().find(|h| !h.v2 && h.has("freezer"));
    if Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists() {
        assert!(freezer.is_some(), "the host's v1 freezer is not used");
    }
    if let Some(h) = freezer {
        let state = fs::read_to_string(h.dir(&cg.root, Some("leaf")).join("freezer.state"));
        assert_eq!(state.expect("freezer.state").trim(), "THAWED");
    }
    cg.destroy("leaf").expect("the emptied leaf is removed");
}
