//! What `cairn ps` prints: the `--json` contract (every field and its
//! type), the text form, and the series in metrics.prom.

use super::*;

fn assert_type(v: &Value, key: &str, kinds: &[&str]) {
    let got = match &v[key] {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // An integral float prints as an int; an int is a fine number too.
    let ok = kinds.contains(&got) || (got == "int" && kinds.contains(&"float"));
    assert!(
        v.as_object().is_some_and(|o| o.contains_key(key)) && ok,
        "{key}: {got}, want one of {kinds:?} in {v}"
    );
}

#[test]
fn ps_json_matches_the_contract() {
    let mut fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.container("crash", &sh("exit 2", "restart-timeout: 30\n"));
    fx.container("broken", "executable: [\n");
    fx.processes(&[("web", 1), ("crash", 1), ("broken", 1)]);
    fx.start();
    let ps = fx.wait_ps("one of each state", |ps| {
        all_running(ps, &["box/web.0"])
            && state(ps, "box/crash.0") == Some("backoff")
            && state(ps, "box/broken.0") == Some("failed")
    });
    let top: BTreeSet<&str> = ps
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        BTreeSet::from([
            "tree",
            "instances",
            "config_errors",
            "rollouts",
            "config_problems"
        ])
    );
    // No config changed: no rollout (tests/tree/rollouts.rs checks them).
    assert_eq!(ps["rollouts"], serde_json::json!([]));
    let tree = &ps["tree"];
    assert_type(tree, "pid", &["int"]);
    assert_eq!(tree["pid"], fx.tree_pid());
    assert_type(tree, "version", &["string"]);
    assert!(
        tree["version"]
            .as_str()
            .is_some_and(|v| v.starts_with(env!("CARGO_PKG_VERSION")))
    );
    assert_type(tree, "started", &["string"]);
    epoch(tree["started"].as_str().expect("string"));
    assert_type(tree, "upgrades", &["int"]);
    assert_type(tree, "reloads", &["int"]);
    // The first load counts as one.
    assert_eq!(
        (&tree["upgrades"], &tree["reloads"]),
        (&0.into(), &1.into())
    );
    assert_type(tree, "config", &["string"]);
    assert_eq!(tree["config"], fx.master_path().as_str());
    if tree
        .as_object()
        .is_some_and(|o| o.contains_key("last_upgrade_ms"))
    {
        assert_type(tree, "last_upgrade_ms", &["float", "null"]);
    }
    assert!(
        ps["config_errors"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
    );
    // The same problems, each with its sandbox (`broken` is box's).
    let problems = ps["config_problems"].as_array().expect("config_problems");
    assert_eq!(
        problems.len(),
        ps["config_errors"].as_array().map_or(0, Vec::len),
        "{ps}"
    );
    for (p, e) in problems
        .iter()
        .zip(ps["config_errors"].as_array().expect("array"))
    {
        assert_eq!(p["sandbox"], "box", "{p}");
        assert_eq!(&p["error"], e, "{p}");
    }
    assert!(ps["rollouts"].is_array());
    assert_eq!(insts(&ps).len(), 3);
    let states = ["starting", "running", "stopping", "backoff", "failed"];
    for i in insts(&ps) {
        for k in [
            "name",
            "sandbox",
            "process",
            "state",
            "since",
            "image",
            "config_hash",
        ] {
            assert_type(i, k, &["string"]);
        }
        for k in ["index", "restarts"] {
            assert_type(i, k, &["int"]);
        }
        for k in ["pid", "workload_pid", "memory_bytes"] {
            assert_type(i, k, &["int", "null"]);
        }
        assert_type(i, "cpu_seconds", &["float", "null"]);
        for k in ["next_start", "error", "cgroup", "ready_since", "health"] {
            assert_type(i, k, &["string", "null"]);
        }
        assert_type(i, "last_exit", &["object", "null"]);
        assert!(states.contains(&i["state"].as_str().expect("string")));
        epoch(i["since"].as_str().expect("string"));
        let name = format!(
            "{}/{}.{}",
            i["sandbox"].as_str().expect("string"),
            i["process"].as_str().expect("string"),
            i["index"]
        );
        assert_eq!(i["name"], name.as_str());
    }
    let web = inst(&ps, "box/web.0").expect("listed");
    for k in ["pid", "workload_pid", "memory_bytes"] {
        assert_type(web, k, &["int"]);
    }
    assert_type(web, "cpu_seconds", &["float"]);
    assert_eq!(web["cgroup"], "box:web.0");
    assert!(web["last_exit"].is_null() && web["next_start"].is_null());
    // Running: ready since it runs (it has no `ready` probe); no health
    // check, so no health.
    assert_type(web, "ready_since", &["string"]);
    epoch(web["ready_since"].as_str().expect("string"));
    assert!(web["health"].is_null());
    assert!(inst(&ps, "box/crash.0").expect("listed")["ready_since"].is_null());
    let crash = inst(&ps, "box/crash.0").expect("listed");
    assert_type(crash, "next_start", &["string"]);
    epoch(crash["next_start"].as_str().expect("string"));
    let last = &crash["last_exit"];
    assert_type(last, "status", &["int"]);
    assert_eq!(last["status"], 2);
    assert_type(last, "signal", &["int", "null"]);
    assert_type(last, "oom_killed", &["bool"]);
    assert_type(last, "failure", &["bool"]);
    assert_type(last, "at", &["string"]);
    epoch(last["at"].as_str().expect("string"));
    assert_type(last, "error", &["string", "null"]);
    let broken = inst(&ps, "box/broken.0").expect("listed");
    assert_type(broken, "error", &["string"]);
    assert!(broken["pid"].is_null());
    // The text form: a header line, a column header, a row per instance.
    let out = cairn(&["ps", "-c", &fx.master_path()]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("tree pid {} version ", fx.tree_pid())),
        "{text}"
    );
    assert!(text.contains("config error: "), "{text}");
    let header = lines
        .iter()
        .find(|l| l.starts_with("INSTANCE"))
        .unwrap_or_else(|| panic!("{text}"));
    for col in ["STATE", "PID", "RST", "AGE", "CPU(s)", "MiB", "LAST"] {
        assert!(header.contains(col), "{header}");
    }
    // 80 columns, and a summary of the states.
    // (A cut last column is shown whole on an indented line of its own.)
    for l in lines
        .iter()
        .skip_while(|l| !l.starts_with("INSTANCE"))
        .filter(|l| !l.starts_with("  "))
        .take(4)
    {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(
        text.contains("total: 1 running, 1 backoff, 1 failed\n"),
        "{text}"
    );
    for (name, st) in [
        ("box/web.0", "running"),
        ("box/crash.0", "backoff"),
        ("box/broken.0", "failed"),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(name) && l.contains(st)),
            "{name} {st}: {text}"
        );
    }
    // metrics.prom: every series, with HELP and TYPE.
    let metrics = fs::read_to_string(fx.set.p("run/metrics.prom")).expect("metrics");
    for (name, kind) in [
        ("cairn_started_total", "counter"),
        ("cairn_deaths_total", "counter"),
        ("cairn_failures_total", "counter"),
        ("cairn_running", "gauge"),
        ("cairn_unknown_children_total", "counter"),
    ] {
        assert!(metrics.contains(&format!("# HELP {name} ")), "{metrics}");
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}\n")),
            "{metrics}"
        );
    }
}
