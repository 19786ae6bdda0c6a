//! Everything `cairn clean` must know before it removes anything: the
//! configs, which image-dirs to clean, what runs (the tree's state.json and
//! every process's root), the config log and the `used-images-list`s. Any
//! of these that cannot be read is a problem, and with a problem nothing
//! is removed: an unknown is never taken to mean "unused".

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::master::Master;
use crate::load::desired::{Configs, Selection, load_configs};
use crate::sys::hostfs::HostDir;

use super::configlog::{self, Line};
use super::decide::History;

/// `used-images-list` files are read up to this size.
const MAX_LIST: usize = 16 << 20;

/// A directory's identity (device, inode).
pub type Id = (u64, u64);

/// The sandboxes that share one image-dir, and what to do with it.
pub struct Group {
    /// The image-dir as the first of its sandboxes names it.
    pub path: PathBuf,
    pub sandboxes: Vec<String>,
    pub what: What,
}

pub enum What {
    /// It does not exist (nothing to clean).
    Missing,
    /// Left alone, and why.
    Leave(String),
    Clean {
        dir: HostDir,
        id: Id,
        levels: usize,
    },
}

/// The facts, for the groups to clean.
pub struct Facts {
    pub configs: Configs,
    pub groups: Vec<Group>,
    /// What runs.
    pub running: Running,
    /// Config log: (image-dir id, image) → last use.
    pub last_used: HashMap<(Id, String), SystemTime>,
    /// The first line of the config log, per image-dir.
    pub history: HashMap<Id, History>,
    pub history_default: History,
    /// `used-images-list` entries: (sandbox, file, image names).
    pub lists: Vec<(String, PathBuf, Vec<String>)>,
    /// Mount points of our mount namespace.
    pub mounts: Vec<String>,
}

pub fn gather(master: &Master) -> Result<Facts, Vec<String>> {
    let configs = load_configs(master.clone(), &Selection::default());
    if !configs.problems.is_empty() {
        let mut out = Vec::new();
        for p in configs.problems.values() {
            out.extend(p.iter().map(|e| e.to_string()));
        }
        return Err(out);
    }
    let mut problems = Vec::new();
    let groups = groups(&configs, &mut problems);
    let cleaning = groups.iter().any(|g| matches!(g.what, What::Clean { .. }));
    let mut facts = Facts {
        configs,
        groups,
        running: Running {
            instances: Vec::new(),
            roots: HashMap::new(),
            hidden: Vec::new(),
        },
        last_used: HashMap::new(),
        history: HashMap::new(),
        history_default: History::Off,
        lists: Vec::new(),
        mounts: Vec::new(),
    };
    if !cleaning || !problems.is_empty() {
        return if problems.is_empty() {
            Ok(facts)
        } else {
            Err(problems)
        };
    }
    match running(master) {
        Ok(r) => facts.running = r,
        Err(p) => problems.extend(p),
    }
    match history(master, &facts.configs) {
        Ok((last_used, history, default)) => {
            facts.last_used = last_used;
            facts.history = history;
            facts.history_default = default;
        }
        Err(p) => problems.extend(p),
    }
    for g in &facts.groups {
        if !matches!(g.what, What::Clean { .. }) {
            continue;
        }
        for name in &g.sandboxes {
            let Some(sc) = facts.configs.sandboxes.get(name) else {
                continue;
            };
            let Some(file) = &sc.sandbox.used_images_list else {
                continue;
            };
            match read_list(file, &g.path) {
                Ok(names) => facts.lists.push((name.clone(), file.clone(), names)),
                Err(e) => problems.push(e),
            }
        }
    }
    match crate::sys::proc::read_text("/proc/self/mountinfo") {
        Ok(t) => {
            facts.mounts = crate::sys::proc::parse_mountinfo(&t)
                .into_iter()
                .map(|m| m.mount_point)
                .collect();
        }
        Err(e) => problems.push(format!("/proc/self/mountinfo: {e}")),
    }
    if problems.is_empty() {
        Ok(facts)
    } else {
        Err(problems)
    }
}

