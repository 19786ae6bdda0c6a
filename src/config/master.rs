//! `master.yaml`: where everything lives (platform operator, trusted).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problems};
use super::reader::{Value, check, opt_bool};
use super::syslog::{Facility, read_name};
use super::{LogLevel, host_path, read_file_capped, yaml};

/// The default location of the master config.
pub const DEFAULT_PATH: &str = "/etc/cairn/master.yaml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Master {
    /// The master file itself (absolute).
    pub path: PathBuf,
    pub sandboxes_dir: PathBuf,
    pub processes_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// Per-instance state dirs (absolute).
    pub state_dir: PathBuf,
    /// Where a container root is assembled inside each knot's mount ns.
    pub mount_dir: PathBuf,
    pub devfs_dir: Option<PathBuf>,
    /// `None` when cgroups are turned off (`cgroup-name: null`).
    pub cgroup_name: Option<String>,
    pub cgroup_controllers: Vec<String>,
    pub default_log_dir: PathBuf,
    pub config_log_dir: Option<PathBuf>,
    pub stdio_log_dir: PathBuf,
    /// The tree log (absolute).
    pub log_file: PathBuf,
    pub log_level: LogLevel,
    /// When set, the tree logs to syslog (`/dev/log`) instead of
    /// `log_file`.
    pub syslog_facility: Option<Facility>,
    /// The program name of the tree's syslog and journal messages.
    pub syslog_name: String,
    /// Under systemd, with stderr connected to the journal, log to the
    /// journal natively instead of `log_file` (`log-journal`, default on).
    pub log_journal: bool,
    /// How long a knot may take to build its container and start the
    /// workload before the tree kills it (a failed start).
    pub setup_timeout: Duration,
}

/// `setup-timeout` when master.yaml does not set one.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// `setup-timeout` bounds, seconds. Below 1 s a busy host (a cold start of
/// many instances on few cores) would kill healthy starts; an hour is
/// already far beyond any setup that is not stuck.
pub const SETUP_TIMEOUT_RANGE: (f64, f64) = (1.0, 3600.0);

pub const DEFAULT_CONTROLLERS: &[&str] = &["name", "cpu", "cpuacct", "memory", "blkio", "pids"];

const KNOWN_CONTROLLERS: &[&str] = &[
    "name", "cpu", "cpuacct", "memory", "blkio", "pids", "cpuset", "io", "devices", "freezer",
];

impl Master {
    /// Read and parse the master config at `path`.
    pub fn load(path: &Path) -> Result<Master, Problems> {
        let shown = path.display().to_string();
        let abs = std::path::absolute(path)
            .map_err(|e| ConfigError::new(&shown, format!("cannot resolve path: {e}")))?;
        let bytes = read_file_capped(&abs, yaml::TRUSTED.max_bytes)
            .map_err(|e| ConfigError::new(&shown, e))?;
        Master::parse(&abs, &bytes)
    }

