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
    build_mini_init();
}

/// Compile src/sys/mini_init/main.rs into a freestanding static binary
/// (no std, no libc) that cairn embeds and runs as pid 1 of supervised
/// containers. Only for x86_64 Linux; elsewhere an empty file tells cairn
/// to keep its own knot as pid 1.
fn build_mini_init() {
    let src = "src/sys/mini_init/main.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("cairn-init");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        let _ = std::fs::write(&out, b"");
        return;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition=2024",
            "--crate-name=cairn_init",
            "--crate-type=bin",
            "-Copt-level=s",
            "-Cpanic=abort",
            "-Cdebuginfo=0",
            "-Crelocation-model=static",
            "-Cstrip=symbols",
            "-Clink-arg=-nostartfiles",
            "-Clink-arg=-nostdlib",
            "-Clink-arg=-static",
            "-Clink-arg=-Wl,--build-id=none",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("building {src} failed: {other:?}"),
    }
}
