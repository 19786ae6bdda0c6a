//! The rules of `HostDir` on real dirs under a temp dir in /tmp (a sticky
//! ancestor). They need root, since only root-owned dirs pass.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::{Error, HostDir, LOG_MODE, Unsafe, open_log};

/// A fresh root-owned 0755 dir in /tmp, or `None` when not root (then
/// these tests cannot run; under CI=true that is a failure).
fn scratch(tag: &str) -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
        eprintln!("skipped: needs root");
        return None;
    }
    let d = std::env::temp_dir().join(format!("cairn-hostfs-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir(&d).expect("mkdir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
    Some(d)
}

fn why(r: Result<Option<HostDir>, Error>) -> (PathBuf, Unsafe) {
    match r {
        Err(Error::Unsafe { path, why }) => (path, why),
        other => panic!("not refused as unsafe: {other:?}"),
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).expect("lstat").mode() & 0o7777
}

#[test]
fn messages_say_who_can_write() {
    assert_eq!(
        Unsafe::Writable(0o40777).to_string(),
        "writable by group and others (mode 0777)"
    );
    assert_eq!(
        Unsafe::Writable(0o775).to_string(),
        "writable by group (mode 0775)"
    );
    assert_eq!(
        Unsafe::Writable(0o757).to_string(),
        "writable by others (mode 0757)"
    );
    assert_eq!(
        Unsafe::Owner(65534).to_string(),
        "owned by uid 65534, not root"
    );
}

#[test]
fn creates_with_exact_modes_whatever_the_umask() {
    let Some(d) = scratch("modes") else { return };
    // Stricter than any mode we state (the umask is the process's: a
    // looser one would loosen what parallel tests create).
    let old = crate::sys::process::set_umask(0o077);
    let made = HostDir::open(&d.join("a/b"), true);
    let own = match &made {
        Ok(Some(h)) => h.sub(Path::new("s/i"), Some(0o700)).ok().flatten(),
        _ => None,
    };
    let log = open_log(&d.join("a/b/x.log"));
    crate::sys::process::set_umask(old);
    assert!(own.is_some() && log.is_ok(), "{made:?} {log:?}");
    assert_eq!(mode(&d.join("a")), 0o755);
    assert_eq!(mode(&d.join("a/b/s")), 0o755);
    assert_eq!(mode(&d.join("a/b/s/i")), 0o700);
    assert_eq!(mode(&d.join("a/b/x.log")), LOG_MODE);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn refuses_writable_or_foreign_dirs_and_ancestors() {
    let Some(d) = scratch("refuse") else { return };
    let c = d.join("conf");
    fs::create_dir(&c).expect("mkdir");
    fs::set_permissions(&c, fs::Permissions::from_mode(0o1777)).expect("chmod");
    // Sticky is enough above a configured dir, never for the dir itself.
    assert!(HostDir::open(&c.join("run"), true).expect("ok").is_some());
    assert_eq!(
        why(HostDir::open(&c, false)),
        (c.clone(), Unsafe::Writable(0o41777))
    );
    // A group may write above (Ubuntu's /var/log), others may not.
    fs::set_permissions(&c, fs::Permissions::from_mode(0o775)).expect("chmod");
    assert!(HostDir::open(&c.join("run"), false).expect("ok").is_some());
    fs::set_permissions(&c, fs::Permissions::from_mode(0o757)).expect("chmod");
    assert_eq!(why(HostDir::open(&c.join("run"), false)).0, c);
    fs::set_permissions(&c, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(c.join("run"), Some(65534), None).expect("chown");
    assert_eq!(
        why(HostDir::open(&c.join("run/deeper"), true)),
        (c.join("run"), Unsafe::Owner(65534))
    );
    assert!(!c.join("run/deeper").exists());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn follows_only_roots_symlinks_and_only_above_its_own_dirs() {
    let Some(d) = scratch("links") else { return };
    fs::create_dir(d.join("real")).expect("mkdir");
    // Like /var/run -> /run: root's, followed (`..` from where it leads).
    symlink("real/../real", d.join("alias")).expect("symlink");
    let h = HostDir::open(&d.join("alias/run"), true)
        .expect("ok")
        .expect("some");
    assert_eq!(h.path(), d.join("real/run"));
    assert!(d.join("real/run").is_dir());
    // Another user's link is not.
    let theirs = d.join("theirs");
    symlink("real", &theirs).expect("symlink");
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &theirs,
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("lchown");
    assert_eq!(
        why(HostDir::open(&theirs.join("x"), true)).1,
        Unsafe::SymlinkOwner(65534)
    );
    // Below a configured dir, no link at all, even root's.
    symlink(d.join("real"), d.join("real/run/link")).expect("symlink");
    assert_eq!(
        why(h.sub(Path::new("link/x"), Some(0o700))).1,
        Unsafe::Symlink
    );
    // Nor at a file's name, nor for what is read back.
    fs::write(d.join("secret"), "x").expect("write");
    symlink(d.join("secret"), d.join("real/run/f")).expect("symlink");
    assert!(matches!(
        h.open_file("f", LOG_MODE, true),
        Err(Error::Unsafe {
            why: Unsafe::Symlink,
            ..
        })
    ));
    assert!(h.read_trusted("f", 10).is_err());
    assert_eq!(fs::read_to_string(d.join("secret")).expect("read"), "x");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn reads_back_only_what_root_alone_wrote() {
    let Some(d) = scratch("trust") else { return };
    let h = HostDir::open(&d, false).expect("ok").expect("some");
    fs::write(d.join("ok"), "good").expect("write");
    fs::set_permissions(d.join("ok"), fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(
        h.read_trusted("ok", 100).expect("ok").as_deref(),
        Some(&b"good"[..])
    );
    assert_eq!(h.read_trusted("none", 100).expect("ok"), None);
    fs::write(d.join("open"), "forged").expect("write");
    fs::set_permissions(d.join("open"), fs::Permissions::from_mode(0o666)).expect("chmod");
    assert!(h.read_trusted("open", 100).is_err());
    fs::write(d.join("theirs"), "forged").expect("write");
    std::os::unix::fs::chown(d.join("theirs"), Some(65534), None).expect("chown");
    assert!(h.read_trusted("theirs", 100).is_err());
    fs::hard_link(d.join("ok"), d.join("linked")).expect("link");
    assert!(h.read_trusted("linked", 100).is_err());
    let _ = fs::remove_dir_all(&d);
}
