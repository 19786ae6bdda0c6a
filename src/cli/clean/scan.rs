//! The images of one image-dir, found and later removed through dir fds.
//!
//! The walk opens each level with `sys::remove::open_subdir` (no symlink,
//! no mount point) from the fd of the level above, down to
//! `image-dir-levels`; what it finds there are the images. Names starting
//! with `.` are never images here (upload tools write to such names, and
//! lithos_clean skipped them), except `.cairn-clean.*`: an image an
//! interrupted clean had begun to remove (or, if it is no dir, what a
//! swap left under that name; it is unlinked). Other files and symlinks
//! are left alone.
//!
//! Removing one: rename it to `.cairn-clean.PID.N` in its own dir (a start
//! that races the removal then finds no image instead of half of one) and
//! check that the renamed entry is the directory examined (`to_trash`);
//! once the caller has looked again at what runs (and put back what
//! started meanwhile: `restore`), empty it through the fd opened during
//! the walk and remove the empty dir (`remove_trashed`).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sys::hostfs::HostDir;
use crate::sys::remove;

/// Prefix of an image being removed.
pub const TRASH: &str = ".cairn-clean.";

/// One image found (or one entry on the way that is a mount point).
pub struct Found {
    /// Relative to the image-dir, `/`-separated (lossy for non-UTF-8).
    pub name: String,
    /// Its own name in `parent`.
    pub last: OsString,
    /// The dir holding it, open for reading.
    pub parent: Rc<OwnedFd>,
    /// The image, open for reading; `None` for a mount point.
    pub fd: Option<OwnedFd>,
    pub dev: u64,
    pub ino: u64,
    pub mtime: Option<SystemTime>,
    /// Its path, for messages only.
    pub shown: PathBuf,
    /// A mount point inside it (or itself).
    pub mount: Option<String>,
    /// `.cairn-clean.*`: left by an interrupted clean.
    pub leftover: bool,
    /// Dirs between the image-dir and it: (their parent, name, path).
    pub chain: Vec<(Rc<OwnedFd>, OsString, PathBuf)>,
}

/// Find the images of `dir`, `levels` deep; `mounts` are the mount points
/// of our mount namespace (mountinfo), to tell an image with one inside.
pub fn scan(dir: &HostDir, levels: usize, mounts: &[String]) -> Result<Vec<Found>, String> {
    let top = remove::open_subdir(dir.fd(), OsStr::new("."), dir.path())
        .map_err(|e| format!("image-dir {}: {e}", dir.path().display()))?;
    let mut out = Vec::new();
    walk(
        Rc::new(top),
        dir.path(),
        "",
        levels.max(1),
        &[],
        mounts,
        &mut out,
    )?;
    Ok(out)
}

