//! Results of earlier parses of container configs, kept by the exact bytes
//! parsed, so that the same config is not parsed again: each parse costs
//! a fork of a confined child (`confined`), about half a millisecond, and
//! `cairn cmd` of an unchanged config, or a reload of unchanged images,
//! would pay it every time.
//!
//! `<runtime-dir>/parsed/` is root's alone (0700; `sys::hostfs`). An entry
//! is named by a hash of the config's bytes and holds those bytes, then the
//! parse result; it counts only when the bytes are equal, byte for byte,
//! so a hash collision (even one crafted by an image) finds nothing. Only
//! successful parses are kept: an error names the file it was found in,
//! and error paths need not be fast. The result is exactly what the
//! confined parser answered for those bytes, so reading it back grants
//! nothing new: callers validate it against the sandbox every time, as
//! they do a fresh answer.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use crate::config::container::ContainerConfig;
use crate::config::error::Problems;
use crate::image::MAX_CONFIG_BYTES;
use crate::sys::hostfs::HostDir;

/// Entries kept before the dir is emptied and starts again.
const MAX_ENTRIES: usize = 1024;
/// Largest entry read back (the bytes and a parse of them).
const MAX_ENTRY: usize = 4 << 20;

pub struct Cache {
    dir: Option<HostDir>,
}

impl Cache {
    /// The cache in `runtime_dir` (created); none when that fails, which
    /// only costs speed.
    pub fn open(runtime_dir: &Path) -> Cache {
        match HostDir::open(runtime_dir, true) {
            Ok(Some(d)) => Cache::in_dir(&d),
            _ => Cache::none(),
        }
    }

    /// The cache in the runtime dir `runtime`, already checked.
    pub fn in_dir(runtime: &HostDir) -> Cache {
        let dir = runtime.sub(Path::new("parsed"), Some(0o700)).ok().flatten();
        Cache { dir }
    }

    /// No cache (`cairn check --container`, which has no runtime dir).
    pub fn none() -> Cache {
        Cache { dir: None }
    }

    /// The parse of `bytes`: from the cache, or from `parse` (kept when it
    /// succeeds).
    pub fn parse(
        &self,
        bytes: &[u8],
        parse: impl FnOnce() -> Result<ContainerConfig, Problems>,
    ) -> Result<ContainerConfig, Problems> {
        if let Some(cfg) = self.get(bytes) {
            return Ok(cfg);
        }
        let result = parse();
        if let Ok(cfg) = &result {
            self.put(bytes, cfg);
        }
        result
    }

    fn get(&self, bytes: &[u8]) -> Option<ContainerConfig> {
        let dir = self.dir.as_ref()?;
        let entry = dir.read_trusted(&name(bytes), MAX_ENTRY).ok()??;
        let (len, rest) = entry.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if len != bytes.len() || rest.len() < len || &rest[..len] != bytes {
            return None;
        }
        serde_json::from_slice(&rest[len..]).ok()
    }

    fn put(&self, bytes: &[u8], cfg: &ContainerConfig) {
        let Some(dir) = &self.dir else { return };
        if bytes.len() > MAX_CONFIG_BYTES || bytes.len() > MAX_ENTRY / 2 {
            return;
        }
        if std::fs::read_dir(dir.path()).is_ok_and(|d| d.count() >= MAX_ENTRIES) {
            // Configs come and go (a new image per deploy): start again
            // rather than keep every one ever seen.
            if let Ok(d) = std::fs::read_dir(dir.path()) {
                for e in d.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let written = dir.write_atomic(&name(bytes), false, |w| {
            w.write_all(&(bytes.len() as u64).to_le_bytes())?;
            w.write_all(bytes)?;
            serde_json::to_writer(w, cfg).map_err(std::io::Error::other)
        });
        if let Err(e) = written {
            log::debug!("parse cache: {e}");
        }
    }
}

/// An entry's name: a hash of the bytes (its collisions are harmless,
/// see the module doc).
fn name(bytes: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const CONFIG: &[u8] = b"kind: Command\nuser-id: 1\nexecutable: /bin/true\n";

    fn parsed(bytes: &[u8]) -> Result<ContainerConfig, Problems> {
        crate::config::container::parse("c.yaml", bytes)
    }

    /// A runtime dir of our own under /tmp (root only: the cache is).
    fn runtime(tag: &str) -> Option<std::path::PathBuf> {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
            return None;
        }
        let d = std::env::temp_dir().join(format!("cairn-parsed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Some(d)
    }

    #[test]
    fn a_parse_is_kept_by_its_exact_bytes() {
        let Some(d) = runtime("keep") else { return };
        let cache = Cache::open(&d);
        let mut calls = 0;
        let mut parse = |b: &[u8]| {
            cache.parse(b, || {
                calls += 1;
                parsed(b)
            })
        };
        let first = parse(CONFIG).expect("parses");
        let again = parse(CONFIG).expect("parses");
        assert_eq!(first, again);
        let other = [CONFIG, b"workdir: /x\n"].concat();
        parse(&other).expect("parses");
        // Errors are not kept.
        assert!(parse(b"nope: [\n").is_err());
        assert!(parse(b"nope: [\n").is_err());
        assert_eq!(calls, 4);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_entry_counts_only_for_the_same_bytes_and_only_if_roots_alone() {
        let Some(d) = runtime("forge") else { return };
        let cache = Cache::open(&d);
        cache.parse(CONFIG, || parsed(CONFIG)).expect("parses");
        let entry = d.join("parsed").join(name(CONFIG));
        assert!(entry.exists());
        // The same name with other bytes in it (a collision) finds nothing.
        let forged = [&8u64.to_le_bytes()[..], b"other!!!", b"{}"].concat();
        std::fs::write(&entry, &forged).expect("write");
        assert!(cache.get(CONFIG).is_none());
        // A good entry that someone else could write counts for nothing.
        cache.put(CONFIG, &parsed(CONFIG).expect("parses"));
        assert!(cache.get(CONFIG).is_some());
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(cache.get(CONFIG).is_none());
        let _ = std::fs::remove_dir_all(&d);
    }
}