/// The sandboxes grouped by image-dir (the same dir however it is
/// spelled), and whether each group is cleaned.
fn groups(configs: &Configs, problems: &mut Vec<String>) -> Vec<Group> {
    struct Acc {
        path: PathBuf,
        members: Vec<(String, bool, usize)>,
        dir: Option<HostDir>,
    }
    let mut by_id: BTreeMap<Id, Acc> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, sc) in &configs.sandboxes {
        let sb = &sc.sandbox;
        // A dir to clean must be root's alone, every step of its path
        // checked as cairn checks its own dirs; one that is not cleaned
        // only needs to be told apart (is it shared with one that is?).
        let (id, dir) = if sb.auto_clean {
            match HostDir::open(&sb.image_dir, false) {
                Ok(Some(d)) => match crate::sys::fs::fstat(d.fd()) {
                    Ok(st) => ((st.st_dev, st.st_ino), Some(d)),
                    Err(e) => {
                        problems.push(format!(
                            "sandbox {name}: image-dir {}: {e}",
                            sb.image_dir.display()
                        ));
                        continue;
                    }
                },
                Ok(None) => {
                    out.push(Group {
                        path: sb.image_dir.clone(),
                        sandboxes: vec![name.clone()],
                        what: What::Missing,
                    });
                    continue;
                }
                Err(e) => {
                    problems.push(format!(
                        "sandbox {name}: image-dir {e}; refusing to clean a dir that someone other than root could change"
                    ));
                    continue;
                }
            }
        } else {
            match std::fs::metadata(&sb.image_dir) {
                Ok(m) => ((m.dev(), m.ino()), None),
                Err(_) => {
                    out.push(Group {
                        path: sb.image_dir.clone(),
                        sandboxes: vec![name.clone()],
                        what: What::Leave(format!("auto-clean is false (sandbox {name})")),
                    });
                    continue;
                }
            }
        };
        let acc = by_id.entry(id).or_insert_with(|| Acc {
            path: sb.image_dir.clone(),
            members: Vec::new(),
            dir: None,
        });
        acc.members
            .push((name.clone(), sb.auto_clean, sb.image_dir_levels));
        if acc.dir.is_none() {
            acc.dir = dir;
        }
    }
    for (id, acc) in by_id {
        let sandboxes: Vec<String> = acc.members.iter().map(|m| m.0.clone()).collect();
        let on: Vec<&str> = acc
            .members
            .iter()
            .filter(|m| m.1)
            .map(|m| m.0.as_str())
            .collect();
        let off: Vec<&str> = acc
            .members
            .iter()
            .filter(|m| !m.1)
            .map(|m| m.0.as_str())
            .collect();
        let levels = acc.members[0].2;
        let what = if on.is_empty() {
            What::Leave(format!("auto-clean is false (sandbox {})", off.join(", ")))
        } else if !off.is_empty() {
            What::Leave(format!(
                "its sandboxes disagree on auto-clean (true: {}; false: {}); left alone",
                on.join(", "),
                off.join(", ")
            ))
        } else if acc.members.iter().any(|m| m.2 != levels) {
            What::Leave(format!(
                "its sandboxes ({}) disagree on image-dir-levels; left alone",
                sandboxes.join(", ")
            ))
        } else if let Some(dir) = acc.dir {
            What::Clean { dir, id, levels }
        } else {
            What::Leave("cannot be opened".into())
        };
        out.push(Group {
            path: acc.path,
            sandboxes,
            what,
        });
    }
    out
}

/// What runs: the instances state.json lists and every process's root.
pub struct Running {
    /// (sandbox, image, who).
    pub instances: Vec<(String, String, String)>,
    /// Every process's root: id → pids.
    pub roots: HashMap<Id, Vec<i32>>,
    /// Processes whose root we may not look at.
    pub hidden: Vec<i32>,
}

