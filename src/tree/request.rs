//! What a command and the tree exchange through `<runtime-dir>/requests/`
//! (the tree's side is `tree::requests`): the request kinds and their
//! signals, a request file, an answer, which names are requests, and which
//! instances a restart target names. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::plan::Want;

/// The dir in the runtime dir.
pub const DIR: &str = "requests";
/// Its mode: only root may write a request, or read an answer.
pub const DIR_MODE: u32 = 0o700;
/// Appended to a request's name for its answer.
pub const REPLY: &str = ".reply";

/// What a request asks for; the first part of its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered after the reload its SIGHUP starts.
    Reload,
    /// Restart `Request::target`, one instance at a time.
    Restart,
    /// Answered by the new image once it supervises (or with the error
    /// when the exec failed).
    Upgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reload => "reload",
            Kind::Restart => "restart",
            Kind::Upgrade => "upgrade",
        }
    }

    pub fn signal(self) -> i32 {
        match self {
            Kind::Reload => libc::SIGHUP,
            Kind::Restart => libc::SIGUSR1,
            Kind::Upgrade => libc::SIGQUIT,
        }
    }
}

/// A request file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `restart`: `SANDBOX`, `SANDBOX/PROCESS` or `SANDBOX/PROCESS.N`.
    #[serde(default)]
    pub target: Option<String>,
}

/// An answer: `error` when the request was refused or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub error: Option<String>,
}

/// Whether `name` is a request of `kind`: `KIND.ID`, ID 1 to 64 ASCII
/// letters, digits, `-` or `_` (no dot: neither a reply nor a temp file).
pub fn is_request(name: &str, kind: Kind) -> bool {
    name.strip_prefix(kind.as_str())
        .and_then(|r| r.strip_prefix('.'))
        .is_some_and(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The wanted instances a restart `target` names: `SANDBOX` (all of its
/// instances), `SANDBOX/PROCESS` (all of that process) or
/// `SANDBOX/PROCESS.N` (that one). Empty: the target names nothing the
/// loaded config wants.
pub fn targets<'a>(target: &str, want: &'a BTreeMap<String, Want>) -> Vec<&'a String> {
    let (sandbox, rest) = match target.split_once('/') {
        Some((s, r)) => (s, Some(r)),
        None => (target, None),
    };
    want.iter()
        .filter(|(name, w)| {
            w.process.0 == sandbox
                && match rest {
                    None => true,
                    Some(r) => r == w.process.1 || name.as_str() == target,
                }
        })
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(names: &[(&str, &str, &str)]) -> BTreeMap<String, Want> {
        names
            .iter()
            .map(|(n, s, p)| {
                (
                    n.to_string(),
                    Want {
                        process: (s.to_string(), p.to_string()),
                        hash: "h".into(),
                        min_ready: std::time::Duration::ZERO,
                        generation: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_target_names_a_sandbox_a_process_or_one_instance() {
        let w = want(&[
            ("box/web.0", "box", "web"),
            ("box/web.1", "box", "web"),
            ("box/web2.0", "box", "web2"),
            ("other/web.0", "other", "web"),
        ]);
        let t = |s: &str| targets(s, &w).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(t("box"), ["box/web.0", "box/web.1", "box/web2.0"]);
        assert_eq!(t("box/web"), ["box/web.0", "box/web.1"]);
        assert_eq!(t("box/web.1"), ["box/web.1"]);
        assert_eq!(t("other"), ["other/web.0"]);
        for none in [
            "nope",
            "box/nope",
            "box/web.7",
            "bo",
            "box/",
            "",
            "/web",
            "box/we",
        ] {
            assert!(t(none).is_empty(), "{none}");
        }
    }

    #[test]
    fn only_well_formed_names_of_the_kind_are_requests() {
        assert!(is_request("restart.123-456", Kind::Restart));
        assert!(is_request("reload.a_B-9", Kind::Reload));
        assert!(!is_request("restart.123-456", Kind::Reload));
        assert!(!is_request("restart.123.reply", Kind::Restart));
        assert!(!is_request(".restart.1.tmp.5", Kind::Restart));
        assert!(!is_request("restart.", Kind::Restart));
        assert!(!is_request("restart", Kind::Restart));
        assert!(!is_request("restartx.1", Kind::Restart));
        assert!(!is_request("restart.a/b", Kind::Restart));
        assert!(!is_request(
            &format!("upgrade.{}", "a".repeat(65)),
            Kind::Upgrade
        ));
    }
}
