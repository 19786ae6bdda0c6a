//! Embeds a build id (git commit, or the build time when git is missing) so
//! `cairn --version` and `ps --json` tell which binary runs.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let id = match commit {
        Some(c) => c,
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("built-{secs}")
        }
    };
    let id = std::env::var("CAIRN_BUILD_ID").unwrap_or(id);
    println!("cargo:rustc-env=CAIRN_BUILD_ID={id}");
    println!("cargo:rerun-if-env-changed=CAIRN_BUILD_ID");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
