//! A recording fake of the seam (tests only): every call is recorded with
//! its arguments, in order; an fd is a label saying what it is (the path
//! it was opened at, `tmpfs#2` for the second tmpfs made, `clone(X)` for a
//! copy of the mount X); and any call can be made to fail with an errno,
//! the Nth or each one a predicate picks, the error named as the real
//! wrapper names it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::knot::seam::{Kernel, Privileges};
use crate::sys::fs::Resolve;
use crate::sys::mount::{Attrs, Recursive};
use crate::sys::{Error, Result};

/// What a fake fd refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node(pub String);

/// One call through the seam, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MakeAllPrivate,
    OpenImage(PathBuf, String),
    OpenDir(PathBuf),
    OpenDirBeneath(String, String),
    Openat2 {
        dir: String,
        path: String,
        flags: i32,
        mode: u32,
        resolve: Resolve,
    },
    IsRegular(String),
    MkdirBeneath(String, String, u32),
    ChownChmod {
        fd: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    ReplaceFile {
        dir: String,
        name: String,
        content: String,
        mode: u32,
    },
    ReadHostFile(PathBuf, usize),
    PublicHost,
    CloneTree(String, Recursive),
    SetAttrs {
        mnt: String,
        set: Attrs,
        clear: Attrs,
        recursive: Recursive,
    },
    Attach(String, String),
    NewFs(String, Vec<(String, String)>, Attrs),
    MakeNodes(String, Vec<(String, u32, u32, u32)>, Vec<(String, u32)>),
    Symlink(String, String, String),
    Pivot(String),
    DropWholeBoundingSet,
    DropBounding(Vec<String>),
    SetKeepcaps(bool),
    SetIds(u32, u32, Vec<u32>),
    ClearAllSets,
    SetExactly(Vec<String>),
    SetNoNewPrivs,
    SetDumpable(bool),
}

/// `rdonly,nosuid,nodev,noexec` (those set), or `-`.
pub fn attrs(a: Attrs) -> String {
    let names = [
        (Attrs::RDONLY, "rdonly"),
        (Attrs::NOSUID, "nosuid"),
        (Attrs::NODEV, "nodev"),
        (Attrs::NOEXEC, "noexec"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(f, _)| a.bits() & f.bits() != 0)
        .map(|(_, n)| *n)
        .collect();
    // A bit this list does not name shows up as a number.
    let known = names.iter().fold(0, |acc, (f, _)| acc | f.bits());
    let mut s = if set.is_empty() {
        "-".to_string()
    } else {
        set.join(",")
    };
    if a.bits() & !known != 0 {
        s.push_str(&format!("+{:#x}", a.bits() & !known));
    }
    s
}

fn rec(r: Recursive) -> &'static str {
    match r {
        Recursive::Yes => "rec",
        Recursive::No => "one",
    }
}

