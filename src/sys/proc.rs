//! Parsers for /proc files. Pure functions over text, unit-tested; the
//! readers around them are one line each.

/// One line of /proc/PID/mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`ro,nosuid,...`).
    pub options: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options.
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
}

/// Undo the octal escapes mountinfo uses for space, tab, newline, `\`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &s[i + 1..(i + 4).min(s.len())];
            if oct.len() == 3
                && let Ok(v) = u8::from_str_radix(oct, 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Only the cgroup (v1) and cgroup2 mounts of a mountinfo text: a host
/// with thousands of mounts costs one scan, not thousands of records.
pub fn parse_cgroup_mounts(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter(|l| l.contains(" - cgroup"))
        .filter_map(parse_mountinfo_line)
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect()
}

/// Read a /proc or cgroupfs file. They report a size of 0, so
/// `fs::read_to_string` would start with 32-byte reads, and every read(2)
/// of a seq_file walks the kernel's list again up to its offset. One
/// 16 KiB buffer, doubled when full, makes it one or two calls.
pub fn read_text(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(16 << 10);
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let _dev = l.next()?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let options = l.next()?.split(',').map(str::to_string).collect();
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape(r.next()?);
    let super_options = r
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect();
    Some(MountInfo {
        id,
        parent,
        root,
        mount_point,
        options,
        fstype,
        source,
        super_options,
    })
}

/// /proc/PID/cgroup lines: (hierarchy id, controllers, path).
pub fn parse_cgroup(text: &str) -> Vec<(u32, Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let ctl = parts.next()?;
            let path = parts.next()?.to_string();
            let ctls = if ctl.is_empty() {
                Vec::new()
            } else {
                ctl.split(',').map(str::to_string).collect()
            };
            Some((id, ctls, path))
        })
        .collect()
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot. The
/// command name (field 2) may hold spaces and parentheses, so split after
/// the last `)`.
pub fn parse_stat_start_time(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ')' come fields 3.. ; start time is field 22 → index 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 4 of /proc/PID/stat: the parent pid.
pub fn parse_stat_ppid(text: &str) -> Option<i32> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Fields 1 and 4 of /proc/PID/stat: the pid and the parent pid.
pub fn parse_stat_pids(text: &str) -> Option<(i32, i32)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    Some((pid, parse_stat_ppid(text)?))
}

/// Our pid as the /proc we see numbers it (our host pid when /proc is the
/// host's, even from inside a pid namespace of our own), or `getpid()`
/// when /proc cannot be read: what a child of ours finds as its parent in
/// its `/proc/self/stat`.
pub fn own_pid_in_proc() -> i32 {
    read_text("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat_pids(&s))
        .map_or_else(super::process::getpid, |(pid, _)| pid)
}

/// A `Key:\tvalue` field of /proc/PID/status.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Read /proc/PID/stat and return the start time, if the process exists.
pub fn start_time(pid: i32) -> Option<u64> {
    parse_stat_start_time(&read_text(format!("/proc/{pid}/stat")).ok()?)
}

/// The pid namespace of process `pid` (`pid:[INODE]`, the link
/// /proc/PID/ns/pid reads), if it exists and we may look.
pub fn pid_ns(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The umask of process `pid` (the `Umask:` field of /proc/PID/status,
/// Linux 4.7), if it can be read.
pub fn umask_of(pid: i32) -> Option<u32> {
    let text = read_text(format!("/proc/{pid}/status")).ok()?;
    u32::from_str_radix(status_field(&text, "Umask")?, 8).ok()
}

/// Our oom_score_adj, if it can be read.
pub fn oom_score_adj() -> Option<i32> {
    read_text("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Set our oom_score_adj to `value` and read it back. Done while we still
/// hold CAP_SYS_RESOURCE (where we have it), the kernel also sets the
/// lowest value we may later choose without it to `value`, so a workload
/// cannot go back to the supervisor's -1000.
pub fn set_oom_score_adj(value: i32) -> super::Result<()> {
    let path = "/proc/self/oom_score_adj";
    std::fs::write(path, value.to_string()).map_err(|e| super::Error::new("write", path, e))?;
    let back = read_text(path).map_err(|e| super::Error::new("read", path, e))?;
    if back.trim() != value.to_string() {
        return Err(super::Error::new(
            "oom_score_adj",
            path,
            std::io::Error::other(format!("is {} after writing {value}", back.trim())),
        ));
    }
    Ok(())
}

/// A process and the directory it runs in as its `/`: the device and
/// inode of its `/proc/PID/root` (a bind mount of a directory has the
/// directory's own device and inode, so a container's root is found as
/// the image directory it was made from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcRoot {
    pub pid: i32,
    pub dev: u64,
    pub ino: u64,
}

/// The roots of what this /proc shows.
#[derive(Debug, Default)]
pub struct Roots {
    /// Of every thread we may look at.
    pub seen: Vec<ProcRoot>,
    /// Processes whose root we may not look at (EACCES, EPERM: a
    /// non-dumpable process of a user namespace above ours, or an LSM's
    /// refusal), by pid.
    pub hidden: Vec<i32>,
}

/// The root of every thread of every process this /proc shows. One that
/// ends while we look is skipped, one we may not look at is listed in
/// `hidden`; any other failure is an error that names the file.
pub fn roots() -> super::Result<Roots> {
    use std::os::unix::fs::MetadataExt;
    let gone = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH));
    let denied = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM));
    let mut out = Roots::default();
    let rd = std::fs::read_dir("/proc").map_err(|e| super::Error::new("read", "/proc", e))?;
    for entry in rd {
        let entry = entry.map_err(|e| super::Error::new("read", "/proc", e))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
            Ok(t) => t,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(super::Error::new("read", format!("/proc/{pid}/task"), e)),
        };
        for task in tasks {
            let task = match task {
                Ok(t) => t,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(super::Error::new("read", format!("/proc/{pid}/task"), e)),
            };
            let root = task.path().join("root");
            match std::fs::metadata(&root) {
                Ok(m) => out.seen.push(ProcRoot {
                    pid,
                    dev: m.dev(),
                    ino: m.ino(),
                }),
                // Ended, or a zombie (its root is released).
                Err(e) if gone(&e) => {}
                Err(e) if denied(&e) => {
                    if !out.hidden.contains(&pid) {
                        out.hidden.push(pid);
                    }
                }
                Err(e) => return Err(super::Error::new("stat", root.display(), e)),
            }
        }
    }
    Ok(out)
}

