//! lithos's encrypted secrets end to end: `secret-environ` (and
//! `secret-environ-file`) decrypted by the knot into the workload's
//! environment, `secret-files` into a read-only tmpfs of 0400 files, the
//! plaintext nowhere else (state, `ps`, logs, the config log, the tree's
//! /proc); a namespace the entry may not read refuses the instance, a
//! wrong key or an unsafe key file fails each start naming the variable
//! or the file; `cairn check` finds a malformed value; `cairn crypt`
//! values run, and values of lithos's algorithm (libsodium) run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

/// Test keys (made by `scripts/lithos-secret.py key SEED DIR`; not
/// secrets). KEY: seed 00 01 .. 1f; OTHER: seed 1f 1e .. 00.
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUx
OQAAACADoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuAAAAIi4vfWQuL31kAAAAAtzc2gt
ZWQyNTUxOQAAACADoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuAAAAEAAAQIDBAUGBwgJ
CgsMDQ4PEBESExQVFhcYGRobHB0eHwOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4AAAA
AAECAwQF
-----END OPENSSH PRIVATE KEY-----
";
const KEY_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 test\n";
const OTHER: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUx
OQAAACBxJlH0ULoFtjiYuZ7197pFYy6OJSf39xXNZx7EAkzFHgAAAIh0E2BYdBNgWAAAAAtzc2gt
ZWQyNTUxOQAAACBxJlH0ULoFtjiYuZ7197pFYy6OJSf39xXNZx7EAkzFHgAAAEAfHh0cGxoZGBcW
FRQTEhEQDw4NDAsKCQgHBgUEAwIBAHEmUfRQugW2OJi5nvX3ukVjLo4lJ/f3Fc1nHsQCTMUeAAAA
AAECAwQF
-----END OPENSSH PRIVATE KEY-----
";

/// `the_secret` for namespace `myapp` and KEY, made by libsodium (PyNaCl)
/// the way lithos makes values (see src/crypt/tests.rs).
const LITHOS_MADE: &str = "v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:FevSFB+JYlOY2v9t1Ey4Hc7k76OZtv+9vSsq0wEAc2MPl1CQPJ2XN3qeCaJfV3EPTRwNmtEBED4uCCipvfMlyQ==";

/// Secrets distinctive enough to grep every file for.
const TOKEN: &str = "tok3n-plaintext-7f3a9e";
const FROM_FILE: &str = "fi1e-environ-plaintext-51d2";
const FILE_SECRET: &str = "file-secret-plaintext-c0ffee";

/// Write KEY (or `text`) as the sandbox's key with `mode`, and the sandbox
/// config naming it with `namespaces`.
fn keyed_sandbox(fx: &Fx, text: &str, mode: u32, namespaces: &str) -> PathBuf {
    let key = fx.set.write("keys/main.key", text);
    fs::set_permissions(&key, fs::Permissions::from_mode(mode)).expect("chmod key");
    fx.set.write("keys/main.key.pub", KEY_PUB);
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\nsecrets-private-key: {}\nsecrets-namespaces: [{namespaces}]\n",
            fx.set.s("images"),
            key.display()
        ),
    );
    key
}

/// `cairn crypt encrypt` of `secret` (on stdin) for KEY's public key.
fn crypt(fx: &Fx, namespace: &str, secret: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(cairn_bin())
        .args(["crypt", "encrypt", "-k"])
        .arg(fx.set.p("keys/main.key.pub"))
        .args(["-n", namespace])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn crypt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write secret");
    let out = child.wait_with_output().expect("cairn crypt");
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout(&out).trim().to_string();
    assert!(v.starts_with("v2:i4+dWTpg:"), "{v}");
    assert!(!v.contains(secret));
    v
}