/// `O_PATH|O_NOFOLLOW|...` of the open flags the build uses.
fn oflags(flags: i32) -> String {
    let names = [
        (libc::O_PATH, "O_PATH"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_WRONLY, "O_WRONLY"),
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
    ];
    let known = names.iter().fold(0, |acc, (f, _)| acc | f);
    let mut v: Vec<String> = names
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if flags & !known != 0 {
        v.push(format!("{:#x}", flags & !known));
    }
    v.join("|")
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::MakeAllPrivate => write!(f, "make_all_private"),
            Call::OpenImage(d, i) => write!(f, "open_image {} {i}", d.display()),
            Call::OpenDir(p) => write!(f, "open_dir {}", p.display()),
            Call::OpenDirBeneath(d, p) => write!(f, "open_dir_beneath {d} {p}"),
            Call::Openat2 {
                dir,
                path,
                flags,
                mode,
                resolve,
            } => {
                let r = match resolve {
                    Resolve::InRoot => "in-root",
                    Resolve::BeneathNoSymlinks => "beneath-no-symlinks",
                    Resolve::BeneathSameMount => "beneath-same-mount",
                };
                write!(f, "openat2 {dir} {path} {} {mode:o} {r}", oflags(*flags))
            }
            Call::IsRegular(fd) => write!(f, "is_regular {fd}"),
            Call::MkdirBeneath(d, p, m) => write!(f, "mkdir_beneath {d} {p} {m:o}"),
            Call::ChownChmod { fd, uid, gid, mode } => {
                write!(f, "chown_chmod {fd} {uid}:{gid} {mode:o}")
            }
            Call::ReplaceFile {
                dir,
                name,
                content,
                mode,
            } => write!(f, "replace_file {dir} {name} {mode:o} {content:?}"),
            Call::ReadHostFile(p, cap) => write!(f, "read_host_file {} {cap}", p.display()),
            Call::PublicHost => write!(f, "public_host"),
            Call::CloneTree(d, r) => write!(f, "clone_tree {d} {}", rec(*r)),
            Call::SetAttrs {
                mnt,
                set,
                clear,
                recursive,
            } => write!(
                f,
                "set_attrs {mnt} set={} clear={} {}",
                attrs(*set),
                attrs(*clear),
                rec(*recursive)
            ),
            Call::Attach(m, t) => write!(f, "attach {m} -> {t}"),
            Call::NewFs(t, opts, a) => {
                let o: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "new_fs {t} [{}] {}", o.join(","), attrs(*a))
            }
            Call::MakeNodes(d, devs, dirs) => {
                let devs: Vec<String> = devs
                    .iter()
                    .map(|(n, m, ma, mi)| format!("{n}:{m:o}:{ma}:{mi}"))
                    .collect();
                let dirs: Vec<String> = dirs.iter().map(|(n, m)| format!("{n}:{m:o}")).collect();
                write!(
                    f,
                    "make_nodes {d} [{}] [{}]",
                    devs.join(","),
                    dirs.join(",")
                )
            }
            Call::Symlink(t, d, n) => write!(f, "symlink {d}/{n} -> {t}"),
            Call::Pivot(r) => write!(f, "pivot_into {r}"),
            Call::DropWholeBoundingSet => write!(f, "drop_whole_bounding_set"),
            Call::DropBounding(k) => write!(f, "drop_bounding {k:?}"),
            Call::SetKeepcaps(on) => write!(f, "set_keepcaps {on}"),
            Call::SetIds(u, g, gs) => write!(f, "set_ids {u} {g} {gs:?}"),
            Call::ClearAllSets => write!(f, "clear_all_sets"),
            Call::SetExactly(k) => write!(f, "set_exactly {k:?}"),
            Call::SetNoNewPrivs => write!(f, "set_no_new_privs"),
            Call::SetDumpable(on) => write!(f, "set_dumpable {on}"),
        }
    }
}

type Pick = Box<dyn Fn(usize, &Call) -> bool>;

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// (which calls fail, with what errno).
    failures: Vec<(Pick, i32)>,
    /// Labels that are not regular files (`is_regular` says false).
    special: Vec<String>,
    /// Labels of dirs `mkdir_beneath` finds already there.
    existing: Vec<String>,
    /// Host files `read_host_file` finds.
    host_files: BTreeMap<PathBuf, Vec<u8>>,
    /// How many of each file system type were made.
    made: BTreeMap<String, usize>,
}

/// The recording fake.
#[derive(Default)]
pub struct Fake {
    state: RefCell<State>,
}

impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }

    /// The call numbered `n` (0 is the first) fails with `errno`.
    pub fn fail_nth(&self, n: usize, errno: i32) -> &Fake {
        let pick: Pick = Box::new(move |i, _| i == n);
        self.state.borrow_mut().failures.push((pick, errno));
        self
    }

    /// Every call whose line (`Call`'s Display) `pick` accepts fails with
    /// `errno`.
    pub fn fail_when(&self, pick: impl Fn(&str) -> bool + 'static, errno: i32) -> &Fake {
        let pick: Pick = Box::new(move |_, c| pick(&c.to_string()));
        self.state.borrow_mut().failures.push((pick, errno));
        self
    }

    /// The file opened at `label` is not a regular one.
    pub fn special(&self, label: &str) -> &Fake {
        self.state.borrow_mut().special.push(label.to_string());
        self
    }

    /// The dir at `label` exists already (`mkdir_beneath` creates nothing).
    pub fn existing(&self, label: &str) -> &Fake {
        self.state.borrow_mut().existing.push(label.to_string());
        self
    }

    /// A host file `read_host_file` can read.
    pub fn host_file(&self, path: &str, content: &[u8]) -> &Fake {
        let mut s = self.state.borrow_mut();
        s.host_files.insert(path.into(), content.to_vec());
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// Every call so far, as lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::to_string).collect()
    }

    /// Record `call`; its errno if it is to fail.
    fn record(&self, call: Call) -> Option<i32> {
        let mut s = self.state.borrow_mut();
        let n = s.calls.len();
        let errno = s
            .failures
            .iter()
            .find(|(pick, _)| pick(n, &call))
            .map(|(_, e)| *e);
        s.calls.push(call);
        errno
    }

    /// Record `call`, failing as the real wrapper would (`op` on `target`).
    fn run(&self, call: Call, op: &'static str, target: &str) -> Result<()> {
        match self.record(call) {
            Some(errno) => Err(Error::new(
                op,
                target,
                std::io::Error::from_raw_os_error(errno),
            )),
            None => Ok(()),
        }
    }

    fn made(&self, fstype: &str) -> usize {
        let mut s = self.state.borrow_mut();
        let n = s.made.entry(fstype.to_string()).or_default();
        *n += 1;
        *n
    }
}