/// The command name of `pid` (`/proc/PID/comm`), if it still runs.
pub fn comm(pid: i32) -> Option<String> {
    read_text(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n\
        35 24 0:30 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory\n\
        40 24 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
        41 24 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
        50 22 8:1 /a\\040b /mnt/with\\040space ro,nosuid - ext4 /dev/vda rw\n";

    #[test]
    fn roots_show_our_own_root() {
        use std::os::unix::fs::MetadataExt;
        let me = own_pid_in_proc();
        let slash = std::fs::metadata("/").expect("stat /");
        let roots = roots().expect("roots").seen;
        assert!(
            roots
                .iter()
                .any(|r| r.pid == me && (r.dev, r.ino) == (slash.dev(), slash.ino())),
            "{roots:?}"
        );
    }

    #[test]
    fn cgroup_mounts_only() {
        let m = parse_cgroup_mounts(MI);
        let points: Vec<&str> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
        );
        // Spaces in a mount point are escaped: it never fakes the separator.
        let tricky = "60 22 0:40 / /x\\040-\\040cgroup rw - tmpfs tmpfs rw\n";
        assert!(parse_cgroup_mounts(tricky).is_empty());
    }

    #[test]
    fn reads_proc_files_whole() {
        let me = read_text("/proc/self/status").unwrap();
        assert!(status_field(&me, "Pid").is_some(), "{me}");
        assert!(read_text("/proc/self/no-such-file").is_err());
    }

    #[test]
    fn mountinfo() {
        let m = parse_mountinfo(MI);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_point, "/proc");
        assert!(m[0].has("nosuid") && m[0].has("noexec"));
        assert_eq!(m[1].fstype, "cgroup");
        assert!(m[1].super_options.contains(&"memory".to_string()));
        assert!(m[2].super_options.contains(&"name=systemd".to_string()));
        assert_eq!(m[4].mount_point, "/mnt/with space");
        assert_eq!(m[4].root, "/a b");
        assert!(m[4].has("ro"));
        assert!(parse_mountinfo("garbage\n").is_empty());
    }

    #[test]
    fn cgroup_lines() {
        let c = parse_cgroup("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(
            c[0],
            (4, vec!["memory".to_string()], "/process_api/x".to_string())
        );
        assert_eq!(c[1].1, ["cpu", "cpuacct"]);
        assert_eq!(c[2], (0, vec![], "/user.slice".to_string()));
    }

    #[test]
    fn stat() {
        let s = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(parse_stat_start_time(s), Some(987654));
        assert_eq!(parse_stat_ppid(s), Some(1));
        assert_eq!(parse_stat_pids(s), Some((1234, 1)));
        assert_eq!(parse_stat_start_time("nonsense"), None);
    }

    #[test]
    fn status() {
        let s = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nNoNewPrivs:\t1\n";
        assert_eq!(status_field(s, "NoNewPrivs"), Some("1"));
        assert_eq!(status_field(s, "Uid"), Some("1000\t1000\t1000\t1000"));
        assert_eq!(status_field(s, "Gid"), None);
    }
}