fn walk(
    fd: Rc<OwnedFd>,
    shown: &Path,
    prefix: &str,
    levels: usize,
    chain: &[(Rc<OwnedFd>, OsString, PathBuf)],
    mounts: &[String],
    out: &mut Vec<Found>,
) -> Result<(), String> {
    let mut names = remove::entries(fd.as_fd(), shown).map_err(|e| e.to_string())?;
    names.sort();
    let last_level = levels == 1;
    for name in names {
        let leftover = last_level && name.as_bytes().starts_with(TRASH.as_bytes());
        if name.as_bytes().starts_with(b".") && !leftover {
            continue;
        }
        let path = shown.join(&name);
        let rel = format!(
            "{prefix}{}{}",
            if prefix.is_empty() { "" } else { "/" },
            name.to_string_lossy()
        );
        let mut found = Found {
            name: rel.clone(),
            last: name.clone(),
            parent: fd.clone(),
            fd: None,
            dev: 0,
            ino: 0,
            mtime: None,
            shown: path.clone(),
            mount: None,
            leftover,
            chain: chain.to_vec(),
        };
        let sub = match remove::open_subdir(fd.as_fd(), &name, &path) {
            Ok(sub) => sub,
            // A file or a symlink: not an image, left alone; unless it
            // has our trash name (a rename raced by a swap left it).
            Err(e) if matches!(e.errno(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                if leftover {
                    out.push(found);
                }
                continue;
            }
            // Gone since the listing.
            Err(e) if e.errno() == Some(libc::ENOENT) => continue,
            Err(e) if e.errno() == Some(libc::EXDEV) => {
                found.mount = Some(path.display().to_string());
                out.push(found);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if !last_level {
            let mut chain = chain.to_vec();
            chain.push((fd.clone(), name.clone(), path.clone()));
            walk(Rc::new(sub), &path, &rel, levels - 1, &chain, mounts, out)?;
            continue;
        }
        let st = remove::stat(sub.as_fd(), &path).map_err(|e| e.to_string())?;
        found.dev = st.st_dev;
        found.ino = st.st_ino;
        found.mtime = mtime(&st);
        // Where the kernel has it, as mountinfo spells paths.
        if let Ok(real) = remove::fd_path(sub.as_fd()) {
            found.mount = mount_inside(&real, mounts);
        }
        found.fd = Some(sub);
        out.push(found);
    }
    Ok(())
}

fn mtime(st: &libc::stat) -> Option<SystemTime> {
    let secs = u64::try_from(st.st_mtime).ok()?;
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The first mount point at or below `dir`.
pub fn mount_inside(dir: &Path, mounts: &[String]) -> Option<String> {
    mounts
        .iter()
        .find(|m| Path::new(m.as_str()).starts_with(dir))
        .cloned()
}

/// Step 1 of a removal: rename `f` to a trash name in its own dir (a
/// leftover keeps its name) and check that what got renamed is what was
/// examined. The trash name, or why not (each naming its path).
pub fn to_trash(f: &Found, trash_no: u64) -> Result<OsString, Vec<String>> {
    if f.leftover {
        return Ok(f.last.clone());
    }
    if f.fd.is_none() {
        return Err(vec![format!("{}: not open", f.shown.display())]);
    }
    let t = OsString::from(format!("{TRASH}{}.{trash_no}", std::process::id()));
    let r = remove::rename_noreplace(f.parent.as_fd(), &f.last, f.parent.as_fd(), &t, &f.shown);
    r.map_err(|e| vec![e.to_string()])?;
    // Only root writes an image-dir, but a deeper level may be someone
    // else's: what got renamed must be the directory examined.
    let tshown = f.shown.with_file_name(&t);
    let same = remove::stat_at(f.parent.as_fd(), &t, &tshown)
        .is_ok_and(|st| (st.st_dev, st.st_ino) == (f.dev, f.ino));
    if !same {
        let mut why = vec![format!(
            "{}: replaced by something else while cairn clean ran; left alone",
            f.shown.display()
        )];
        if let Err(e) = restore(f, &t) {
            why.push(e);
        }
        return Err(why);
    }
    Ok(t)
}

/// Undo `to_trash`: the trash name back to the image's own name (never
/// over something that took that name meanwhile).
pub fn restore(f: &Found, trash: &OsStr) -> Result<(), String> {
    if f.leftover {
        return Ok(());
    }
    let tshown = f.shown.with_file_name(trash);
    remove::rename_noreplace(f.parent.as_fd(), trash, f.parent.as_fd(), &f.last, &tshown)
        .map_err(|e| format!("cannot rename it back to {}: {e}", f.shown.display()))
}

/// Step 2: empty the image through the fd opened during the walk
/// (`sys::remove::empty_tree`), then remove the empty dir by its trash
/// name. A leftover that is no dir is unlinked itself (unlinkat never
/// follows a symlink).
pub fn remove_trashed(f: Found, trash: &OsStr) -> Result<(), Vec<String>> {
    let tshown = f.shown.with_file_name(trash);
    let Some(fd) = f.fd else {
        if f.leftover {
            return remove::unlink_at(f.parent.as_fd(), trash, false, &tshown)
                .map_err(|e| vec![e.to_string()]);
        }
        return Err(vec![format!("{}: not open", f.shown.display())]);
    };
    let done = remove::empty_tree(fd, &tshown);
    if !done.errors.is_empty() {
        return Err(done.errors.iter().map(|e| e.to_string()).collect());
    }
    remove::unlink_at(f.parent.as_fd(), trash, true, &tshown).map_err(|e| vec![e.to_string()])
}

/// After removals below them, remove the dirs between an image-dir and
/// its images that are now empty (deepest first); a dir that is not
/// empty stays, silently.
pub fn prune(chains: Vec<Vec<(Rc<OwnedFd>, OsString, PathBuf)>>) -> Vec<String> {
    let mut steps: Vec<(usize, Rc<OwnedFd>, OsString, PathBuf)> = Vec::new();
    for chain in chains {
        for (depth, (parent, name, shown)) in chain.into_iter().enumerate() {
            if !steps.iter().any(|s| s.3 == shown) {
                steps.push((depth, parent, name, shown));
            }
        }
    }
    steps.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut errors = Vec::new();
    for (_, parent, name, shown) in steps {
        match remove::unlink_at(parent.as_fd(), &name, true, &shown) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ENOTEMPTY | libc::EEXIST | libc::ENOENT)
                ) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_point_at_or_below_an_image_is_found() {
        let mounts: Vec<String> = ["/", "/srv/img/a/mnt", "/srv/img/ab", "/proc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            mount_inside(Path::new("/srv/img/a"), &mounts).as_deref(),
            Some("/srv/img/a/mnt")
        );
        // A sibling that shares a prefix of the name is not inside.
        assert_eq!(mount_inside(Path::new("/srv/img/b"), &mounts), None);
        assert_eq!(mount_inside(Path::new("/srv/img/a/x"), &mounts), None);
    }
}
