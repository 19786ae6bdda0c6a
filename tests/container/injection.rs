//! Log and terminal injection through `cairn cmd`: an error quoting the
//! container config (the executable path, a variable name) reaches the
//! caller's terminal escaped, one line per message.

use super::*;

/// The forged line and the escape sequences, as a YAML double-quoted body.
const PAYLOAD: &str = "\\n1999-01-01T00:00:00Z box/victim.0: started\\e]0;pwned\\a\\e[2J";

/// Raw characters a terminal acts on: C0 but `\n`, DEL, C1, bidi controls.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

#[test]
fn cmd_shows_errors_quoting_the_config_escaped() {
    let mut fx = fixture!();
    // The knot's exec error names the executable.
    fx.command(
        "exec",
        &probe("").replace(
            "executable: /bin/sh",
            &format!("executable: \"/bin/nope{PAYLOAD}\""),
        ),
    );
    let out = fx.run("exec", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("/bin/nope\\n1999-"), "{err}");
    assert_eq!(raw_controls(&err), Vec::<char>::new(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cairn: box/cmd.exec."), "{err}");
    // A config error names the undeclared variable.
    fx.command(
        "var",
        &probe("").replace(
            "arguments: [-c]",
            &format!("arguments: [\"@{{v{PAYLOAD}}}\"]"),
        ),
    );
    let out = fx.run("var", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("@{v\\n1999-"), "{err}");
    assert_eq!(raw_controls(&err), Vec::<char>::new(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
