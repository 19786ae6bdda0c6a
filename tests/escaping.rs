//! Log and terminal injection, without containers: `cairn check` on hostile
//! container configs, and `cairn ps` on a state.json carrying hostile
//! text. What an operator's terminal gets must hold no raw control
//! character, escape sequence or bidi override, and each problem (each
//! instance) must be exactly one line. The same attack against a running
//! tree and its logs is `tree::injection` (tests/tree/injection.rs).

mod common;

use common::{ConfigSet, cairn, stderr, stdout};

/// A forged log line: what an attacker wants to appear as a record of its
/// own after a newline.
const FORGED: &str = "1999-01-01T00:00:00Z INFO box/victim.0: started (knot pid 1, config 0)";

/// Each file makes exactly one problem, and each carries text that a
/// terminal would act on. YAML double-quoted strings give real bytes:
/// `\e` is ESC, `\a` BEL, `\r` CR, `\N` NEL (C1); the bidi override
/// (U+202E) is written as raw UTF-8.
fn hostile_configs() -> Vec<(&'static str, String)> {
    let head = "executable: /bin/sh\nuser-id: 1000\ngroup-id: 1000\n";
    vec![
        // An unknown key: the key itself is quoted in the message.
        ("osc", format!("{head}\"bad\\nkey\\e]0;pwned\\a\": 1\n")),
        // Bidi override and CR in a key.
        ("bidi", format!("{head}\"\u{202e}yek\\r\": 1\n")),
        // C1 NEL and the Unicode line and paragraph separators (YAML's
        // `\N`, `\L`, `\P`): line breaks to some readers.
        ("c1", format!("{head}\"k\\N\\L\\P2J\": 1\n")),
        // An undeclared variable whose name forges a line and clears the
        // screen.
        (
            "var",
            format!("{head}arguments: [\"@{{evil\\n{FORGED}\\e[2J}}\"]\n"),
        ),
    ]
}

/// Raw bytes a terminal or a log reader would act on: every C0 control but
/// the line's own `\n`, DEL, C1 (as UTF-8), the bidi controls and the
/// line separators.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                || matches!(c, '\u{2028}' | '\u{2029}')
        })
        .collect()
}

fn set_with(configs: &[(&str, String)]) -> ConfigSet {
    let set = ConfigSet::new();
    set.write_master("");
    set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000]\nallow-groups: [1000]\n",
            set.s("images")
        ),
    );
    let mut procs = String::new();
    for (name, yaml) in configs {
        set.write(&format!("images/img/config/{name}.yaml"), yaml);
        procs.push_str(&format!(
            "{name}:\n  image: img\n  config: /config/{name}.yaml\n  instances: 1\n"
        ));
    }
    set.write("processes/box.yaml", procs);
    set
}

#[test]
fn check_shows_hostile_text_escaped_one_line_per_problem() {
    let configs = hostile_configs();
    let set = set_with(&configs);
    let out = cairn(&["check", "-c", &set.master()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(raw_controls(&err), Vec::<char>::new(), "raw in:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), configs.len(), "one line per problem:\n{err}");
    let prefix = format!("{}/", set.path().display());
    for line in &lines {
        assert!(
            line.starts_with(&prefix),
            "a line no problem began:\n{line}"
        );
    }
    // What was hidden is shown, visibly.
    for shown in [
        "\\nkey\\x1b]0;pwned\\x07",
        "\\u{202e}yek\\r",
        "k\\u{85}\\u{2028}\\u{2029}2J",
        "@{evil\\n1999-01-01T00:00:00Z INFO box/victim.0",
    ] {
        assert!(err.contains(shown), "{shown:?} not in:\n{err}");
    }
}

#[test]
fn check_container_shows_hostile_text_escaped_on_one_line() {
    let configs = hostile_configs();
    let set = set_with(&configs);
    for (name, _) in &configs {
        let out = cairn(&[
            "check",
            "--container",
            &set.s("images/img"),
            &format!("/config/{name}.yaml"),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(raw_controls(&err), Vec::<char>::new(), "{name}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{name}: one problem, one line:\n{err}"
        );
        let shown = set.s(&format!("images/img/config/{name}.yaml"));
        assert!(err.starts_with(&shown), "{name}: {err}");
    }
}

/// state.json is the tree's, but what it holds came from container
/// configs and knots: an error quoting an executable path, a config error
/// quoting a variable name. `ps` prints all of it escaped, one line per
/// instance; `ps --json` gives back the exact text (serde's escaping, not
/// ours on top).
#[test]
fn ps_text_shows_state_escaped_and_json_unchanged() {
    let set = ConfigSet::new();
    set.write_master("");
    let exec_error = format!("cannot execute /bin/nope\n{FORGED}\x1b]0;pwned\x07\n");
    let failed_error = "volumes./data\r\u{202e}\u{9b}2J: refused \\n".to_string();
    let config_error = format!("/img/config/var.yaml: arguments[0]: @{{evil\n{FORGED}\x1b[2J}}");
    let instance = |name: &str, state: &str| {
        serde_json::json!({
            "name": name, "sandbox": "box", "process": "x", "index": 0,
            "state": state, "pid": null, "restarts": 3,
            "since": "2026-01-01T00:00:00Z", "image": "img\x1b[2J",
            "config_hash": "0", "last_exit": null,
        })
    };
    let mut backoff = instance("box/x.0", "backoff");
    backoff["last_exit"] = serde_json::json!({
        "status": 127, "signal": null, "oom_killed": false, "failure": true,
        "at": "2026-01-01T00:00:00Z", "error": exec_error,
    });
    let mut failed = instance("box/y.0", "failed");
    failed["error"] = failed_error.clone().into();
    let forged_name = instance(&format!("box/z.0\n{FORGED}"), "running\x1b[2J");
    let state = serde_json::json!({
        "tree": {
            "pid": 1, "version": "1.0\x1b]0;pwned\x07", "started": "2026-01-01T00:00:00Z",
            "upgrades": 0, "reloads": 1, "config": "/etc/cairn/master.yaml",
        },
        "instances": [backoff, failed, forged_name],
        "config_errors": [config_error],
    });
    set.write("run/state.json", state.to_string());

    // No tree runs: ps shows this state, says the tree is not running, and
    // exits 1 (`ps_says_when_the_tree_is_dead`).
    let out = cairn(&["ps", "-c", &set.master()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
    assert_eq!(raw_controls(&text), Vec::<char>::new(), "raw in:\n{text}");
    // The tree line, one config error (too long for 80 columns: cut, and
    // shown whole below), the header, three instances, the two last
    // columns too long for 80 columns shown whole below their rows, and
    // the total (the forged instances are of one process).
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("1999")),
        "a forged line:\n{text}"
    );
    assert!(
        text.contains("cannot execute /bin/nope\\n1999-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(text.contains("\\u{202e}\\u{9b}2J: refused \\\\n"), "{text}");

    let out = cairn(&["ps", "--json", "-c", &set.master()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps --json");
    assert_eq!(
        ps["instances"][0]["last_exit"]["error"],
        exec_error.as_str()
    );
    assert_eq!(ps["instances"][1]["error"], failed_error.as_str());
    assert_eq!(ps["config_errors"][0], config_error.as_str());
}
