//! A process entry checked against its sandbox alone (`entry`,
//! `entry_warnings`), before any container config is read: what `cairn
//! check` reports for `processes/*.yaml`.

use std::path::Path;

use crate::config::process::Processes;
use crate::config::sandbox::Sandbox;

use super::tests::{SANDBOX, master};

/// `entry` and `entry_warnings` for one entry against a sandbox: the
/// problems and the warnings, as `cairn check` prints them.
fn entry_check(sandbox: &str, entry: &str) -> (Vec<String>, Vec<String>) {
    let s = Sandbox::parse(
        &master(),
        Path::new("/etc/c/sandboxes/sb.yaml"),
        sandbox.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let procs = Processes::parse("/etc/c/processes/sb.yaml", entry.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = procs.entries.values().next().unwrap();
    let problems = super::entry(&procs.file, &s, e)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let warnings = super::entry_warnings(&procs.file, &s, e)
        .iter()
        .map(|w| w.to_string())
        .collect();
    (problems, warnings)
}

const BRIDGED: &str = "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\n\
    bridged-network: {bridge: br0, network: 10.0.0.0/16}\n";

#[test]
fn entry_against_its_sandbox() {
    let none: Vec<String> = Vec::new();
    let only = |(p, w): (Vec<String>, Vec<String>), needle: &str| {
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.len(), 1, "{needle}: {p:?}");
        assert!(p[0].contains(needle), "{needle}: {p:?}");
        assert!(p[0].starts_with("/etc/c/processes/sb.yaml:"), "{p:?}");
    };
    let daemon = |extra: &str| format!("w:\n  image: web\n  config: /c\n{extra}");
    let command = |extra: &str| format!("w:\n  kind: Command\n  image: web\n  config: /c\n{extra}");

    assert_eq!(
        entry_check(SANDBOX, &daemon("")),
        (none.clone(), none.clone())
    );
    only(
        entry_check(SANDBOX, "w:\n  image: a/b\n  config: /c\n"),
        "w.image: image \"a/b\" has 2 path component(s); sandbox \"sb\" has image-dir-levels 1",
    );
    only(
        entry_check(SANDBOX, &daemon("  ip-addresses: [10.0.0.2]\n")),
        "w.ip-addresses: sandbox \"sb\" has no bridged-network",
    );

    // Bridged: one address per daemon instance, at least one for a command.
    for ok in [
        daemon("  instances: 2\n  ip-addresses: [10.0.0.2, 10.0.0.3]\n"),
        daemon("  instances: 0\n"),
        command("  ip-addresses: [10.0.0.2]\n"),
        command("  ip-addresses: [10.0.0.2, 10.0.0.3]\n"),
    ] {
        assert_eq!(
            entry_check(BRIDGED, &ok),
            (none.clone(), none.clone()),
            "{ok}"
        );
    }
    only(
        entry_check(BRIDGED, &command("")),
        "a Command in a bridged sandbox needs an ip-address",
    );
    only(
        entry_check(
            BRIDGED,
            &daemon("  instances: 2\n  ip-addresses: [10.0.0.2]\n"),
        ),
        "1 ip-addresses for 2 instances",
    );
    only(
        entry_check(
            BRIDGED,
            &daemon("  instances: 2\n  ip-addresses: [10.0.0.2, 10.0.0.2]\n"),
        ),
        "10.0.0.2 is given twice",
    );
}

/// An address outside the sandbox network is legal, with a warning.
#[test]
fn entry_warns_of_addresses_outside_the_network() {
    let (p, w) = entry_check(
        BRIDGED,
        "w:\n  image: web\n  config: /c\n  instances: 3\n  ip-addresses: [10.0.0.2, 10.1.0.1, 10.0.255.3]\n",
    );
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(
        w,
        [
            "/etc/c/processes/sb.yaml:2: w.ip-addresses: 10.1.0.1 is outside the sandbox network 10.0.0.0/16"
        ]
    );
}