    /// Parse `bytes` as the master config found at `path` (absolute).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Master, Problems> {
        let file = path.display().to_string();
        let ast = yaml::parse(&file, bytes, &yaml::TRUSTED)?;
        let root = Value::root(&file, &ast);
        let mut p = Problems::new();
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut f = root.fields()?;
        let dir =
            |f: &mut super::reader::Fields, key: &str, default: &str, p: &mut Problems| match f
                .opt(key)
            {
                Some(v) => check(p, host_path(&v, &base)).unwrap_or_default(),
                None => base.join(default),
            };
        let sandboxes_dir = dir(&mut f, "sandboxes-dir", "sandboxes", &mut p);
        let processes_dir = dir(&mut f, "processes-dir", "processes", &mut p);
        let runtime_dir = dir(&mut f, "runtime-dir", "/run/cairn", &mut p);
        let state_dir = match f.opt("state-dir") {
            Some(v) => check(&mut p, host_path(&v, &runtime_dir)).unwrap_or_default(),
            None => runtime_dir.join("state"),
        };
        let mount_dir = match f.opt("mount-dir") {
            Some(v) => check(&mut p, host_path(&v, &runtime_dir)).unwrap_or_default(),
            None => runtime_dir.join("mnt"),
        };
        let devfs_dir = f
            .opt("devfs-dir")
            .and_then(|v| check(&mut p, host_path(&v, &base)));
        let cgroup_name = match f.get("cgroup-name") {
            None => Some("cairn".to_string()),
            Some(v) if v.is_null() => None,
            Some(v) => check(&mut p, cgroup_name(&v)),
        };
        let cgroup_controllers = match f.opt("cgroup-controllers") {
            None => DEFAULT_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            Some(v) => check(&mut p, controllers(&v)).unwrap_or_default(),
        };
        let default_log_dir = dir(&mut f, "default-log-dir", "/var/log/cairn", &mut p);
        let config_log_dir = match f.get("config-log-dir") {
            None => Some(default_log_dir.join("config")),
            Some(v) if v.is_null() => None,
            Some(v) => check(&mut p, host_path(&v, &base)),
        };
        let stdio_log_dir = match f.opt("stdio-log-dir") {
            Some(v) => check(&mut p, host_path(&v, &base)).unwrap_or_default(),
            None => default_log_dir.join("stderr"),
        };
        let log_file = match f.opt("log-file") {
            Some(v) => check(&mut p, host_path(&v, &default_log_dir)).unwrap_or_default(),
            None => default_log_dir.join("master.log"),
        };
        let log_level = match f.opt("log-level") {
            Some(v) => check(&mut p, LogLevel::read(&v)).unwrap_or_default(),
            None => LogLevel::Warn,
        };
        let syslog_facility = f
            .opt("syslog-facility")
            .and_then(|v| check(&mut p, Facility::read(&v)));
        // lithos's code spells it syslog-app-name; its docs syslog-name.
        let syslog_name = match (f.opt("syslog-name"), f.opt("syslog-app-name")) {
            (Some(v), Some(_)) => {
                p.push(v.err("syslog-name and syslog-app-name are the same key; give one"));
                None
            }
            (Some(v), None) | (None, Some(v)) => check(&mut p, read_name(&v)),
            (None, None) => None,
        }
        .unwrap_or_else(|| "cairn".to_string());
        let log_journal = check(&mut p, opt_bool(&mut f, "log-journal"))
            .flatten()
            .unwrap_or(true);
        let setup_timeout = match f.opt("setup-timeout") {
            Some(v) => check(&mut p, setup_timeout(&v)),
            None => None,
        }
        .unwrap_or(DEFAULT_SETUP_TIMEOUT);
        f.finish(&mut p);
        p.into_result(Master {
            path: path.to_path_buf(),
            sandboxes_dir,
            processes_dir,
            runtime_dir,
            state_dir,
            mount_dir,
            devfs_dir,
            cgroup_name,
            cgroup_controllers,
            default_log_dir,
            config_log_dir,
            stdio_log_dir,
            log_file,
            log_level,
            syslog_facility,
            syslog_name,
            log_journal,
            setup_timeout,
        })
    }

    /// Path of the tree's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("tree.pid")
    }
    /// Path of the state snapshot.
    pub fn state_file(&self) -> PathBuf {
        self.runtime_dir.join("state.json")
    }
    /// Path of the Prometheus textfile.
    pub fn metrics_file(&self) -> PathBuf {
        self.runtime_dir.join("metrics.prom")
    }

    /// The dirs cairn writes into as root, with the key that sets each
    /// (the dir of `log-file` for that key). Each must be root's alone
    /// (docs/operations.md, "Files").
    pub fn own_dirs(&self) -> Vec<(&'static str, &Path)> {
        let mut v: Vec<(&'static str, &Path)> = vec![
            ("runtime-dir", &self.runtime_dir),
            ("state-dir", &self.state_dir),
            ("mount-dir", &self.mount_dir),
            ("default-log-dir", &self.default_log_dir),
            ("stdio-log-dir", &self.stdio_log_dir),
        ];
        if let Some(d) = &self.config_log_dir {
            v.push(("config-log-dir", d));
        }
        if let Some(d) = self.log_file.parent() {
            v.push(("log-file", d));
        }
        v
    }
}

/// A cgroup name: relative path components of `[A-Za-z0-9._-]`, no `..`.
fn cgroup_name(v: &Value) -> Result<String, ConfigError> {
    let s = v.str()?;
    let ok = !s.is_empty()
        && s.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if !ok {
        return Err(v.err(format!(
            "{s:?} is not a cgroup name (relative path of letters, digits, '.', '_', '-')"
        )));
    }
    Ok(s.to_string())
}

