//! `cairn clean [--dry-run] [--keep-days D] [--keep-recent N]`: remove the
//! images no current config uses, that nothing runs in, and that the
//! config log has not shown in use within a window (lithos_clean's job).
//!
//! Three steps: `gather` every fact (a fact that cannot be read stops the
//! command before anything is removed), `decide` each image (pure), then
//! print each verdict and, unless `--dry-run`, remove what goes through
//! dir fds (`scan`, `sys::remove`).

pub mod configlog;
pub mod decide;
pub mod gather;
pub mod scan;

use std::path::Path;

use crate::config::master::Master;
use crate::text::{escape, path as shown};

use decide::{Image, Rules, Verdict};
use gather::{Facts, Group, What};
use scan::Found;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dry_run: bool,
    /// Keep images the config log shows in use within this many days;
    /// `None`: everything the log names.
    pub keep_days: Option<f64>,
    /// Keep this many of the newest (by mtime) unused images per image-dir.
    pub keep_recent: usize,
}

/// Most processes named as the users of one image.
const MAX_USERS: usize = 4;

pub fn run(master_path: &Path, opts: &Options) -> u8 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("cairn clean: must run as root");
        return 1;
    }
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => {
            super::eprint_problems(&p);
            return 1;
        }
    };
    let facts = match gather::gather(&master) {
        Ok(f) => f,
        Err(problems) => {
            for p in problems {
                eprintln!("cairn clean: {}", escape(&p));
            }
            eprintln!("cairn clean: nothing was removed");
            return 1;
        }
    };
    if !facts.running.hidden.is_empty() {
        // Non-dumpable processes of a user namespace above ours (pid 1 of
        // some CI sandboxes): named, not fatal (see docs/commands.md).
        let some: Vec<String> = facts
            .running
            .hidden
            .iter()
            .take(MAX_USERS)
            .map(|p| {
                let comm = crate::sys::proc::comm(*p).unwrap_or_else(|| "?".into());
                format!("{p} ({})", escape(&comm))
            })
            .collect();
        eprintln!(
            "cairn clean: warning: may not look at the root of {} process(es) (pid {}); an image one of them runs in is not seen as in use",
            facts.running.hidden.len(),
            some.join(", ")
        );
    }
    let now = std::time::SystemTime::now();
    let mut tally = Tally::default();
    let Facts { groups, .. } = &facts;
    for g in groups {
        clean_group(&master, g, &facts, opts, now, &mut tally);
    }
    let (verb, kept) = if opts.dry_run {
        ("would remove", "keep")
    } else {
        ("removed", "kept")
    };
    println!(
        "{verb} {} image{}, {kept} {}{}",
        tally.gone,
        if tally.gone == 1 { "" } else { "s" },
        tally.kept,
        if opts.dry_run {
            " (dry run: nothing was removed)"
        } else {
            ""
        }
    );
    if tally.failed > 0 {
        eprintln!("cairn clean: not everything that was to go was removed (see above)");
        return 1;
    }
    0
}

#[derive(Default)]
struct Tally {
    gone: usize,
    kept: usize,
    failed: usize,
}

