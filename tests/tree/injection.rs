//! Log and terminal injection through a running tree: container configs
//! whose executable path, `stdout-stderr-file` and variable names carry a
//! newline, a forged log record and escape sequences. The error messages
//! quoting them reach the tree's log (here its stderr, which the knots
//! share), the sandbox log and `cairn ps`; none may hold a line the
//! attacker wrote, or a raw control character. (`cairn check` and `ps` on
//! their own: tests/escaping.rs.)

use super::*;

/// A record as the tree logs it, and as the sandbox log has it.
const FORGED_TREE: &str = "1999-01-01T00:00:00Z INFO box/victim.0: started (knot pid 1, config 0)";
const FORGED_SANDBOX: &str = "1999-01-01T00:00:00Z box/victim.0: started (knot pid 1, config 0)";

/// The forged records after newlines, then an OSC (set the terminal's
/// title) and a CSI (clear the screen), as a YAML double-quoted string
/// body (`\n`, `\e`, `\a` are real bytes once parsed).
fn payload() -> String {
    format!("\\n{FORGED_TREE}\\n{FORGED_SANDBOX}\\e]0;pwned\\a\\e[2J")
}

/// Raw bytes a terminal or a log reader would act on: every C0 control but
/// the line's own `\n`, DEL, C1, the bidi controls and line separators.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                || matches!(c, '\u{2028}' | '\u{2029}')
        })
        .collect()
}

/// `text` (a log) has no raw control character and no line that an
/// attacker began: every record starts with its own time, and a forged
/// record shows only inside the record that quotes it.
fn assert_clean(what: &str, text: &str) {
    assert_eq!(raw_controls(text), Vec::<char>::new(), "{what}:\n{text}");
    // The real box/victim.0 runs too: its own "started" lines are genuine.
    let forged = "box/victim.0: started (knot pid 1, config 0)";
    for line in text.lines() {
        let after_time = line.split_once(' ').map_or("", |(_, rest)| rest);
        let after_level = after_time.split_once(' ').map_or("", |(_, rest)| rest);
        assert!(
            !line.starts_with("1999-")
                && !after_time.starts_with(forged)
                && !after_level.starts_with(forged),
            "{what}: a forged line:\n{line}\nin:\n{text}"
        );
    }
}

#[test]
fn forged_lines_and_escapes_from_configs_stay_inside_their_record() {
    let mut fx = fixture!();
    let p = payload();
    // The exec fails: the knot's error names the executable.
    fx.container(
        "exec",
        &format!("kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: \"/bin/nope{p}\"\n"),
    );
    // The stdout-stderr-file cannot be opened: the error names it.
    fx.container(
        "stdio",
        &sleeper(&format!("stdout-stderr-file: \"/nonexistent/out{p}\"\n")),
    );
    // An undeclared variable: a config error quoting its name.
    fx.container(
        "var",
        &format!(
            "kind: Daemon\nuser-id: {UID}\ngroup-id: {GID}\nexecutable: /bin/sleep\n\
             arguments: [\"@{{v{p}}}\"]\n"
        ),
    );
    fx.container("victim", &sleeper(""));
    fx.processes(&[("exec", 1), ("stdio", 1), ("var", 1), ("victim", 1)]);
    fx.start();
    let could_not_start = |ps: &Value, name: &str| {
        inst(ps, name).is_some_and(|i| i["last_exit"]["error"].is_string())
    };
    let ps = fx.wait_ps("exec.0 and stdio.0 failed, var.0 refused", |ps| {
        all_running(ps, &["box/victim.0"])
            && could_not_start(ps, "box/exec.0")
            && could_not_start(ps, "box/stdio.0")
            && state(ps, "box/var.0") == Some("failed")
    });
    // The attack reached the messages (raw in state.json, as JSON).
    for name in ["box/exec.0", "box/stdio.0"] {
        let err = inst(&ps, name).expect("listed")["last_exit"]["error"].to_string();
        assert!(
            err.contains("\\n1999-01-01T00:00:00Z INFO box/victim.0"),
            "{err}"
        );
        assert!(err.contains("\\u001b]0;pwned\\u0007"), "{err}");
    }
    let var_err = inst(&ps, "box/var.0").expect("listed")["error"].to_string();
    assert!(
        var_err.contains("\\n1999-01-01T00:00:00Z INFO"),
        "{var_err}"
    );

    let sandbox_log = fx.set.p("log/box.log");
    let text = wait_for(
        Duration::from_secs(5),
        "both failures in the sandbox log",
        || {
            let text = fs::read_to_string(&sandbox_log).ok()?;
            (text.contains("box/exec.0: could not start: cannot execute /bin/nope")
                && text
                    .contains("box/stdio.0: could not start: stdout-stderr-file /nonexistent/out"))
            .then_some(text)
        },
    );
    assert_clean("sandbox log", &text);
    // The tree's log, with what the knots printed.
    let log = fx.log();
    assert!(log.contains("config: "), "{log}");
    assert!(
        log.contains("cannot execute /bin/nope\\n1999-01-01T00:00:00Z INFO"),
        "{log}"
    );
    assert_clean("tree log", &log);
    assert_clean(
        "stdio log",
        &fs::read_to_string(fx.set.p("log/stdio/box.log")).unwrap_or_default(),
    );

    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(raw_controls(&text), Vec::<char>::new(), "ps:\n{text}");
    let ps = fx.ps();
    let errors = ps["config_errors"].as_array().expect("config_errors").len();
    // The tree line, the config errors, the header, one line per instance.
    assert!(
        text.lines().count() >= 2 + errors + insts(&ps).len(),
        "ps:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("1999-")),
        "ps: a forged line:\n{text}"
    );
}
