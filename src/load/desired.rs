//! Configs → desired instances (`SANDBOX/PROCESS.N` → `InstanceSpec`).
//!
//! Loading the trusted files happens here; loading each untrusted container
//! config is delegated to a `ContainerLoader`, so the tree and `cairn
//! check` can have them read in a short-lived child (`parse`). Wherever it
//! runs, `load_container` reads the file and has a confined child parse it
//! (`confined`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::container::ContainerConfig;
use crate::config::error::{ConfigError, Problems};
use crate::config::master::Master;
use crate::config::process::{ProcessEntry, Processes};
use crate::config::sandbox::Sandbox;
use crate::config::validate;
use crate::image;
use crate::spec::{InstanceSpec, Which};

use super::confined::Parser;

/// One sandbox with its process config.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub sandbox: Sandbox,
    pub processes: Processes,
}

/// Everything the operator wrote, with the problems found on the way. A
/// sandbox whose files fail is absent from `sandboxes` and its problems are
/// in `problems` (keyed by sandbox name, `""` for the master).
#[derive(Debug, Clone)]
pub struct Configs {
    pub master: Master,
    pub sandboxes: BTreeMap<String, SandboxConfig>,
    pub problems: BTreeMap<String, Problems>,
    /// Legal but suspicious settings (see `validate::entry_warnings`).
    pub warnings: Vec<ConfigError>,
}

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// Only this sandbox.
    pub only: Option<&'a str>,
    /// Use this file as the (only) sandbox's process config.
    pub alternate: Option<&'a Path>,
}

/// Load the sandbox and process files named by `master`.
pub fn load_configs(master: Master, sel: &Selection) -> Configs {
    let mut sandboxes = BTreeMap::new();
    let mut problems: BTreeMap<String, Problems> = BTreeMap::new();
    let files = match list_yaml(&master.sandboxes_dir) {
        Ok(f) => f,
        Err(e) => {
            problems.insert(
                String::new(),
                ConfigError::new(master.sandboxes_dir.display().to_string(), e).into(),
            );
            Vec::new()
        }
    };
    let mut warnings = Vec::new();
    // A `.yml` (or other) file is not read: say so, it looks like config.
    for path in stray_files(&master.sandboxes_dir) {
        warnings.push(ConfigError::new(
            path.display().to_string(),
            "ignored: only *.yaml files in the sandboxes dir are read",
        ));
    }
    let mut found_only = false;
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if let Some(only) = sel.only {
            if name != only {
                continue;
            }
            found_only = true;
        }
        let sandbox = match Sandbox::load(&master, &path) {
            Ok(s) => s,
            Err(p) => {
                problems.insert(name, p);
                continue;
            }
        };
        let proc_path = sel
            .alternate
            .map(Path::to_path_buf)
            .unwrap_or_else(|| sandbox.config_file.clone());
        let processes = if sel.alternate.is_none() && !proc_path.exists() {
            // No process config: the sandbox runs nothing (as in lithos),
            // which deserves a word.
            let yml = proc_path.with_extension("yml");
            let hint = if yml.exists() {
                format!(" ({} is there, but only .yaml is read)", yml.display())
            } else {
                String::new()
            };
            warnings.push(ConfigError::new(
                sandbox.path.display().to_string(),
                format!(
                    "sandbox {name:?} has no process config {}: it runs nothing{hint}",
                    proc_path.display()
                ),
            ));
            Ok(Processes {
                file: proc_path.display().to_string(),
                entries: BTreeMap::new(),
            })
        } else {
            Processes::load(&proc_path)
        };
        match processes {
            Ok(processes) => {
                for e in processes.entries.values() {
                    warnings.extend(validate::entry_warnings(&processes.file, &sandbox, e));
                }
                sandboxes.insert(name, SandboxConfig { sandbox, processes });
            }
            Err(p) => {
                problems.insert(name, p);
            }
        }
    }
    if let Some(only) = sel.only
        && !found_only
    {
        problems.insert(
            only.to_string(),
            ConfigError::new(
                master
                    .sandboxes_dir
                    .join(format!("{only}.yaml"))
                    .display()
                    .to_string(),
                format!("no sandbox named {only:?}"),
            )
            .into(),
        );
    }
    Configs {
        master,
        sandboxes,
        problems,
        warnings,
    }
}

/// Files of a directory that look like configs but are not read (`*.yml`).
fn stray_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    out.sort();
    out
}