fn clean_group(
    master: &Master,
    g: &Group,
    facts: &Facts,
    opts: &Options,
    now: std::time::SystemTime,
    t: &mut Tally,
) {
    let dir = shown(&g.path);
    let (hd, id, levels) = match &g.what {
        What::Missing => {
            println!(
                "skip {dir}: does not exist (sandbox {})",
                g.sandboxes.join(", ")
            );
            return;
        }
        What::Leave(why) => {
            println!("skip {dir}: {}", escape(why));
            return;
        }
        What::Clean { dir, id, levels } => (dir, *id, *levels),
    };
    let found = match scan::scan(hd, levels, &facts.mounts) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cairn clean: {}", escape(&e));
            t.failed += 1;
            return;
        }
    };
    let images: Vec<Image> = found.iter().map(|f| image_facts(f, g, id, facts)).collect();
    let rules = Rules {
        keep_days: opts.keep_days,
        keep_recent: opts.keep_recent,
        now,
        history: facts
            .history
            .get(&id)
            .copied()
            .unwrap_or(facts.history_default),
    };
    let mut verdicts = decide::decide(&images, &rules);
    // An image an interrupted clean began to remove goes (unless it is
    // in use): it is not an image any more.
    for (f, v) in found.iter().zip(verdicts.iter_mut()) {
        if f.leftover && !matches!(v, Verdict::Running(_) | Verdict::Mount(_)) {
            *v = Verdict::Never(rules.history);
        }
    }
    // Decide and print; with --dry-run that is all.
    let mut going: Vec<(Found, String, String)> = Vec::new();
    for (f, v) in found.into_iter().zip(verdicts) {
        let path = shown(&f.shown).into_owned();
        let why = if f.leftover {
            "left by an interrupted cairn clean".to_string()
        } else {
            v.to_string()
        };
        if !v.removes() {
            t.kept += 1;
            println!("keep {path}: {why}");
        } else if opts.dry_run {
            t.gone += 1;
            println!("would remove {path}: {why}");
        } else {
            going.push((f, path, why));
        }
    }
    if going.is_empty() {
        return;
    }
    // Out of the way first: each to its trash name, so no start can open
    // it by name any more.
    let mut trashed = Vec::new();
    for (n, (f, path, why)) in going.into_iter().enumerate() {
        match scan::to_trash(&f, n as u64 + 1) {
            Ok(trash) => trashed.push((f, path, why, trash)),
            Err(errors) => {
                t.failed += 1;
                for e in errors {
                    eprintln!("cairn clean: cannot remove {path}: {}", escape(&e));
                }
            }
        }
    }
    // Then look at what runs once more: an instance may have started in
    // one of them since the facts were gathered (a switch meanwhile).
    // What runs now goes back; if that cannot be told, all of it does.
    let now_running = gather::running(master);
    let mut chains = Vec::new();
    for (f, path, why, trash) in trashed {
        let users = match &now_running {
            Ok(r) => users(&f, g, r),
            Err(_) => vec!["(what runs could not be read again)".to_string()],
        };
        if !users.is_empty() {
            t.kept += 1;
            match scan::restore(&f, &trash) {
                Ok(()) => println!(
                    "keep {path}: in use by {} (started while cairn clean ran)",
                    users
                        .iter()
                        .map(|u| escape(u).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => {
                    t.failed += 1;
                    eprintln!("cairn clean: {path} is in use again: {}", escape(&e));
                }
            }
            continue;
        }
        let chain = f.chain.clone();
        match scan::remove_trashed(f, &trash) {
            Ok(()) => {
                t.gone += 1;
                println!("removed {path}: {why}");
                chains.push(chain);
            }
            Err(errors) => {
                t.failed += 1;
                for e in errors {
                    eprintln!("cairn clean: cannot remove {path}: {}", escape(&e));
                }
            }
        }
    }
    if let Err(problems) = now_running {
        t.failed += 1;
        for p in problems {
            eprintln!("cairn clean: {}", escape(&p));
        }
    }
    for e in scan::prune(chains) {
        eprintln!("cairn clean: {}", escape(&e));
    }
}

/// Who runs in `f` (an instance state.json lists, a process whose root
/// it is).
fn users(f: &Found, g: &Group, r: &gather::Running) -> Vec<String> {
    let mut out: Vec<String> = r
        .instances
        .iter()
        .filter(|(sb, image, _)| g.sandboxes.contains(sb) && *image == f.name)
        .map(|(_, _, who)| who.clone())
        .collect();
    if f.fd.is_some()
        && let Some(pids) = r.roots.get(&(f.dev, f.ino))
    {
        for pid in pids.iter().take(MAX_USERS) {
            let comm = crate::sys::proc::comm(*pid).unwrap_or_else(|| "?".into());
            out.push(format!("pid {pid} ({comm})"));
        }
        if pids.len() > MAX_USERS {
            out.push(format!("{} more processes", pids.len() - MAX_USERS));
        }
    }
    out
}

/// What the facts say of one image found in group `g`.
fn image_facts(f: &Found, g: &Group, id: gather::Id, facts: &Facts) -> Image {
    let running = users(f, g, &facts.running);
    let configured = g
        .sandboxes
        .iter()
        .filter_map(|sb| facts.configs.sandboxes.get(sb).map(|sc| (sb, sc)))
        .flat_map(|(sb, sc)| {
            sc.processes
                .entries
                .iter()
                .filter(|(_, e)| e.image == f.name)
                .map(move |(name, _)| format!("{sb}/{name}"))
        })
        .collect();
    let listed = facts
        .lists
        .iter()
        .filter(|(sb, _, names)| g.sandboxes.contains(sb) && names.contains(&f.name))
        .map(|(_, file, _)| file.clone())
        .collect();
    Image {
        name: f.name.clone(),
        mtime: f.mtime,
        running,
        configured,
        listed,
        mount: f.mount.clone(),
        last_used: facts.last_used.get(&(id, f.name.clone())).copied(),
    }
}
