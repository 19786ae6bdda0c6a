//! The configuration layer: the four lithos-compatible files, variables,
//! and validation of a container config against its sandbox and process
//! entry. Nothing here makes a syscall except reading operator-written
//! files by path (`load` functions); untrusted container configs are handed
//! in as bytes (see `validate::parse_and_validate`).

pub mod ceilings;
pub mod container;
pub mod error;
pub mod ids;
pub mod isolation;
pub mod master;
pub mod probe;
pub mod probe_check;
pub mod process;
pub mod range;
pub mod reader;
pub mod sandbox;
pub mod secrets;
pub mod secrets_check;
pub mod stdio_log;
pub mod syslog;
pub mod units;
pub mod validate;
pub mod values;
pub mod variables;
pub mod volume;
pub mod yaml;

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, Problems};
use reader::Value;

/// Log verbosity, as in `log-level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    Error,
    #[default]
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    fn read(v: &Value) -> Result<LogLevel, ConfigError> {
        let s = v.str()?;
        LogLevel::parse(s).ok_or_else(|| {
            v.err(format!(
                "{s:?} is not a log level (error, warn, info, debug, trace)"
            ))
        })
    }

    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A host path from an operator-written file; relative paths are relative
/// to `base` (the directory of the file, or another documented base).
fn host_path(v: &Value, base: &Path) -> Result<PathBuf, ConfigError> {
    let s = v.str()?;
    if s.is_empty() {
        return Err(v.err("an empty path is not a path"));
    }
    let p = Path::new(s);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    })
}

/// A path inside a container: absolute, no `..`, returned normalized
/// (no `.`, no repeated or trailing `/`).
pub fn container_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not an absolute path"));
    }
    let mut out = String::new();
    for c in Path::new(s).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(format!("{s:?} contains '..'")),
            Component::Normal(n) => {
                let n = n
                    .to_str()
                    .ok_or_else(|| format!("{s:?} is not valid UTF-8"))?;
                out.push('/');
                out.push_str(n);
            }
            Component::Prefix(_) => return Err(format!("{s:?} is not a Unix path")),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn read_container_path(v: &Value) -> Result<String, ConfigError> {
    container_path(v.str()?).map_err(|e| v.err(e))
}

/// A path the container uses as a file or directory (executable, workdir,
/// stdout-stderr-file): a `container_path` that does not lead through the
/// kernel's magic links. `/proc/self/fd/N`, `/proc/PID/root`,
/// `/proc/self/exe` and `/dev/fd/N` (a link to `/proc/self/fd`) can name
/// what some process holds open instead of a file of the image, such as a
/// directory or binary of the host (runc's CVE-2024-21626 and
/// CVE-2019-5736). The knot also resolves these paths without magic links;
/// this refuses them up front, naming the key.
pub fn used_container_path(s: &str) -> Result<String, String> {
    let p = container_path(s)?;
    let under = |dir: &str| p == dir || p.starts_with(&format!("{dir}/"));
    if under("/proc") {
        return Err(format!(
            "{p:?} is under /proc, whose links lead to what processes hold open (the host's files and binaries); use a path of the image"
        ));
    }
    if under("/dev/fd") || ["/dev/stdin", "/dev/stdout", "/dev/stderr"].contains(&p.as_str()) {
        return Err(format!(
            "{p:?} is a link to /proc/self/fd, which leads to what the process holds open; use a path of the image"
        ));
    }
    Ok(p)
}

fn read_used_container_path(v: &Value) -> Result<String, ConfigError> {
    used_container_path(v.str()?).map_err(|e| v.err(e))
}

/// A name used in paths, cgroups and instance names: `[A-Za-z0-9_-]+`.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a file that is not a regular file is, for error messages.
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a symlink"
    }
}

/// Read a whole operator-written file: a regular file of at most `cap`
/// bytes. A FIFO, a device or a directory given by mistake is refused
/// without waiting or reading: the open is non-blocking (opening a FIFO
/// for reading would otherwise wait for a writer that may never come) and
/// never makes it our terminal.
pub fn read_file_capped(path: &Path, cap: usize) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({})",
            file_kind(meta.file_type())
        ));
    }
    // Sized from the metadata: one read(2) for the file, one for the EOF.
    let mut buf = Vec::with_capacity((meta.len() as usize).min(cap) + 1);
    file.take(cap as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() > cap {
        return Err(format!("file is larger than the limit of {cap} bytes"));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_container_paths_never_lead_through_proc() {
        for bad in [
            "/proc",
            "/proc/self/fd/4",
            "/proc/1/root/etc",
            "//proc/self/exe",
            "/./proc/self/cwd",
            "/dev/fd",
            "/dev/fd/5",
            "/dev/stdout",
            "/dev/stderr",
            "/dev/stdin",
        ] {
            assert!(used_container_path(bad).is_err(), "{bad}");
        }
        for good in [
            "/",
            "/app",
            "/procs",
            "/proc-data/x",
            "/dev/null",
            "/dev/fdx",
            "/bin/sh",
        ] {
            assert!(used_container_path(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn container_paths() {
        assert_eq!(container_path("/").unwrap(), "/");
        assert_eq!(container_path("/a/b/").unwrap(), "/a/b");
        assert_eq!(container_path("/a//./b").unwrap(), "/a/b");
        assert!(container_path("a/b").is_err());
        assert!(container_path("").is_err());
        assert!(container_path("/a/../b").is_err());
        assert!(container_path("/..").is_err());
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name("web-1_x"));
        for bad in ["", "a.b", "a/b", "..", "a b", "ü"] {
            assert!(!is_safe_name(bad), "{bad}");
        }
    }

    #[test]
    fn read_file_capped_refuses_special_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) on a path in our own temp dir.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opening a FIFO for reading used to wait for a writer: run it
        // where a hang fails the test instead of hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_file_capped(&path, 100));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO blocked");
        assert_eq!(r, Err("not a regular file (a FIFO)".to_string()));
        assert_eq!(
            read_file_capped(dir.path(), 100),
            Err("not a regular file (a directory)".to_string())
        );
        assert_eq!(
            read_file_capped(Path::new("/dev/null"), 100),
            Err("not a regular file (a device)".to_string())
        );
        let f = dir.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(read_file_capped(&f, 3), Ok(b"abc".to_vec()));
        assert!(read_file_capped(&f, 2).unwrap_err().contains("larger"));
    }

    #[test]
    fn log_levels() {
        for (text, level) in [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("WARNING", LogLevel::Warn),
            ("Info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(LogLevel::parse(text), Some(level), "{text}");
        }
        assert_eq!(LogLevel::parse("x"), None);
        assert_eq!(LogLevel::parse(""), None);
    }
}