/// `*.yaml` files of a directory, sorted.
fn list_yaml(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Reads one entry's container config and validates it.
pub trait ContainerLoader {
    /// Returns the display name of the config file and the validated config.
    fn load(
        &mut self,
        sandbox: &Sandbox,
        entry: &ProcessEntry,
    ) -> Result<(String, ContainerConfig), Problems>;
}

/// The display name of an entry's container config.
pub fn config_display(sandbox: &Sandbox, entry: &ProcessEntry) -> String {
    let mut p = sandbox.image_dir.join(&entry.image);
    p.push(entry.config.trim_start_matches('/'));
    p.display().to_string()
}

/// Read an entry's container config from its image (with the caller's
/// privileges), parse it in a confined child, and validate the result here
/// (the child's word is not trusted, see `confined`).
/// A parse of the same bytes before, kept in `cache`, stands in for the
/// child (see `parsed`).
pub fn load_container(
    sandbox: &Sandbox,
    entry: &ProcessEntry,
    cache: &super::parsed::Cache,
) -> Result<(String, ContainerConfig), Problems> {
    let (shown, bytes) = read_container(sandbox, entry)?;
    let mut cfg = cache.parse(&bytes, || {
        let mut parser =
            Parser::start().map_err(|e| Problems::from(ConfigError::new(&shown, e)))?;
        parser.parse(&shown, &bytes)
    })?;
    with_secret_environ_file(sandbox, entry, &mut cfg)?;
    validate::container(&shown, &cfg, sandbox, entry).into_result((shown, cfg))
}

/// Read the file the config's `secret-environ-file` names (if any) from
/// the entry's image and have it parsed, confined, into `cfg`.
pub fn with_secret_environ_file(
    sandbox: &Sandbox,
    entry: &ProcessEntry,
    cfg: &mut ContainerConfig,
) -> Result<(), Problems> {
    if cfg.secret_environ_file.is_none() {
        return Ok(());
    }
    let root = image::open_image(&sandbox.image_dir, &entry.image)
        .map_err(|e| entry.err("image", e.to_string()))?;
    secret_environ_file(&root, &sandbox.image_dir.join(&entry.image), cfg)
}

/// `with_secret_environ_file` for the image `root` (shown as `image`).
pub fn secret_environ_file(
    root: &std::os::fd::OwnedFd,
    image: &std::path::Path,
    cfg: &mut ContainerConfig,
) -> Result<(), Problems> {
    let Some(path) = &cfg.secret_environ_file else {
        return Ok(());
    };
    let mut shown = image.to_path_buf();
    shown.push(path.trim_start_matches('/'));
    let shown = shown.display().to_string();
    let bytes = image::read_config(root, path)
        .map_err(|e| ConfigError::new(&shown, format!("secret-environ-file: {e}")))?;
    let file = super::confined::parse_secret_environ_file(&shown, &bytes)?;
    cfg.secret_environ_from_file = Some(file);
    Ok(())
}

/// The bytes of an entry's container config (read, never interpreted),
/// with the name to show for the file.
pub fn read_container(
    sandbox: &Sandbox,
    entry: &ProcessEntry,
) -> Result<(String, Vec<u8>), Problems> {
    let shown = config_display(sandbox, entry);
    let root = image::open_image(&sandbox.image_dir, &entry.image)
        .map_err(|e| entry.err("image", e.to_string()))?;
    let bytes = image::read_config(&root, &entry.config)
        .map_err(|e| ConfigError::new(&shown, e.to_string()))?;
    Ok((shown, bytes))
}

/// The desired instances of one process entry, or why there are none.
#[derive(Debug, Clone)]
pub struct EntryResult {
    pub sandbox: String,
    pub process: String,
    pub result: Result<Vec<InstanceSpec>, Problems>,
}

/// Resolve every supervised (daemon) entry into its instances; with
/// `commands`, resolve command entries too (one instance each, for checks).
pub fn resolve_entries(
    configs: &Configs,
    loader: &mut dyn ContainerLoader,
    commands: bool,
) -> Vec<EntryResult> {
    let mut out = Vec::new();
    for (sname, sc) in &configs.sandboxes {
        for (pname, entry) in &sc.processes.entries {
            if !entry.kind.is_daemon() && !commands {
                continue;
            }
            let result = resolve_entry(&configs.master, &sc.sandbox, entry, loader);
            out.push(EntryResult {
                sandbox: sname.clone(),
                process: pname.clone(),
                result,
            });
        }
    }
    out
}

/// One entry: its instances (a command resolves as one command instance).
pub fn resolve_entry(
    master: &Master,
    sandbox: &Sandbox,
    entry: &ProcessEntry,
    loader: &mut dyn ContainerLoader,
) -> Result<Vec<InstanceSpec>, Problems> {
    let mut out = Vec::new();
    resolve_entry_each(master, sandbox, entry, loader, &mut |s| out.push(s))?;
    Ok(out)
}

/// Like `resolve_entry`, handing each instance to `each` as it is resolved
/// (the tree keeps only the specs that changed, so a reload of 1000
/// unchanged instances never holds a second 1000). On an error, `each` may
/// have seen some of the entry's instances already.
pub fn resolve_entry_each(
    master: &Master,
    sandbox: &Sandbox,
    entry: &ProcessEntry,
    loader: &mut dyn ContainerLoader,
    each: &mut dyn FnMut(InstanceSpec),
) -> Result<(), Problems> {
    let problems = validate::entry(&entry.file, sandbox, entry);
    if !problems.is_empty() {
        return Err(problems);
    }
    let (file, cfg) = loader.load(sandbox, entry)?;
    let whiches: Vec<Which> = if entry.kind.is_daemon() {
        (0..entry.instances).map(Which::Daemon).collect()
    } else {
        vec![Which::Command(0)]
    };
    for w in whiches {
        each(InstanceSpec::resolve(
            master, sandbox, entry, &cfg, &file, w,
        )?);
    }
    Ok(())
}