/// Look at what runs now (again, just before removing).
pub fn running(master: &Master) -> Result<Running, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = Running {
        instances: Vec::new(),
        roots: HashMap::new(),
        hidden: Vec::new(),
    };
    match state_instances(master) {
        Ok(i) => out.instances = i,
        Err(e) => problems.push(e),
    }
    match crate::sys::proc::roots() {
        Ok(roots) => {
            out.hidden = roots.hidden;
            for r in roots.seen {
                let pids = out.roots.entry((r.dev, r.ino)).or_default();
                if !pids.contains(&r.pid) {
                    pids.push(r.pid);
                }
            }
        }
        Err(e) => problems.push(format!("cannot tell which images processes run in: {e}")),
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// (sandbox, image, "SANDBOX/PROCESS.N (STATE)") of every instance the
/// tree's state.json lists. A tree that no longer runs leaves its last
/// state: its instances may still run (workloads outlive the tree), so
/// they count too. No state.json: no tree has run with this runtime dir.
fn state_instances(master: &Master) -> Result<Vec<(String, String, String)>, String> {
    if std::fs::symlink_metadata(master.state_file()).is_err() {
        return Ok(Vec::new());
    }
    let snap = crate::cli::ps::read_state(master)?;
    Ok(snap
        .instances
        .into_iter()
        .map(|i| {
            let who = format!("{} ({}, state.json)", i.name, i.state);
            (i.sandbox, i.image, who)
        })
        .collect())
}

type History3 = (
    HashMap<(Id, String), SystemTime>,
    HashMap<Id, History>,
    History,
);

/// The config log's last use of every image, keyed by image-dir identity.
fn history(master: &Master, configs: &Configs) -> Result<History3, Vec<String>> {
    let Some(dir) = &master.config_log_dir else {
        return Ok((HashMap::new(), HashMap::new(), History::Off));
    };
    let lines: Vec<Line> = match HostDir::open(dir, false) {
        Ok(Some(d)) => {
            let sandboxes: Vec<(&str, &Path)> = configs
                .sandboxes
                .iter()
                .map(|(n, sc)| (n.as_str(), sc.sandbox.image_dir.as_path()))
                .collect();
            configlog::read(&d, &sandboxes)?
        }
        Ok(None) => Vec::new(),
        Err(e) => return Err(vec![format!("config log dir {e}")]),
    };
    let mut ids: HashMap<PathBuf, Option<Id>> = HashMap::new();
    let mut id_of = |p: &Path| {
        *ids.entry(p.to_path_buf())
            .or_insert_with(|| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino())))
    };
    let mut first: HashMap<Id, SystemTime> = HashMap::new();
    for l in lines.iter().filter(|l| l.image.is_some()) {
        if let Some(id) = id_of(&l.image_dir) {
            let e = first.entry(id).or_insert(l.time);
            if l.time < *e {
                *e = l.time;
            }
        }
    }
    let mut last_used = HashMap::new();
    for ((image_dir, image), t) in configlog::last_uses(lines) {
        if let Some(id) = id_of(&image_dir) {
            let e = last_used.entry((id, image)).or_insert(t);
            if *e < t {
                *e = t;
            }
        }
    }
    let history = first
        .into_iter()
        .map(|(id, t)| (id, History::Log(Some(t))))
        .collect();
    Ok((last_used, history, History::Log(None)))
}

/// The image names of a `used-images-list`: one per line, relative to the
/// image-dir; an absolute path below the image-dir is taken too (lithos
/// compared the list's lines with full paths).
fn read_list(file: &Path, image_dir: &Path) -> Result<Vec<String>, String> {
    let bytes = crate::config::read_file_capped(file, MAX_LIST)
        .map_err(|e| format!("used-images-list {}: {e}", crate::text::path(file)))?;
    Ok(list_names(&String::from_utf8_lossy(&bytes), image_dir))
}

/// See `read_list`.
pub fn list_names(text: &str, image_dir: &Path) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let p = Path::new(l);
            if p.is_absolute() {
                let rel = p.strip_prefix(image_dir).ok()?;
                Some(rel.to_string_lossy().trim_end_matches('/').to_string())
            } else {
                Some(l.trim_end_matches('/').to_string())
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_are_image_names_or_paths_below_the_image_dir() {
        let text =
            "web-1\n  web-2  \n\n/srv/img/web-3\n/srv/img/a/b/\n/elsewhere/web-4\nproj/v1/\n";
        assert_eq!(
            list_names(text, Path::new("/srv/img")),
            ["web-1", "web-2", "web-3", "a/b", "proj/v1"]
        );
    }
}
