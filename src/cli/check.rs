//! `cairn check`: validate configs without running anything.
//!
//! Exit 0 when everything is valid, 1 with one line per problem on stderr
//! (file, line and key where known), 2 on bad usage (clap). A problem in one
//! sandbox never hides problems in another.

use std::path::Path;

use crate::config::error::{ConfigError, Problems};
use crate::config::master::Master;
use crate::config::sandbox::Sandbox;
use crate::config::validate;
use crate::image;
use crate::load::desired::{self, Selection};
use crate::load::{confined, imagecheck, parse};
use crate::tree::hostdirs;

/// Check every sandbox (or one, with another process config).
pub fn all(master_path: &Path, sandbox: Option<&str>, alternate: Option<&Path>) -> u8 {
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => return report(&p),
    };
    // The dirs the tree writes into: it would refuse to start with an
    // existing one that is not root's alone, so as root (on the host that
    // runs the tree) that is an error here too; a missing one is fine (the
    // tree creates it). Run as a user, check is a lint of configs made
    // elsewhere and says it as a warning.
    let mut problems = Problems::new();
    let as_root = nix::unistd::geteuid().is_root();
    for p in hostdirs::problems(&master, hostdirs::Scope::Tree) {
        if p.permission {
            eprintln!("warning: cannot check {}", p.line(&master));
        } else if !as_root {
            eprintln!("warning: {}", p.line(&master));
        } else {
            problems
                .push(ConfigError::new(master.path.display().to_string(), p.message).key(p.key));
        }
    }
    let configs = desired::load_configs(
        master,
        &Selection {
            only: sandbox,
            alternate,
        },
    );
    for w in &configs.warnings {
        eprintln!("warning: {}", crate::text::escape(&w.to_string()));
    }
    for p in configs.problems.values() {
        problems.extend(p.clone());
    }
    for sc in configs.sandboxes.values() {
        problems.extend(etc_sources(&sc.sandbox));
    }
    let mut instances = 0usize;
    let mut entries = 0usize;
    // Container configs are read in a bounded child process, as the tree
    // does: a hostile one costs only its own entry.
    let jobs: Vec<_> = configs
        .sandboxes
        .values()
        .flat_map(|sc| sc.processes.entries.values().map(move |e| (&sc.sandbox, e)))
        .collect();
    // No parse cache: a check must see every file parsed.
    let mut loader = parse::Prefetched(parse::load_all(&jobs, &crate::load::parsed::Cache::none()));
    for r in desired::resolve_entries(&configs, &mut loader, true) {
        entries += 1;
        match r.result {
            Ok(specs) => {
                instances += specs.len();
                // The paths are the same in every instance of an entry.
                if let (Some(spec), Some(sc)) = (specs.first(), configs.sandboxes.get(&r.sandbox))
                    && let Some(entry) = sc.processes.entries.get(&r.process)
                {
                    let file = desired::config_display(&sc.sandbox, entry);
                    let found = imagecheck::check(spec, &file);
                    for w in found.warnings {
                        eprintln!("warning: {}", crate::text::escape(&w));
                    }
                    for e in found.errors {
                        problems.push(e);
                    }
                }
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return report(&problems);
    }
    println!(
        "ok: {} sandbox(es), {entries} process entr{}, {instances} instance(s)",
        configs.sandboxes.len(),
        if entries == 1 { "y" } else { "ies" },
    );
    0
}

/// `--container IMAGE_DIR CONFIG_PATH`: one container config on its own.
pub fn container(image_dir: &Path, config_path: &str) -> u8 {
    let mut shown = image_dir.to_path_buf();
    shown.push(config_path.trim_start_matches('/'));
    let shown = shown.display().to_string();
    let result = (|| -> Result<(), Problems> {
        let root = crate::sys::fs::open_dir(image_dir)
            .map_err(|e| ConfigError::new(&shown, e.to_string()))?;
        let bytes = image::read_config(&root, config_path)
            .map_err(|e| ConfigError::new(&shown, e.to_string()))?;
        let mut cfg = confined::parse(&shown, &bytes)?;
        crate::load::desired::secret_environ_file(&root, image_dir, &mut cfg)?;
        validate::standalone(&shown, &cfg).into_result(())
    })();
    match result {
        Ok(()) => {
            println!("ok: {}", crate::text::escape(&shown));
            0
        }
        Err(p) => report(&p),
    }
}

/// A sandbox's `resolv-conf` and `hosts-file` are copied into every
/// container that asks for them (the default). One that exists but is not a
/// regular file (a FIFO, a directory) fails each such start, so say so
/// now. A missing one may still appear before the instances start; the
/// start names it if not.
fn etc_sources(s: &Sandbox) -> Problems {
    let mut p = Problems::new();
    // The line of a top-level key, for the message (none: the default).
    let bytes = crate::config::read_file_capped(&s.path, 1 << 20).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let line_of = |key: &str| {
        let snake = key.replace('-', "_");
        text.lines()
            .position(|l| {
                [key, snake.as_str()]
                    .iter()
                    .any(|k| l.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
            })
            .map_or(0, |i| i + 1)
    };
    for (key, path) in [
        ("resolv-conf", &s.resolv_conf),
        ("hosts-file", &s.hosts_file),
    ] {
        // stat(2): follows symlinks (a host's resolv.conf often is one)
        // and never opens, so a FIFO cannot block us.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            p.push(
                ConfigError::new(
                    s.path.display().to_string(),
                    format!(
                        "{}: not a regular file ({}); containers that copy it cannot start",
                        path.display(),
                        crate::config::file_kind(meta.file_type())
                    ),
                )
                .at(line_of(key))
                .key(key),
            );
        }
    }
    p
}

/// One escaped line per problem: a container config's keys and values
/// are quoted in the messages, and are an image's text.
fn report(p: &Problems) -> u8 {
    super::eprint_problems(p);
    1
}
