//! Real software for the integration tests: a minimal Debian root
//! filesystem with some packages, built with `mmdebstrap` from the host's
//! own release, once per machine, and linked into a test's image dir.
//!
//! The built tree is cached under cargo's `CARGO_TARGET_TMPDIR`
//! (`target/tmp/debian-images/RELEASE-PACKAGES-vN`), so only the first run
//! on a machine pays for the build (about 35 s for nginx-light on 2
//! cores). Tests running at the same time (threads of one test binary, or
//! several binaries) take an flock(2) on `KEY.lock` first: one builds,
//! into `KEY.tmp-PID`, renamed into place when complete, and the others
//! wait and then find it there. A half-built tree is never used.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Bump when the build below changes, so an old cached tree is not used.
const RECIPE: u32 = 1;

/// The host's Debian release (`VERSION_CODENAME` of /etc/os-release), or
/// why there is none: the image is built from the host's own release, so
/// that what the tests run is what this machine's packages are.
pub fn host_release() -> Result<String, String> {
    let text = fs::read_to_string("/etc/os-release")
        .map_err(|e| format!("cannot read /etc/os-release: {e}"))?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
    };
    if field("ID").as_deref() != Some("debian") {
        return Err("the host is not Debian (/etc/os-release ID)".into());
    }
    field("VERSION_CODENAME")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "no VERSION_CODENAME in /etc/os-release".into())
}

/// The cached Debian tree with `packages` (and the Essential set), built
/// now if it is not there yet. Errors say what is missing.
pub fn debian_image(packages: &[&str]) -> Result<PathBuf, String> {
    if !super::is_root() {
        return Err("building a Debian image needs root".into());
    }
    let release = host_release()?;
    let key = format!("{release}-{}-v{RECIPE}", packages.join("+"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-images");
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let done = dir.join(&key);
    let lock_path = dir.join(format!("{key}.lock"));
    let lock =
        fs::File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    // SAFETY: flock(2) on a file we hold open; it is released when `lock`
    // is closed at the end of this function.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        ));
    }
    if done.is_dir() {
        return Ok(done);
    }
    let tmp = dir.join(format!("{key}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("remove {}: {e}", tmp.display()))?;
    }
    let start = Instant::now();
    build(&release, packages, &tmp)?;
    fs::rename(&tmp, &done).map_err(|e| format!("rename to {}: {e}", done.display()))?;
    let took = start.elapsed();
    eprintln!(
        "built Debian {release} image with {} in {:.1} s: {}",
        packages.join(", "),
        took.as_secs_f64(),
        done.display()
    );
    let _ = fs::write(
        dir.join(format!("{key}.took")),
        format!("{:.1}\n", took.as_secs_f64()),
    );
    Ok(done)
}

/// Run mmdebstrap: the Essential set plus `packages` from the release's
/// mirrors (deb.debian.org, with updates and security for a stable
/// release), without docs, man pages and translations.
///
/// `--mode=unshare`: mmdebstrap mounts /proc and /sys for the maintainer
/// scripts inside namespaces of its own, never in the host's mount
/// namespace. No device nodes are made: cairn gives a container its own
/// /dev.
fn build(release: &str, packages: &[&str], into: &Path) -> Result<(), String> {
    let out = Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--mode=unshare",
            "--variant=essential",
            "--skip=output/mknod",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            // The directory tests write their container configs into.
            "--customize-hook=mkdir -p \"$1/config\"",
        ])
        .arg(format!("--include={}", packages.join(",")))
        .arg(release)
        .arg(into)
        // mmdebstrap reads sources from stdin when it is not a terminal.
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mmdebstrap ({e}); apt-get install mmdebstrap"))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(into);
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(format!(
            "mmdebstrap {release} --include={} failed ({}):\n{}",
            packages.join(","),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(())
}

/// Make `dest` a copy of the cached tree `src` whose files are hard links
/// to the cached ones (`cp -al`): fast and small. cairn mounts an image
/// read-only, so the workload cannot change them; a test must only add new
/// files (such as `/config/*.yaml`), never write to one that came from the
/// cache, or it changes the cache.
pub fn link_image(src: &Path, dest: &Path) -> Result<(), String> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    let out = Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(dest)
        .output()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cp -al {} {}: {}",
            src.display(),
            dest.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
