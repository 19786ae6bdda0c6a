//! What the tree writes about instances beside its own log: the sandbox
//! log (one line per instance event), the config log (each config version
//! the first time it starts), and the checked stdio-log-dir its knots open
//! their sandbox's stdio log below.

use std::os::fd::AsRawFd;
use std::time::SystemTime;

use super::state::rfc3339;
use super::supervisor::Tree;
use crate::text::rfc3339_ms;

/// Why a line could not be added to a config log.
#[derive(Debug, thiserror::Error)]
enum LogError {
    /// Opening it (root's alone, never through a symlink): the error
    /// names the path.
    #[error("{0}")]
    Open(#[from] crate::sys::hostfs::Error),
    #[error("{}: {source}", .path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Tree {
    /// An fd of the checked dir that the stdio log of `name`'s sandbox is
    /// in, opened (and made) once and kept; `None` (the knot then checks
    /// the path itself, and says what is wrong) if it cannot be.
    pub(super) fn stdio_dir_for(&mut self, name: &str) -> Option<std::os::fd::RawFd> {
        let i = self.instances.get(name)?;
        let crate::spec::Stdio::HostFile(log) = &i.spec.stdio else {
            return None;
        };
        let dir = log.parent()?;
        if self.io.stdio_dir.as_ref().is_none_or(|d| d.path() != dir) {
            self.io.stdio_dir = crate::sys::hostfs::HostDir::open(dir, true).ok().flatten();
        }
        self.io.stdio_dir.as_ref().map(|d| d.fd().as_raw_fd())
    }

    /// Append an instance event to its sandbox's log (`log-file` of the
    /// sandbox config); the file stays open between events.
    pub fn sandbox_log(&mut self, name: &str, msg: &str) {
        use std::io::Write;
        let sandbox = name.split('/').next().unwrap_or("");
        let Some((path, file)) = self.io.sandbox_logs.get_mut(sandbox) else {
            return;
        };
        if file.is_none() {
            // Root's alone, never through a symlink (sys::hostfs).
            match crate::sys::hostfs::open_log(path) {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    log::warn!("sandbox log: {e}");
                    return;
                }
            }
        }
        if let Some(f) = file {
            // Escaped as the tree's log is: `msg` may quote an image's text.
            let line = format!(
                "{} {}\n",
                rfc3339_ms(SystemTime::now()),
                crate::text::escape(msg)
            );
            if f.write_all(line.as_bytes()).is_err() {
                *file = None;
            }
        }
    }

    /// Append a config version to config-log-dir the first time it starts.
    pub(super) fn log_config(&mut self, name: &str) {
        let Some(dir) = self.master.config_log_dir.clone() else {
            return;
        };
        let Some(i) = self.instances.get(name) else {
            return;
        };
        if self.logged_hash.get(name) == Some(&i.hash) {
            return;
        }
        // serde escapes C0 controls; `text::json` the rest (C1, bidi).
        let spec = serde_json::to_string(&*i.spec).unwrap_or_default();
        let line = format!(
            "{} {name} {} {}\n",
            rfc3339(SystemTime::now()),
            i.hash,
            crate::text::json(&spec)
        );
        let path = dir.join(format!("{}.log", i.spec.sandbox));
        let write = || -> Result<(), LogError> {
            use std::io::Write;
            crate::sys::hostfs::open_log(&path)?
                .write_all(line.as_bytes())
                .map_err(|source| LogError::Write {
                    path: path.clone(),
                    source,
                })
        };
        if let Err(e) = write() {
            log::warn!("config log: {e}");
        }
        self.logged_hash.insert(name.to_string(), i.hash.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_log_error_names_its_file() {
        let e = LogError::Write {
            path: "/var/log/cairn/config/box.log".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(
            e.to_string(),
            "/var/log/cairn/config/box.log: No space left on device (os error 28)"
        );
    }
}
