//! This host's side: its master.yaml and sandboxes (read with the cairn
//! library, exactly as the tree reads them), and applying a value with
//! the `cairn` binary's `switch --wait`, the same path an operator takes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::config::master::Master;
use cairn::config::sandbox::Sandbox;

use crate::files;
use crate::outcome::{self, Outcome};

/// What the agent installs when a sandbox's key is deleted: a process
/// config with no process, so the sandbox runs nothing.
pub const EMPTY: &[u8] = b"{}\n";

pub struct Host {
    pub master_path: PathBuf,
    pub master: Master,
    pub cairn: PathBuf,
    pub wait_timeout: Duration,
}

impl Host {
    pub fn load(
        master_path: &Path,
        cairn: PathBuf,
        wait_timeout: Duration,
    ) -> Result<Host, String> {
        let master = Master::load(master_path).map_err(|p| p.to_string())?;
        Ok(Host {
            master_path: master_path.to_path_buf(),
            master,
            cairn,
            wait_timeout,
        })
    }

    /// The process config file `sandbox` installs to, or why the host has
    /// no such sandbox (the agent never creates one: sandboxes are the
    /// operator's).
    pub fn process_config(&self, sandbox: &str) -> Result<PathBuf, String> {
        let path = self.master.sandboxes_dir.join(format!("{sandbox}.yaml"));
        if !path.is_file() {
            return Err(format!(
                "this host has no sandbox {sandbox:?} ({} is missing); the agent installs process configs only for the host's sandboxes",
                path.display()
            ));
        }
        Sandbox::load(&self.master, &path)
            .map(|s| s.config_file)
            .map_err(|p| format!("sandbox {sandbox:?}: {p}"))
    }

    /// Whether `sandbox`'s installed process config is exactly `value`
    /// (then applying it again changes nothing: skip the switch).
    pub fn installed_equals(&self, sandbox: &str, value: &[u8]) -> bool {
        self.process_config(sandbox)
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .is_some_and(|installed| installed == value)
    }

    /// Apply `value` as `sandbox`'s process config, as `cairn switch
    /// --wait` does (check, atomic install, reload, wait for the rollout).
    pub async fn apply(&self, sandbox: &str, value: &[u8]) -> Outcome {
        if let Err(why) = self.process_config(sandbox) {
            return Outcome::Refused(why);
        }
        if value.len() > crate::keys::MAX_VALUE {
            return Outcome::Refused(format!(
                "sandbox {sandbox:?}: the value is {} bytes, more than {} allowed",
                value.len(),
                crate::keys::MAX_VALUE
            ));
        }
        if self.installed_equals(sandbox, value) {
            return Outcome::Applied;
        }
        let dir = files::values_dir(&self.master.runtime_dir);
        if let Err(e) = files::ensure_dir(&dir, 0o700) {
            return Outcome::Error(e.to_string());
        }
        let file = dir.join(format!("{sandbox}.yaml"));
        if let Err(e) = files::write_atomic(&file, value, 0o600) {
            return Outcome::Error(e.to_string());
        }
        let run = tokio::process::Command::new(&self.cairn)
            .arg("switch")
            .arg("-c")
            .arg(&self.master_path)
            .arg("--wait")
            .arg("--timeout")
            .arg(format!("{}", self.wait_timeout.as_secs_f64()))
            .arg(sandbox)
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        let _ = std::fs::remove_file(&file);
        match run {
            Ok(out) => outcome::classify(
                out.status.code(),
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
            ),
            Err(e) => Outcome::Error(format!(
                "sandbox {sandbox:?}: cannot run {}: {e}",
                self.cairn.display()
            )),
        }
    }
}
