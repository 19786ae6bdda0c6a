//! What one change to one sandbox came to, from `cairn switch --wait`'s
//! exit status and output (docs/commands.md). Pure.

use serde_json::{Value, json};

/// The result of applying one sandbox's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Installed, and the rollout finished: every instance runs it, ready.
    Applied,
    /// Not installed: the check's problems (nothing running changed).
    Refused(String),
    /// Installed, but the rollout stopped or an instance failed (the
    /// reasons `--wait` printed); the tree keeps what it can run.
    RolloutStopped(String),
    /// Installed, still under way when the wait's timeout passed.
    TimedOut(String),
    /// The switch could not be run or said something unexpected.
    Error(String),
}

impl Outcome {
    /// The word in the status and the metrics' `result` label.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Refused(_) => "refused",
            Outcome::RolloutStopped(_) => "rollout-stopped",
            Outcome::TimedOut(_) => "timed-out",
            Outcome::Error(_) => "error",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Applied => None,
            Outcome::Refused(m)
            | Outcome::RolloutStopped(m)
            | Outcome::TimedOut(m)
            | Outcome::Error(m) => Some(m),
        }
    }

    /// Every word, for metrics written as 0 rather than missing.
    pub const WORDS: [&'static str; 5] = [
        "applied",
        "refused",
        "rollout-stopped",
        "timed-out",
        "error",
    ];

    pub fn to_json(&self, revision: i64) -> Value {
        json!({"result": self.word(), "message": self.message(), "revision": revision})
    }
}

/// Classify a finished `cairn switch --wait`: `code` its exit status
/// (`None`: killed by a signal), `stdout` and `stderr` its output.
pub fn classify(code: Option<i32>, stdout: &str, stderr: &str) -> Outcome {
    let err = stderr.trim().to_string();
    // `switch` prints "installed PATH" once the file is in place; without
    // it nothing was installed.
    let installed = stdout.lines().any(|l| l.starts_with("installed "));
    match code {
        Some(0) => Outcome::Applied,
        Some(1) if !installed => Outcome::Refused(err),
        Some(1) => Outcome::RolloutStopped(err),
        Some(124) => Outcome::TimedOut(err),
        Some(c) => Outcome::Error(format!("cairn switch exited {c}: {err}")),
        None => Outcome::Error(format!("cairn switch was killed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_exit_reads_as_documented() {
        assert_eq!(
            classify(Some(0), "installed /x\nswitch of box done: 2 instances", ""),
            Outcome::Applied
        );
        let refused = classify(
            Some(1),
            "",
            "/tmp/v.yaml:1: app: unknown key\ncairn switch: /tmp/v.yaml was not installed\n",
        );
        assert_eq!(refused.word(), "refused");
        assert!(refused.message().unwrap_or("").contains("unknown key"));
        let stopped = classify(
            Some(1),
            "installed /x\n",
            "box/app: rollout stopped: box/app.0 exited 3\n",
        );
        assert_eq!(stopped.word(), "rollout-stopped");
        assert_eq!(
            stopped.message(),
            Some("box/app: rollout stopped: box/app.0 exited 3")
        );
        assert_eq!(
            classify(Some(124), "installed /x\n", "timed out").word(),
            "timed-out"
        );
        assert_eq!(classify(Some(2), "", "usage").word(), "error");
        assert_eq!(classify(None, "", "").word(), "error");
    }
}
