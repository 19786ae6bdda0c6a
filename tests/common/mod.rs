//! Shared helpers for integration tests: temp config sets, running the real
//! binary, and the CI rule (a test that cannot run fails under `CI=true`).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cairn_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

/// Run `cairn ARGS...` and capture its output.
pub fn cairn(args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run cairn")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Skip (or, under CI=true, fail) when `cond` is not met.
#[macro_export]
macro_rules! require {
    ($cond:expr, $why:expr) => {
        if !$cond {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("cannot run under CI: {}", $why);
            }
            eprintln!("skipped: {}", $why);
            return;
        }
    };
}

/// A temporary directory holding one config set.
pub struct ConfigSet {
    pub dir: tempfile::TempDir,
}

impl ConfigSet {
    pub fn new() -> ConfigSet {
        ConfigSet {
            dir: tempfile::Builder::new()
                .prefix("cairn-test.")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
    /// Write a file (creating parent dirs).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write");
        p
    }
    pub fn master(&self) -> String {
        self.s("master.yaml")
    }
}

/// Copy a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