/// `dir/path` the way openat2 walks it (a leading `/` is relative too).
fn below(dir: &Node, path: &str) -> Node {
    let rel = path.trim_start_matches('/');
    match rel {
        "" | "." => dir.clone(),
        _ => Node(format!("{}/{rel}", dir.0.trim_end_matches('/'))),
    }
}

impl Kernel for Fake {
    type Fd = Node;

    fn make_all_private(&self) -> Result<()> {
        self.run(Call::MakeAllPrivate, "mount --make-rprivate", "/")
    }
    fn open_image(
        &self,
        image_dir: &Path,
        image: &str,
    ) -> std::result::Result<Node, crate::image::ImageError> {
        let call = Call::OpenImage(image_dir.into(), image.into());
        match self.record(call) {
            Some(errno) => Err(crate::image::ImageError::Open {
                image: image.to_string(),
                dir: image_dir.to_path_buf(),
                source: crate::sys::Error::new(
                    "openat2",
                    image,
                    std::io::Error::from_raw_os_error(errno),
                ),
            }),
            None => Ok(Node(format!("{}/{image}", image_dir.display()))),
        }
    }
    fn open_dir(&self, path: &Path) -> Result<Node> {
        let s = path.to_string_lossy();
        self.run(Call::OpenDir(path.into()), "open", &s)?;
        Ok(Node(s.into_owned()))
    }
    fn open_dir_beneath(&self, dir: &Node, path: &str) -> Result<Node> {
        let call = Call::OpenDirBeneath(dir.0.clone(), path.into());
        // Named as `fs::open_dir_beneath` names it: the relative path.
        let rel = path.trim_start_matches('/');
        self.run(call, "openat2", if rel.is_empty() { "." } else { rel })?;
        Ok(below(dir, path))
    }
    fn openat2(
        &self,
        dir: &Node,
        path: &str,
        flags: i32,
        mode: u32,
        resolve: Resolve,
    ) -> Result<Node> {
        let call = Call::Openat2 {
            dir: dir.0.clone(),
            path: path.into(),
            flags,
            mode,
            resolve,
        };
        self.run(call, "openat2", path)?;
        Ok(below(dir, path))
    }
    fn is_regular(&self, fd: &Node) -> Result<bool> {
        self.run(Call::IsRegular(fd.0.clone()), "fstat", "")?;
        Ok(!self.state.borrow().special.contains(&fd.0))
    }
    fn mkdir_beneath(&self, dir: &Node, path: &str, mode: u32) -> Result<(Node, bool)> {
        let call = Call::MkdirBeneath(dir.0.clone(), path.into(), mode);
        self.run(call, "mkdir", path)?;
        let fd = below(dir, path);
        let created = !self.state.borrow().existing.contains(&fd.0);
        Ok((fd, created))
    }
    fn chown_chmod(&self, fd: &Node, what: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let call = Call::ChownChmod {
            fd: fd.0.clone(),
            uid,
            gid,
            mode,
        };
        self.run(call, "chown", what)
    }
    fn replace_file(&self, dir: &Node, name: &str, content: &[u8], mode: u32) -> Result<()> {
        let call = Call::ReplaceFile {
            dir: dir.0.clone(),
            name: name.into(),
            content: String::from_utf8_lossy(content).into_owned(),
            mode,
        };
        self.run(call, "openat2", name)
    }
    fn read_host_file(&self, path: &Path, cap: usize) -> std::result::Result<Vec<u8>, String> {
        if let Some(errno) = self.record(Call::ReadHostFile(path.into(), cap)) {
            let e = std::io::Error::from_raw_os_error(errno);
            return Err(format!("cannot open: {e}"));
        }
        let s = self.state.borrow();
        s.host_files.get(path).cloned().ok_or_else(|| {
            let e = std::io::Error::from_raw_os_error(libc::ENOENT);
            format!("cannot open: {e}")
        })
    }
    fn public_host(&self) -> Option<(String, String)> {
        match self.record(Call::PublicHost) {
            Some(_) => None,
            None => Some(("box".into(), "192.0.2.7".into())),
        }
    }
    fn clone_tree(&self, dir: &Node, what: &str, recursive: Recursive) -> Result<Node> {
        self.run(Call::CloneTree(dir.0.clone(), recursive), "open_tree", what)?;
        Ok(Node(format!("clone({})", dir.0)))
    }
    fn set_attrs(
        &self,
        mnt: &Node,
        what: &str,
        set: Attrs,
        clear: Attrs,
        recursive: Recursive,
    ) -> Result<()> {
        let call = Call::SetAttrs {
            mnt: mnt.0.clone(),
            set,
            clear,
            recursive,
        };
        self.run(call, "mount_setattr", what)
    }
    fn attach(&self, mnt: &Node, target: &Node, what: &str) -> Result<()> {
        let call = Call::Attach(mnt.0.clone(), target.0.clone());
        self.run(call, "move_mount", what)
    }
    fn new_fs(&self, fstype: &str, options: &[(&str, &str)], attrs: Attrs) -> Result<Node> {
        let opts = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.run(Call::NewFs(fstype.into(), opts, attrs), "fsopen", fstype)?;
        Ok(Node(format!("{fstype}#{}", self.made(fstype))))
    }
    fn make_nodes(
        &self,
        dir: &Node,
        devices: &[(&str, u32, u32, u32)],
        dirs: &[(&str, u32)],
    ) -> Result<()> {
        let devs = devices
            .iter()
            .map(|(n, m, a, i)| (n.to_string(), *m, *a, *i))
            .collect();
        let ds = dirs.iter().map(|(n, m)| (n.to_string(), *m)).collect();
        let first = devices.first().map_or("", |d| d.0);
        self.run(Call::MakeNodes(dir.0.clone(), devs, ds), "mknod", first)
    }
    fn symlink_at(&self, target: &str, dir: &Node, name: &str) -> Result<()> {
        let call = Call::Symlink(target.into(), dir.0.clone(), name.into());
        self.run(call, "symlink", name)
    }
    fn pivot_into(&self, new_root: &Node) -> Result<()> {
        self.run(Call::Pivot(new_root.0.clone()), "pivot_root", "new root")
    }
}

