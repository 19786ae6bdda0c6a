//! `cairn check`: validate configs without running anything.
//!
//! Exit 0 when everything is valid, 1 with one line per problem on stderr
//! (file, line and key where known), 2 on bad usage (clap). A problem in one
//! sandbox never hides problems in another.

use std::path::Path;

use crate::config::error::{ConfigError, Problems};
use crate::config::master::Master;
use crate::config::validate;
use crate::image;
use crate::tree::desired::{self, Selection};
use crate::tree::{confined, parse};

/// Check every sandbox (or one, with another process config).
pub fn all(master_path: &Path, sandbox: Option<&str>, alternate: Option<&Path>) -> u8 {
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => return report(&p),
    };
    let configs = desired::load_configs(
        master,
        &Selection {
            only: sandbox,
            alternate,
        },
    );
    for w in &configs.warnings {
        eprintln!("warning: {w}");
    }
    let mut problems = Problems::new();
    for p in configs.problems.values() {
        problems.extend(p.clone());
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
    let mut loader = parse::Prefetched(parse::load_all(&jobs));
    for r in desired::resolve_entries(&configs, &mut loader, true) {
        entries += 1;
        match r.result {
            Ok(specs) => instances += specs.len(),
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
        let bytes =
            image::read_config(&root, config_path).map_err(|e| ConfigError::new(&shown, e))?;
        let cfg = confined::parse(&shown, &bytes)?;
        validate::standalone(&shown, &cfg).into_result(())
    })();
    match result {
        Ok(()) => {
            println!("ok: {shown}");
            0
        }
        Err(p) => report(&p),
    }
}

fn report(p: &Problems) -> u8 {
    for e in p.iter() {
        eprintln!("{e}");
    }
    1
}