fn setup_timeout(v: &Value) -> Result<Duration, ConfigError> {
    let secs = v.seconds()?;
    let (min, max) = SETUP_TIMEOUT_RANGE;
    if !(min..=max).contains(&secs) {
        return Err(v.err(format!("{secs} s is not between {min} and {max} seconds")));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn controllers(v: &Value) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for item in v.seq()? {
        let s = item.str()?;
        if !KNOWN_CONTROLLERS.contains(&s) {
            return Err(item.err(format!(
                "unknown cgroup controller {s:?} (known: {})",
                KNOWN_CONTROLLERS.join(", ")
            )));
        }
        if !out.iter().any(|c| c == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Master, Problems> {
        Master::parse(Path::new("/etc/x/master.yaml"), text.as_bytes())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let m = parse("").unwrap();
        assert_eq!(m.sandboxes_dir, Path::new("/etc/x/sandboxes"));
        assert_eq!(m.processes_dir, Path::new("/etc/x/processes"));
        assert_eq!(m.runtime_dir, Path::new("/run/cairn"));
        assert_eq!(m.state_dir, Path::new("/run/cairn/state"));
        assert_eq!(m.mount_dir, Path::new("/run/cairn/mnt"));
        assert_eq!(m.devfs_dir, None);
        assert_eq!(m.cgroup_name.as_deref(), Some("cairn"));
        assert_eq!(m.cgroup_controllers, DEFAULT_CONTROLLERS);
        assert_eq!(m.default_log_dir, Path::new("/var/log/cairn"));
        assert_eq!(
            m.config_log_dir.as_deref(),
            Some(Path::new("/var/log/cairn/config"))
        );
        assert_eq!(m.stdio_log_dir, Path::new("/var/log/cairn/stderr"));
        assert_eq!(m.log_file, Path::new("/var/log/cairn/master.log"));
        assert_eq!(m.log_level, LogLevel::Warn);
        assert_eq!(m.syslog_facility, None);
        assert_eq!(m.syslog_name, "cairn");
        assert!(m.log_journal);
        assert_eq!(m.setup_timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_key_both_spellings() {
        let m = parse(
            "sandboxes_dir: sb\nprocesses-dir: /p\nruntime-dir: rt\nstate_dir: st\n\
             mount-dir: /m\ndevfs-dir: /dev2\ncgroup-name: test/cairn\n\
             cgroup_controllers: [memory, pids]\ndefault-log-dir: /l\nconfig-log-dir: null\n\
             stdio-log-dir: /s\nlog-file: t.log\nlog_level: debug\nsyslog-facility: daemon\n\
             syslog-name: cn\nsetup_timeout: 2.5\nlog_journal: false\n",
        )
        .unwrap();
        assert_eq!(m.sandboxes_dir, Path::new("/etc/x/sb"));
        assert_eq!(m.processes_dir, Path::new("/p"));
        assert_eq!(m.runtime_dir, Path::new("/etc/x/rt"));
        assert_eq!(m.state_dir, Path::new("/etc/x/rt/st"));
        assert_eq!(m.mount_dir, Path::new("/m"));
        assert_eq!(m.devfs_dir.as_deref(), Some(Path::new("/dev2")));
        assert_eq!(m.cgroup_name.as_deref(), Some("test/cairn"));
        assert_eq!(m.cgroup_controllers, ["memory", "pids"]);
        assert_eq!(m.config_log_dir, None);
        assert_eq!(m.stdio_log_dir, Path::new("/s"));
        assert_eq!(m.log_file, Path::new("/l/t.log"));
        assert_eq!(m.log_level, LogLevel::Debug);
        assert_eq!(m.syslog_facility, Some(Facility::Daemon));
        assert_eq!(m.syslog_name, "cn");
        assert!(!m.log_journal);
        assert_eq!(m.setup_timeout, Duration::from_millis(2500));
        let m = parse("setup-timeout: 1\n").unwrap();
        assert_eq!(m.setup_timeout, Duration::from_secs(1));
        let m = parse("setup-timeout: 3600\n").unwrap();
        assert_eq!(m.setup_timeout, Duration::from_secs(3600));
    }

    #[test]
    fn config_log_dir_and_derived_paths() {
        let m = parse("runtime-dir: /r\nconfig-log-dir: cl\nlog-file: /var/log/c/m.log\n").unwrap();
        assert_eq!(m.config_log_dir.as_deref(), Some(Path::new("/etc/x/cl")));
        assert_eq!(m.pid_file(), Path::new("/r/tree.pid"));
        assert_eq!(m.state_file(), Path::new("/r/state.json"));
        assert_eq!(m.metrics_file(), Path::new("/r/metrics.prom"));
        assert_eq!(
            m.own_dirs(),
            [
                ("runtime-dir", Path::new("/r")),
                ("state-dir", Path::new("/r/state")),
                ("mount-dir", Path::new("/r/mnt")),
                ("default-log-dir", Path::new("/var/log/cairn")),
                ("stdio-log-dir", Path::new("/var/log/cairn/stderr")),
                ("config-log-dir", Path::new("/etc/x/cl")),
                ("log-file", Path::new("/var/log/c")),
            ]
        );
        let m = parse("config-log-dir: null\n").unwrap();
        let keys: Vec<&str> = m.own_dirs().iter().map(|(k, _)| *k).collect();
        assert!(!keys.contains(&"config-log-dir"), "{keys:?}");
    }

    #[test]
    fn cgroups_off_and_app_name() {
        let m = parse("cgroup-name: null\nsyslog-app-name: x\n").unwrap();
        assert_eq!(m.cgroup_name, None);
        assert_eq!(m.syslog_name, "x");
    }

    #[test]
    fn every_syslog_facility_by_name_with_its_code() {
        let codes: Vec<(&str, u8)> = super::super::syslog::FACILITIES
            .iter()
            .map(|(n, f)| (*n, f.code()))
            .collect();
        let mut want = vec![
            ("kern", 0),
            ("user", 1),
            ("mail", 2),
            ("daemon", 3),
            ("auth", 4),
            ("syslog", 5),
            ("lpr", 6),
            ("news", 7),
            ("uucp", 8),
            ("cron", 9),
            ("authpriv", 10),
            ("ftp", 11),
        ];
        let locals: Vec<String> = (0..8).map(|i| format!("local{i}")).collect();
        want.extend(locals.iter().zip(16..).map(|(n, c)| (n.as_str(), c)));
        assert_eq!(codes, want);
        for (name, code) in want {
            let m = parse(&format!("syslog-facility: {name}\n")).unwrap();
            let f = m.syslog_facility.expect("a facility");
            assert_eq!((f.name(), f.code()), (name, code));
        }
        let m = parse("syslog_facility: LOCAL5\n").unwrap();
        assert_eq!(m.syslog_facility, Some(Facility::Local5));
    }

    #[test]
    fn an_unknown_syslog_facility_names_file_line_key_and_the_closest() {
        let e = parse("log-level: info\nsyslog-facility: locl3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/x/master.yaml:2: syslog-facility: \"locl3\" is not a syslog facility; did you mean \"local3\"? (known: kern, user, "),
            "{e}"
        );
        assert!(e.contains("local7)"), "{e}");
        let e = parse("syslog-facility: 3\n").unwrap_err().to_string();
        assert!(
            e.contains(":1: syslog-facility: \"3\" is not a syslog facility (known:"),
            "{e}"
        );
        let e = parse("syslog-facility: [daemon]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("syslog-facility: a scalar is expected"), "{e}");
    }

    #[test]
    fn rejects() {
        for (text, needle) in [
            ("bogus: 1\n", "bogus: unknown key"),
            ("cgroup-name: ../x\n", "not a cgroup name"),
            ("cgroup-controllers: [mem]\n", "unknown cgroup controller"),
            ("log-level: loud\n", "log level"),
            ("runtime-dir: [a]\n", "scalar"),
            ("a: &x 1\nb: *x\nc: [", "YAML"),
            ("runtime-dir: /a\nruntime_dir: /b\n", "given twice"),
            ("syslog-name: a\nsyslog-app-name: b\n", "same key"),
            ("syslog-name: ''\n", "1 to 48 characters"),
            ("syslog-name: a b\n", "' ' is not allowed"),
            ("syslog-app-name: 'a:b'\n", "':' is not allowed"),
            ("syslog-name: \"a\\nb\"\n", "'\\n' is not allowed"),
            ("log-journal: maybe\n", "not a boolean"),
            (
                "setup-timeout: 0\n",
                "setup-timeout: 0 s is not between 1 and 3600",
            ),
            ("setup-timeout: 0.5\n", "not between 1 and 3600"),
            ("setup-timeout: 3600.5\n", "not between 1 and 3600"),
            ("setup_timeout: NaN\n", "finite"),
            ("setup-timeout: -1\n", "negative"),
            ("setup-timeout: 1e30\n", "more than"),
            ("setup-timeout: 30s\n", "not a number of seconds"),
            ("setup-timeout: 1\nsetup_timeout: 2\n", "given twice"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?} gave {e}");
            assert!(e.starts_with("/etc/x/master.yaml:"), "{e}");
        }
    }
}