/// Every regular file under `dir`, with its content.
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            files_under(&e.path(), out);
        } else if t.is_file()
            && let Ok(b) = fs::read(e.path())
        {
            out.push((e.path(), b));
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_reach_the_workload_and_nowhere_else() {
    let mut fx = fixture!();
    // The config log on (DEFAULT-LOG-DIR/config/).
    fx.master("");
    keyed_sandbox(&fx, KEY, 0o600, "myapp");
    fs::create_dir_all(fx.set.p("images/bb/secrets")).expect("mkdir");
    let token = crypt(&fx, "myapp", TOKEN);
    let from_file = crypt(&fx, "myapp", FROM_FILE);
    let file_secret = crypt(&fx, "myapp", FILE_SECRET);
    // For a namespace the entry may not read: skipped for the next value.
    let decoy = crypt(&fx, "otherapp", "decoy");
    fx.set.write(
        "images/bb/config/secrets.yaml",
        format!("FROM_FILE: '{from_file}'\n"),
    );
    fx.container(
        "web",
        &sleeper(&format!(
            "environ: {{PATH: /bin, TOKEN: overridden}}\n\
             secret-environ:\n  DB_PASSWORD: '{LITHOS_MADE}'\n  TOKEN: ['{decoy}', '{token}']\n\
             secret-environ-file: /config/secrets.yaml\n\
             secret-files: {{token: '{file_secret}'}}\nsecret-files-dir: /secrets\n"
        )),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web running", |ps| all_running(ps, &["box/web.0"]));
    let (knot, workload) = pids(&ps, "box/web.0");

    // The environment: lithos's value, cairn crypt's (the second of a
    // list, over `environ`), the one from secret-environ-file.
    let env = fs::read(format!("/proc/{workload}/environ")).expect("environ");
    let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
    for want in [
        "DB_PASSWORD=the_secret".to_string(),
        format!("TOKEN={TOKEN}"),
        format!("FROM_FILE={FROM_FILE}"),
    ] {
        assert!(vars.contains(&want.as_bytes()), "{want} not in {vars:?}");
    }
    assert!(!contains(&env, "overridden"));

    // The secret file: 0400, the workload's, on a ro,nosuid,nodev,noexec
    // tmpfs (noswap) of its own.
    let root = format!("/proc/{workload}/root");
    let f = Path::new(&root).join("secrets/token");
    assert_eq!(fs::read_to_string(&f).expect("secret file"), FILE_SECRET);
    let m = fs::symlink_metadata(&f).expect("stat");
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (UID, GID, 0o400),
        "{f:?}"
    );
    let d = fs::metadata(Path::new(&root).join("secrets")).expect("stat dir");
    assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (UID, GID, 0o500));
    let mountinfo = fs::read_to_string(format!("/proc/{workload}/mountinfo")).expect("mountinfo");
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/secrets"))
        .unwrap_or_else(|| panic!("no /secrets mount in {mountinfo}"));
    let opts: Vec<&str> = line
        .split(' ')
        .nth(5)
        .expect("options")
        .split(',')
        .collect();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{o} missing: {line}");
    }
    assert!(line.contains(" - tmpfs "), "{line}");
    assert!(line.contains("noswap"), "{line}");

    // Nowhere else: state.json and every file of the runtime dir, the
    // tree's log, the sandbox's stdio log, the config log, `ps --json`,
    // the tree's and pid 1's environ and cmdline.
    let ps_text = stdout(&cairn(&["ps", "--json", "-c", &fx.master_path()]));
    let mut files = Vec::new();
    files_under(&fx.set.p("run"), &mut files);
    files_under(&fx.set.p("log"), &mut files);
    files.push((fx.set.p("tree.log"), fx.log().into_bytes()));
    files.push(("ps --json".into(), ps_text.into_bytes()));
    for pid in [fx.tree_pid(), knot] {
        for f in ["environ", "cmdline"] {
            let p = PathBuf::from(format!("/proc/{pid}/{f}"));
            files.push((p.clone(), fs::read(&p).unwrap_or_default()));
        }
    }
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("state.json")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("/log/config/")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("/stdio/box.log")),
        "{names:?}"
    );
    // The config log has the values, encrypted.
    let config_log = files
        .iter()
        .find(|(p, _)| p.display().to_string().contains("/log/config/"))
        .expect("config log");
    assert!(
        contains(&config_log.1, &token[..40]),
        "no ciphertext in the config log"
    );
    for (path, content) in &files {
        for secret in ["the_secret", TOKEN, FROM_FILE, FILE_SECRET] {
            assert!(
                !contains(content, secret),
                "{secret} is in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_namespace_the_entry_may_not_read_refuses_the_instance() {
    let mut fx = fixture!();
    keyed_sandbox(&fx, KEY, 0o600, "myapp");
    let v = crypt(&fx, "otherapp", TOKEN);
    fx.container("web", &sleeper(&format!("secret-environ: {{DB: '{v}'}}\n")));
    fx.processes(&[("web", 1)]);
    fx.start();
    let ps = fx.wait_ps("web failed", |ps| state(ps, "box/web.0") == Some("failed"));
    let i = inst(&ps, "box/web.0").expect("instance");
    let error = i["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "secret-environ.DB: no value is encrypted for a namespace this entry may read"
        ),
        "{i}"
    );
    assert!(error.contains("allowed: \"myapp\""), "{i}");
    assert!(i["pid"].is_null(), "started: {i}");
    let log = fx.log();
    assert!(
        log.contains("secret-environ.DB: no value is encrypted for a namespace"),
        "{log}"
    );
    assert!(!log.contains(TOKEN));
}

#[test]
fn a_wrong_key_or_an_unsafe_key_file_fails_the_start_naming_it() {
    let mut fx = fixture!();
    // The sandbox's key is OTHER; the value was made for KEY.
    keyed_sandbox(&fx, OTHER, 0o600, "myapp");
    fx.container(
        "web",
        &sleeper(&format!(
            "secret-environ: {{DB_PASSWORD: '{LITHOS_MADE}'}}\n"
        )),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    let wanted = "secret-environ.DB_PASSWORD: cannot decrypt it: encrypted for another key \
                  (key hash i4+dWTpg; the sandbox's secrets-private-key has";
    let ps = fx.wait_ps("web failing", |ps| {
        inst(ps, "box/web.0")
            .and_then(|i| i["last_exit"]["error"].as_str().or(i["error"].as_str()))
            .is_some_and(|e| e.contains(wanted))
            || fx.log().contains(wanted)
    });
    assert!(inst(&ps, "box/web.0").is_some());
    assert!(fx.log().contains(wanted), "{}", fx.log());
    fx.stop_tree(libc::SIGTERM);

    // The right key, readable by others: refused, naming the file.
    let key = keyed_sandbox(&fx, KEY, 0o644, "myapp");
    fx.start();
    let wanted = format!(
        "secrets-private-key {}: mode 0644 lets others than root read or change it",
        key.display()
    );
    fx.wait_ps("the key file refused", |_| fx.log().contains(&wanted));
    fx.stop_tree(libc::SIGTERM);

    // A missing key file.
    fs::remove_file(&key).expect("rm key");
    fx.start();
    let wanted = format!("secrets-private-key {}: No such file", key.display());
    fx.wait_ps("the missing key named", |_| fx.log().contains(&wanted));
}

#[test]
fn cairn_check_finds_a_malformed_value_and_a_namespace_not_allowed() {
    let fx = fixture!();
    keyed_sandbox(&fx, KEY, 0o600, "myapp");
    let path = fx.container(
        "web",
        &sleeper(&format!(
            "secret-environ:\n  GOOD: '{LITHOS_MADE}'\n  BAD: v2:abc:def\n"
        )),
    );
    fx.processes(&[("web", 1)]);
    let out = cairn(&["check", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:9: secret-environ.BAD: a v2 secret has 5 fields",
            path.display()
        )),
        "{err}"
    );
    // The same without a sandbox.
    let out = cairn(&[
        "check",
        "--container",
        &fx.set.s("images/bb"),
        "/config/web.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("secret-environ.BAD"),
        "{}",
        stderr(&out)
    );
    // A namespace the entry may not read, without the private key.
    let v = crypt(&fx, "otherapp", TOKEN);
    fx.container("web", &sleeper(&format!("secret-environ: {{DB: '{v}'}}\n")));
    let out = cairn(&["check", "-c", &fx.master_path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("secret-environ.DB: no value is encrypted for a namespace"),
        "{}",
        stderr(&out)
    );
    // extra-secrets-namespaces lets the entry read it.
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: bb\n  config: /config/web.yaml\n  extra-secrets-namespaces: [otherapp]\n",
    );
    let out = cairn(&["check", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// cairn's values open with libsodium as lithos opens them, and values
/// libsodium makes as lithos does open with `cairn crypt decrypt`
/// (Debian's python3-nacl and python3-cryptography run
/// scripts/lithos-secret.py).
#[test]
fn cairn_crypt_and_lithos_s_algorithm_agree() {
    let py = Command::new("/usr/bin/python3")
        .args(["-c", "import nacl, cryptography"])
        .output();
    require!(
        py.is_ok_and(|o| o.status.success()),
        "needs Debian's python3-nacl and python3-cryptography"
    );
    let set = ConfigSet::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lithos-secret.py");
    let dir = set.s("");
    let ok = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["key", &"2a".repeat(32), &dir])
        .status()
        .expect("key");
    assert!(ok.success());
    let (key, public) = (set.p("key"), set.p("key.pub"));
    let run = |cmd: &mut Command, input: &str| {
        use std::io::Write;
        let mut c = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    for (ns, secret) in [("", "x"), ("team.a-b_1", "with: colons and spaces")] {
        let v = run(
            Command::new(cairn_bin())
                .args(["crypt", "encrypt", "-n", ns, "-k"])
                .arg(&public),
            secret,
        );
        let plain = run(
            Command::new("/usr/bin/python3")
                .arg(&script)
                .arg("decrypt")
                .arg(&key),
            &v,
        );
        assert_eq!(plain, format!("{ns}:{secret}"));
        let v = run(
            Command::new("/usr/bin/python3")
                .arg(&script)
                .args(["encrypt"])
                .arg(&public)
                .arg(ns),
            secret,
        );
        let plain = run(
            Command::new(cairn_bin())
                .args(["crypt", "decrypt", "-i"])
                .arg(&key),
            &v,
        );
        assert_eq!(plain, secret);
        let ok = cairn(&[
            "crypt",
            "check-key",
            "-k",
            &public.display().to_string(),
            "-d",
            v.trim(),
        ]);
        assert!(ok.status.success(), "{}", stderr(&ok));
    }
}

/// `cairn exec` does not decrypt: its command gets neither a decrypted
/// `secret-environ` value nor the plain `environ` value a secret replaces
/// in the workload's environment; it sees the secret files as the
/// workload does (0400, its uid).
#[test]
fn cairn_exec_gets_no_secret_environ_and_sees_the_secret_files() {
    let mut fx = fixture!();
    keyed_sandbox(&fx, KEY, 0o600, "myapp");
    fs::create_dir_all(fx.set.p("images/bb/secrets")).expect("mkdir");
    let token = crypt(&fx, "myapp", TOKEN);
    let file_secret = crypt(&fx, "myapp", FILE_SECRET);
    fx.container(
        "web",
        &sleeper(&format!(
            "environ: {{PATH: /bin, TOKEN: overridden, PLAIN: yes}}\n\
             secret-environ:\n  TOKEN: '{token}'\n\
             secret-files: {{token: '{file_secret}'}}\nsecret-files-dir: /secrets\n"
        )),
    );
    fx.processes(&[("web", 1)]);
    fx.start();
    fx.wait_ps("web running", |ps| all_running(ps, &["box/web.0"]));
    let out = cairn(&[
        "exec",
        "-c",
        &fx.master_path(),
        "box/web.0",
        "sh",
        "-c",
        "tr '\\0' '\\n' < /proc/$$/environ; cat /secrets/token",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("PLAIN=yes"), "{text}");
    assert!(!text.contains("TOKEN="), "{text}");
    assert!(!text.contains("overridden"), "{text}");
    assert!(text.contains(FILE_SECRET), "{text}");
}
