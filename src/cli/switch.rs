//! `cairn switch SANDBOX FILE`: check FILE as SANDBOX's process config
//! (everything `cairn check --sandbox SANDBOX --alternate-config FILE`
//! checks), install it atomically in place of the sandbox's process config,
//! and tell the running tree to reload. An invalid FILE changes nothing.

use std::path::Path;

use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::read_file_capped;
use crate::config::yaml;
use crate::sys::fs as sfs;
use crate::sys::process;
use crate::text::path;
use crate::tree::request::Kind;

use super::wait::Scope;

/// `wait`: after the install, wait until the tree has reloaded and the
/// sandbox's rollout is done (see `cli::wait`), at most `timeout`.
pub fn run(
    master_path: &Path,
    sandbox: &str,
    file: &Path,
    wait: bool,
    timeout: Option<std::time::Duration>,
) -> u8 {
    // The whole check, as `cairn check` does it.
    let code = super::check::all(master_path, Some(sandbox), Some(file));
    if code != 0 {
        eprintln!("cairn switch: {} was not installed", path(file));
        return code;
    }
    let master = match Master::load(master_path) {
        Ok(m) => m,
        Err(p) => {
            super::eprint_problems(&p);
            return 1;
        }
    };
    let sb_path = master.sandboxes_dir.join(format!("{sandbox}.yaml"));
    let target = match crate::config::sandbox::Sandbox::load(&master, &sb_path) {
        Ok(s) => s.config_file,
        Err(p) => {
            super::eprint_problems(&p);
            return 1;
        }
    };
    let bytes = match read_file_capped(file, yaml::TRUSTED.max_bytes) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", path(file));
            return 1;
        }
    };
    // Parse once more from the exact bytes we install (the file could have
    // changed since the check).
    if let Err(p) = Processes::parse(&file.display().to_string(), &bytes) {
        super::eprint_problems(&p);
        return 1;
    }
    if let Some(dir) = target.parent()
        && let Err(e) = std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            0o755,
        )
        .create(dir)
    {
        eprintln!("{}: {e}", path(dir));
        return 1;
    }
    if let Err(e) = sfs::write_atomic(&target, &bytes, true) {
        eprintln!("{}: {e}", path(&target));
        return 1;
    }
    if wait {
        return match super::signal::running_tree(&master) {
            Ok(_) => {
                println!("installed {}", path(&target));
                super::request::ask(
                    &master,
                    Kind::Reload,
                    None,
                    Some(Scope::sandbox(sandbox)),
                    timeout,
                    &format!("switch of {}", crate::text::escape(sandbox)),
                )
            }
            Err(why) => {
                eprintln!(
                    "installed {}, but there is nothing to wait for: {}",
                    path(&target),
                    crate::text::escape(&why)
                );
                1
            }
        };
    }
    match super::signal::running_tree(&master) {
        Ok(pid) => match process::kill(pid, libc::SIGHUP) {
            Ok(()) => println!("installed {}; tree (pid {pid}) reloading", path(&target)),
            Err(e) => {
                eprintln!(
                    "installed {}, but could not signal the tree: {e}",
                    path(&target)
                );
                return 1;
            }
        },
        Err(why) => println!(
            "installed {} ({}; it takes effect when the tree starts)",
            path(&target),
            crate::text::escape(&why)
        ),
    }
    0
}
