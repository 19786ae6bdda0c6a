use std::fs;
use std::os::unix::fs::symlink;

use super::*;

fn open_top(dir: &Path) -> OwnedFd {
    let parent = sfs::open_dir(dir.parent().expect("has a parent")).expect("open parent");
    open_subdir(parent.as_fd(), dir.file_name().expect("has a name"), dir).expect("open top")
}

#[test]
fn empties_a_tree_and_removes_symlinks_not_what_they_name() {
    let t = tempfile::tempdir().expect("tempdir");
    let canary = t.path().join("canary");
    fs::create_dir(&canary).expect("mkdir");
    fs::write(canary.join("keep"), "x").expect("write");
    let top = t.path().join("img");
    fs::create_dir_all(top.join("a/b/c")).expect("mkdir");
    fs::write(top.join("a/b/c/f"), "f").expect("write");
    fs::write(top.join("g"), "g").expect("write");
    symlink(&canary, top.join("to-canary")).expect("symlink");
    symlink(&canary, top.join("a/b/to-canary")).expect("symlink");
    symlink(canary.join("keep"), top.join("a/to-file")).expect("symlink");
    nix::unistd::mkfifo(
        &top.join("a/fifo"),
        nix::sys::stat::Mode::from_bits_retain(0o600),
    )
    .expect("mkfifo");
    let done = empty_tree(open_top(&top), &top);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!((done.files, done.dirs), (6, 3));
    assert_eq!(fs::read_dir(&top).expect("top stays").count(), 0);
    assert_eq!(
        fs::read_to_string(canary.join("keep")).expect("canary"),
        "x"
    );
}

#[test]
fn a_tree_deeper_than_the_fds_it_may_hold_is_emptied() {
    let t = tempfile::tempdir().expect("tempdir");
    let top = t.path().join("img");
    let mut deep = top.clone();
    for _ in 0..(3 * MAX_DEPTH) {
        deep.push("d");
    }
    fs::create_dir_all(&deep).expect("mkdir deep");
    fs::write(deep.join("f"), "f").expect("write");
    // Names the moves would take first are taken already.
    fs::create_dir(top.join(".cairn-deep.1")).expect("mkdir");
    fs::write(top.join(".cairn-deep.2"), "").expect("write");
    let done = empty_tree(open_top(&top), &top);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!((done.files, done.dirs), (2, 3 * MAX_DEPTH as u64 + 1));
    assert_eq!(fs::read_dir(&top).expect("top stays").count(), 0);
}

#[test]
fn subdirs_open_only_as_real_directories() {
    let t = tempfile::tempdir().expect("tempdir");
    fs::create_dir(t.path().join("dir")).expect("mkdir");
    fs::write(t.path().join("file"), "").expect("write");
    symlink(t.path().join("dir"), t.path().join("link")).expect("symlink");
    let d = sfs::open_dir(t.path()).expect("open");
    let errno = |name: &str| {
        open_subdir(d.as_fd(), OsStr::new(name), Path::new(name))
            .err()
            .and_then(|e| e.errno())
    };
    assert_eq!(errno("dir"), None);
    // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (ELOOP without
    // O_DIRECTORY); either way nothing is opened through it.
    assert!(
        matches!(errno("link"), Some(libc::ENOTDIR | libc::ELOOP)),
        "{:?}",
        errno("link")
    );
    assert_eq!(errno("file"), Some(libc::ENOTDIR));
    assert_eq!(errno("gone"), Some(libc::ENOENT));
}

#[test]
fn entries_lists_every_name_once_whatever_its_bytes() {
    let t = tempfile::tempdir().expect("tempdir");
    let odd = OsString::from_vec(b"caf\xe9 \n".to_vec());
    fs::write(t.path().join(&odd), "").expect("write");
    for i in 0..2000 {
        fs::write(t.path().join(format!("n{i:04}")), "").expect("write");
    }
    let d = open_top(t.path());
    let mut names = entries(d.as_fd(), t.path()).expect("entries");
    assert_eq!(names.len(), 2001);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2001);
    assert!(names.contains(&odd));
    // Read again from the start.
    assert_eq!(entries(d.as_fd(), t.path()).expect("again").len(), 2001);
}

#[test]
fn rename_never_replaces() {
    let t = tempfile::tempdir().expect("tempdir");
    fs::create_dir(t.path().join("a")).expect("mkdir");
    fs::create_dir(t.path().join("b")).expect("mkdir");
    let d = sfs::open_dir(t.path()).expect("open");
    let e = rename_noreplace(
        d.as_fd(),
        OsStr::new("a"),
        d.as_fd(),
        OsStr::new("b"),
        t.path(),
    )
    .expect_err("b exists");
    assert_eq!(e.errno(), Some(libc::EEXIST));
    rename_noreplace(
        d.as_fd(),
        OsStr::new("a"),
        d.as_fd(),
        OsStr::new("c"),
        t.path(),
    )
    .expect("to a free name");
    assert!(t.path().join("c").is_dir());
}
