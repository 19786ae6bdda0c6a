//! The secret keys of a container config: their form (`cairn check
//! --container`), and their namespaces and key against the sandbox and
//! the entry (`cairn check`, the tree), all without the private key.

use std::path::Path;

use crate::config::error::Problems;
use crate::config::master::Master;
use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;
use crate::config::validate::parse_and_validate;

/// `the_secret` for namespace `myapp` (see `crypt::tests`).
const MYAPP: &str = "v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:FevSFB+JYlOY2v9t1Ey4Hc7k76OZtv+9vSsq0wEAc2MPl1CQPJ2XN3qeCaJfV3EPTRwNmtEBED4uCCipvfMlyQ==";
/// `p@ss word` for the namespace "".
const EMPTY: &str = "v2:i4+dWTpg:3dnEB2f5:IuPa74Iy:liJtd8GdQyyBhrw1BHk7HzpCY2eH8JHyGBjNeCyOiUU8W8rLJ86SB4cOI3lc5BCULka6LYkWZ40a3A==";

const SANDBOX: &str = "image-dir: /img\nallow-users: [1000]\nallow-groups: [0]\n";

fn master() -> Master {
    Master::parse(Path::new("/etc/c/master.yaml"), b"").expect("master")
}

const KEYED: &str = "secrets-private-key: /etc/cairn/keys/main.key\n";

fn check(sandbox_extra: &str, entry_extra: &str, container: &str) -> Result<(), String> {
    let s = Sandbox::parse(
        &master(),
        Path::new("/etc/c/sandboxes/sb.yaml"),
        format!("{SANDBOX}{sandbox_extra}").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let procs = Processes::parse(
        "/etc/c/processes/sb.yaml",
        format!("web:\n  image: web\n  config: /c.yaml\n{entry_extra}").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let e = procs.entries.values().next().expect("entry");
    let text = format!("executable: /x\nuser-id: 1000\n{container}");
    parse_and_validate("/img/web/c.yaml", text.as_bytes(), &s, e)
        .map(|_| ())
        .map_err(|p: Problems| p.to_string())
}

#[test]
fn lithos_secrets_pass_with_a_key_and_their_namespace() {
    let ns = "secrets-namespaces: [myapp]\n";
    check(
        &format!("{KEYED}{ns}"),
        "",
        &format!("secret-environ: {{A: '{MYAPP}'}}\n"),
    )
    .unwrap();
    // A sandbox without secrets-namespaces allows only "" (lithos).
    check(KEYED, "", &format!("secret-environ: {{A: '{EMPTY}'}}\n")).unwrap();
    // The entry's extra-secrets-namespaces adds to the sandbox's.
    check(
        KEYED,
        "  extra-secrets-namespaces: [myapp]\n",
        &format!("secret-environ: {{A: '{MYAPP}'}}\n"),
    )
    .unwrap();
    // A list passes when one of its values is for a namespace allowed.
    check(
        KEYED,
        "",
        &format!("secret-environ:\n  A: ['{MYAPP}', '{EMPTY}']\n"),
    )
    .unwrap();
    // Secret files: the same values, in a dir of their own.
    check(
        KEYED,
        "",
        &format!("secret-files: {{db.pass: '{EMPTY}'}}\nsecret-files-dir: /run/secrets\n"),
    )
    .unwrap();
}

#[test]
fn a_namespace_the_entry_may_not_read_is_refused_with_file_line_and_key() {
    let e = check(KEYED, "", &format!("secret-environ:\n  DB: '{MYAPP}'\n")).unwrap_err();
    assert!(
        e.contains("/img/web/c.yaml:4: secret-environ.DB: no value is encrypted for a namespace"),
        "{e}"
    );
    assert!(e.contains("KqWSX0BY") && e.contains("allowed: \"\""), "{e}");
    assert!(!e.contains("the_secret"), "{e}");
}

#[test]
fn a_malformed_value_is_refused_with_file_line_and_key() {
    let e = check(KEYED, "", "secret-environ:\n  DB: v2:abc\n").unwrap_err();
    assert!(
        e.contains("/img/web/c.yaml:4: secret-environ.DB: a v2 secret has 5 fields"),
        "{e}"
    );
    let e = check(KEYED, "", "secret-environ:\n  DB: [plain text]\n").unwrap_err();
    assert!(e.contains("not a lithos v2 secret"), "{e}");
    let e = check(KEYED, "", "secret-environ:\n  DB: []\n").unwrap_err();
    assert!(e.contains("empty list"), "{e}");
}

#[test]
fn secrets_need_a_key_and_files_need_a_dir() {
    let e = check("", "", &format!("secret-environ: {{A: '{EMPTY}'}}\n")).unwrap_err();
    assert!(e.contains("has no secrets-private-key"), "{e}");
    let e = check(KEYED, "", &format!("secret-files: {{a: '{EMPTY}'}}\n")).unwrap_err();
    assert!(e.contains("needs secret-files-dir"), "{e}");
    let e = check(KEYED, "", "secret-files-dir: /run/s\n").unwrap_err();
    assert!(e.contains("nothing to mount"), "{e}");
    for dir in ["/", "/proc/x", "/dev"] {
        let e = check(
            KEYED,
            "",
            &format!("secret-files: {{a: '{EMPTY}'}}\nsecret-files-dir: {dir}\n"),
        )
        .unwrap_err();
        assert!(e.contains("may not be mounted on"), "{e}");
    }
    let e = check(
        KEYED,
        "",
        &format!(
            "volumes: {{/run/s/x: !Tmpfs {{}}}}\nsecret-files: {{a: '{EMPTY}'}}\nsecret-files-dir: /run/s\n"
        ),
    )
    .unwrap_err();
    assert!(e.contains("volume /run/s/x would be mounted"), "{e}");
    let e = check(
        KEYED,
        "",
        &format!("secret-files: {{../a: '{EMPTY}'}}\nsecret-files-dir: /s\n"),
    )
    .unwrap_err();
    assert!(e.contains("is not a file name"), "{e}");
    let e = check(
        KEYED,
        "",
        &format!("secret-environ: {{CAIRN_NAME: '{EMPTY}'}}\n"),
    )
    .unwrap_err();
    assert!(e.contains("is set by cairn"), "{e}");
}

#[test]
fn the_secret_environ_file_parses_like_secret_environ() {
    let f = super::parse_environ_file(
        "/img/web/s.yaml",
        format!("A: '{EMPTY}'\nB:\n  - '{MYAPP}'\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(f.environ["A"], [EMPTY]);
    assert_eq!(f.lines["B"], 3);
    let e = super::parse_environ_file("/img/web/s.yaml", b"A: nope\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("/img/web/s.yaml:1: A: not a lithos v2 secret"),
        "{e}"
    );
}