impl Privileges for Fake {
    fn drop_whole_bounding_set(&self) -> Result<()> {
        let what = "PR_CAPBSET_DROP";
        self.run(Call::DropWholeBoundingSet, "prctl", what)
    }
    fn drop_bounding(&self, keep: &[String]) -> Result<()> {
        let call = Call::DropBounding(keep.to_vec());
        self.run(call, "drop bounding capability", "")
    }
    fn set_keepcaps(&self, on: bool) -> Result<()> {
        self.run(Call::SetKeepcaps(on), "prctl", "PR_SET_KEEPCAPS")
    }
    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
        let call = Call::SetIds(uid, gid, groups.to_vec());
        self.run(call, "setgroups", &format!("{groups:?}"))
    }
    fn clear_all_sets(&self) -> Result<()> {
        let what = "PR_CAP_AMBIENT_CLEAR_ALL";
        self.run(Call::ClearAllSets, "prctl", what)
    }
    fn set_exactly(&self, keep: &[String]) -> Result<()> {
        let call = Call::SetExactly(keep.to_vec());
        self.run(call, "clear ambient capabilities", "")
    }
    fn set_no_new_privs(&self) -> Result<()> {
        self.run(Call::SetNoNewPrivs, "prctl", "PR_SET_NO_NEW_PRIVS")
    }
    fn set_dumpable(&self, on: bool) -> Result<()> {
        self.run(Call::SetDumpable(on), "prctl", "PR_SET_DUMPABLE")
    }
}
