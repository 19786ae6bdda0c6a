//! Cgroups, v1 and v2 (cgroups(7)).
//!
//! Hosts differ: pure v2 (`/sys/fs/cgroup` is cgroup2), or a v1/v2 hybrid
//! (v1 controllers under `/sys/fs/cgroup/<ctl>`, an empty cgroup2 at
//! `/sys/fs/cgroup/unified`). We detect, per configured controller, which
//! hierarchy holds it. Every instance gets `<base>/<root>/<leaf>` in each
//! hierarchy, where `<base>` is the cgroup the supervisor itself runs in
//! there. Limits are written before any workload runs; a limit that cannot
//! be applied is an error (fail closed).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;

mod teardown;
use super::proc::{MountInfo, parse_cgroup, parse_cgroup_mounts, read_text};

/// One cgroup hierarchy we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub mount: PathBuf,
    /// Our own cgroup inside it (the supervisor's), e.g. `/system.slice/cairn.service`.
    pub base: String,
    pub v2: bool,
    /// Controllers we use from it (configured names; v2 names on v2).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    /// `<mount>/<base>/<root>[/<leaf>]`.
    pub fn dir(&self, root: &str, leaf: Option<&str>) -> PathBuf {
        let mut p = self.mount.clone();
        for part in self
            .base
            .split('/')
            .chain(root.split('/'))
            .filter(|s| !s.is_empty())
        {
            p.push(part);
        }
        if let Some(l) = leaf {
            p.push(l);
        }
        p
    }
    fn has(&self, ctl: &str) -> bool {
        self.controllers.iter().any(|c| c == ctl)
    }
}

/// The hierarchies for a set of configured controllers, and the root name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    pub root: String,
    pub hierarchies: Vec<Hierarchy>,
}

/// Limits to write for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<u64>,
}

/// v1 `cpu.shares` (2..262144, default 1024) to v2 `cpu.weight`
/// (1..10000, default 100), the conversion runc and systemd use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// Pick hierarchies for `wanted` (configured names like `memory`, `name`)
/// from mountinfo and our /proc/self/cgroup. `v2_controllers` lists the
/// controllers available at the root of a cgroup2 hierarchy, if any.
pub fn detect(
    root: &str,
    wanted: &[String],
    mountinfo: &[MountInfo],
    self_cgroup: &[(u32, Vec<String>, String)],
    v2_controllers: &[String],
) -> Cgroups {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    let v2_mount = mountinfo.iter().find(|m| m.fstype == "cgroup2");
    let v2_base = self_cgroup
        .iter()
        .find(|(id, c, _)| *id == 0 && c.is_empty())
        .map(|(_, _, p)| p.clone());
    for want in wanted {
        // v1 first: a controller bound to v1 is not available on v2.
        let v1 = mountinfo.iter().find(|m| {
            m.fstype == "cgroup"
                && if want == "name" {
                    m.super_options.iter().any(|o| o.starts_with("name="))
                } else {
                    m.super_options.iter().any(|o| o == want)
                }
        });
        if let Some(m) = v1 {
            let key: Vec<String> = if want == "name" {
                m.super_options
                    .iter()
                    .filter(|o| o.starts_with("name="))
                    .cloned()
                    .collect()
            } else {
                vec![want.clone()]
            };
            let base = self_cgroup
                .iter()
                .find(|(_, c, _)| key.iter().all(|k| c.contains(k)))
                .map(|(_, _, p)| below_root(p, &m.root))
                .unwrap_or_else(|| "/".into());
            let mount = PathBuf::from(&m.mount_point);
            match hierarchies.iter_mut().find(|h| h.mount == mount) {
                Some(h) => h.controllers.push(want.clone()),
                None => hierarchies.push(Hierarchy {
                    mount,
                    base,
                    v2: false,
                    controllers: vec![want.clone()],
                }),
            }
            continue;
        }
        let v2_name = match want.as_str() {
            "cpuacct" => "cpu",
            "blkio" => "io",
            other => other,
        };
        if let (Some(m), Some(base)) = (v2_mount, &v2_base) {
            // `name` on v2: the unified tree itself tracks our processes.
            let available = want == "name" || v2_controllers.iter().any(|c| c == v2_name);
            if !available {
                continue;
            }
            let mount = PathBuf::from(&m.mount_point);
            let h = match hierarchies.iter_mut().find(|h| h.mount == mount) {
                Some(h) => h,
                None => {
                    hierarchies.push(Hierarchy {
                        mount,
                        base: below_root(base, &m.root),
                        v2: true,
                        controllers: Vec::new(),
                    });
                    hierarchies.last_mut().expect("just pushed")
                }
            };
            if want != "name" && !h.has(v2_name) {
                h.controllers.push(v2_name.to_string());
            }
        }
    }
    Cgroups {
        root: root.to_string(),
        hierarchies,
    }
}

/// Our cgroup path as seen from a hierarchy mount whose root is
/// `mount_root` (mountinfo field 4). In a container without a cgroup
/// namespace, /proc/self/cgroup says `/docker/ID/x` while the container's
/// mount of the hierarchy starts at `/docker/ID`: the path under the mount
/// is then `/x`.
pub fn below_root(path: &str, mount_root: &str) -> String {
    let root = mount_root.trim_end_matches('/');
    if root.is_empty() {
        return path.to_string();
    }
    match path.strip_prefix(root) {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// Detect on this host, for `root` and the configured controllers.
pub fn detect_host(root: &str, wanted: &[String]) -> Result<Cgroups, Error> {
    let mi = read_text("/proc/self/mountinfo")
        .map_err(|e| Error::new("read", "/proc/self/mountinfo", e))?;
    let cg =
        read_text("/proc/self/cgroup").map_err(|e| Error::new("read", "/proc/self/cgroup", e))?;
    let mounts = parse_cgroup_mounts(&mi);
    let v2_ctl = mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .and_then(|m| read_text(Path::new(&m.mount_point).join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .unwrap_or_default();
    Ok(detect(root, wanted, &mounts, &parse_cgroup(&cg), &v2_ctl))
}

/// mkdir(2) of a cgroup (and its parents with `recursive`), mode 0755:
/// only root may create cgroups in ours or move processes into them.
/// (cgroupfs takes the mode less the umask; the knot, which creates them,
/// works with 022.)
fn mkdir(dir: &Path, recursive: bool) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(recursive)
        .mode(0o755)
        .create(dir)
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::new("open", path.display(), e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| Error::new("write", format!("{} ({value})", path.display()), e))
}

impl Cgroups {
    pub fn is_empty(&self) -> bool {
        self.hierarchies.is_empty()
    }

    /// Only the hierarchies that receive one of `limits` (a one-off
    /// command needs no tracking or accounting cgroups; each hierarchy
    /// costs a mkdir, a move and an rmdir).
    pub fn limiting(&self, limits: &Limits) -> Cgroups {
        let wanted = |h: &Hierarchy| {
            (limits.memory.is_some() && h.has("memory"))
                || (limits.pids.is_some() && h.has("pids"))
                || (limits.cpu_shares.is_some_and(|s| s != 1024) && h.has("cpu"))
        };
        Cgroups {
            root: self.root.clone(),
            hierarchies: self
                .hierarchies
                .iter()
                .filter(|h| wanted(h))
                .cloned()
                .collect(),
        }
    }

    /// Whether a limit of this kind can be applied.
    pub fn supports(&self, ctl: &str) -> bool {
        self.hierarchies.iter().any(|h| h.has(ctl))
    }

    /// Create `leaf` in every hierarchy and write `limits` (fail closed).
    pub fn create(&self, leaf: &str, limits: &Limits) -> Result<(), Error> {
        let missing = |what: &'static str, ctl: &str| {
            Error::new(
                what,
                "",
                std::io::Error::other(format!(
                    "the {ctl} cgroup controller is not available (check cgroup-controllers in master.yaml)"
                )),
            )
        };
        if limits.memory.is_some() && !self.supports("memory") {
            return Err(missing("memory-limit", "memory"));
        }
        if limits.pids.is_some() && !self.supports("pids") {
            return Err(missing("pids-limit", "pids"));
        }
        for h in &self.hierarchies {
            let dir = h.dir(&self.root, Some(leaf));
            if h.v2 {
                self.enable_v2(h)?;
            }
            match mkdir(&dir, false) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    mkdir(&dir, true).map_err(|e| Error::new("mkdir", dir.display(), e))?;
                }
                Err(e) => return Err(Error::new("mkdir", dir.display(), e)),
            }
            write_limits(h, &dir, limits)?;
        }
        Ok(())
    }

    /// v2: controllers must be enabled in every parent's subtree_control.
    fn enable_v2(&self, h: &Hierarchy) -> Result<(), Error> {
        if h.controllers.is_empty() {
            return Ok(());
        }
        let root_dir = h.dir(&self.root, None);
        if !root_dir.exists() {
            mkdir(&root_dir, true).map_err(|e| Error::new("mkdir", root_dir.display(), e))?;
        }
        let ctl = root_dir.join("cgroup.subtree_control");
        let current = read_text(&ctl).unwrap_or_default();
        let want: Vec<String> = h
            .controllers
            .iter()
            .filter(|c| !current.split_whitespace().any(|x| x == c.as_str()))
            .map(|c| format!("+{c}"))
            .collect();
        if !want.is_empty() {
            write(&ctl, &want.join(" "))?;
        }
        Ok(())
    }

    /// Move `pid` into `leaf` in every hierarchy.
    pub fn join(&self, leaf: &str, pid: i32) -> Result<(), Error> {
        for h in &self.hierarchies {
            write(
                &h.dir(&self.root, Some(leaf)).join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        Ok(())
    }

    /// Move the calling process into `leaf` in every hierarchy. The caller
    /// must be single-threaded (the knot is).
    ///
    /// On v1 this writes `0` to `tasks`, not `cgroup.procs`: the kernel
    /// (since 5.18, "cgroup: Optimize single thread migration") moves a
    /// thread that migrates itself without taking the global
    /// threadgroup rwsem, whose write side waits for an RCU grace period.
    /// On an idle host that wait is 10 to 30 ms per start; the `tasks`
    /// write costs about 0.06 ms. For a single-threaded process moving
    /// its only thread moves the process. v2 domain cgroups have no such
    /// path (`cgroup.threads` stays within a threaded domain), so v2 uses
    /// `cgroup.procs`.
    pub fn join_self(&self, leaf: &str) -> Result<(), Error> {
        for h in &self.hierarchies {
            let file = if h.v2 { "cgroup.procs" } else { "tasks" };
            write(&h.dir(&self.root, Some(leaf)).join(file), "0")?;
        }
        Ok(())
    }

    /// The processes in `leaf` (from the first hierarchy).
    pub fn procs(&self, leaf: &str) -> Vec<i32> {
        let Some(h) = self.hierarchies.first() else {
            return Vec::new();
        };
        read_text(h.dir(&self.root, Some(leaf)).join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Leaf names under the root (in the first hierarchy).
    pub fn leaves(&self) -> Vec<String> {
        let Some(h) = self.hierarchies.first() else {
            return Vec::new();
        };
        let Ok(rd) = fs::read_dir(h.dir(&self.root, None)) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Memory in use by `leaf`, bytes.
    pub fn memory_bytes(&self, leaf: &str) -> Option<u64> {
        let h = self.hierarchies.iter().find(|h| h.has("memory"))?;
        let file = if h.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        read_u64(&h.dir(&self.root, Some(leaf)).join(file))
    }

    /// CPU time used by `leaf`, nanoseconds.
    pub fn cpu_ns(&self, leaf: &str) -> Option<u64> {
        if let Some(h) = self.hierarchies.iter().find(|h| !h.v2 && h.has("cpuacct")) {
            return read_u64(&h.dir(&self.root, Some(leaf)).join("cpuacct.usage"));
        }
        let h = self.hierarchies.iter().find(|h| h.v2 && h.has("cpu"))?;
        let text = read_text(h.dir(&self.root, Some(leaf)).join("cpu.stat")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    }

    /// How many OOM kills happened in `leaf`.
    pub fn oom_kills(&self, leaf: &str) -> Option<u64> {
        let h = self.hierarchies.iter().find(|h| h.has("memory"))?;
        let dir = h.dir(&self.root, Some(leaf));
        let (file, key) = if h.v2 {
            ("memory.events", "oom_kill ")
        } else {
            ("memory.oom_control", "oom_kill ")
        };
        let text = read_text(dir.join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The memory hierarchy's mount point and the path of `leaf` below it.
    pub fn memory_dir_parts(&self, leaf: &str) -> Option<(PathBuf, String)> {
        let h = self.hierarchies.iter().find(|h| h.has("memory"))?;
        let full = h.dir(&self.root, Some(leaf));
        let rel = full.strip_prefix(&h.mount).ok()?.to_str()?.to_string();
        Some((h.mount.clone(), rel))
    }

    /// Path of the memory cgroup dir of `leaf`, if memory is controlled.
    pub fn memory_dir(&self, leaf: &str) -> Option<PathBuf> {
        let h = self.hierarchies.iter().find(|h| h.has("memory"))?;
        Some(h.dir(&self.root, Some(leaf)))
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    read_text(p).ok()?.trim().parse().ok()
}

fn write_limits(h: &Hierarchy, dir: &Path, l: &Limits) -> Result<(), Error> {
    if let Some(mem) = l.memory.filter(|_| h.has("memory")) {
        if h.v2 {
            write(&dir.join("memory.max"), &mem.to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
        } else {
            write(&dir.join("memory.limit_in_bytes"), &mem.to_string())?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &mem.to_string())?;
            }
        }
    }
    if let Some(shares) = l.cpu_shares.filter(|_| h.has("cpu")) {
        if h.v2 {
            write(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        } else {
            write(&dir.join("cpu.shares"), &shares.to_string())?;
        }
    }
    if let Some(pids) = l.pids.filter(|_| h.has("pids")) {
        write(&dir.join("pids.max"), &pids.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
