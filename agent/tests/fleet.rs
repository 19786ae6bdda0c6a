//! cairn-agent end to end: a real 3-member etcd cluster on loopback, three
//! cairn trees (each its own master, runtime dir, cgroup name and busybox
//! image) and their agents, driven through etcd as a scheduler would.
//!
//! Needs root, Debian's busybox-static and etcd-server/etcd-client; skips
//! otherwise (fails under `CI=true`). Run it through the workspace (`cargo
//! test --workspace`), which builds the `cairn` binary it drives.

#[path = "../../tests/common/mod.rs"]
mod common;
mod fleet {
    pub mod harness;
}

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{cairn_bin, container_prereqs};
use fleet::harness::{Etcd, Host, app, wait_for};

fn status(etcd: &Etcd, host: &str) -> Option<Value> {
    etcd.get(&format!("/cairn/v1/hosts/{host}/status"))
        .and_then(|s| serde_json::from_str(&s).ok())
}

fn key(host: &str, sandbox: &str) -> String {
    format!("/cairn/v1/hosts/{host}/processes/{sandbox}")
}

/// Why this test cannot run here, if it cannot.
fn prereqs() -> Result<std::path::PathBuf, String> {
    let busybox = container_prereqs()?;
    for tool in ["etcd", "etcdctl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "no {tool} (apt-get install etcd-server etcd-client)"
            ));
        }
    }
    let parser = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !parser {
        return Err("no Prometheus parser (apt-get install python3-prometheus-client)".into());
    }
    // The cairn binary is the workspace's: refuse one older than its sources.
    let bin = cairn_bin();
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}; run cargo test --workspace", bin.display()))?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    if newest(&src).is_some_and(|t| t > built) {
        return Err(format!(
            "{} is older than the cairn sources; run cargo test --workspace (or cargo build -p cairn)",
            bin.display()
        ));
    }
    Ok(busybox)
}

fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut best = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let t = if e.file_type().ok()?.is_dir() {
            newest(&e.path())
        } else {
            e.metadata().ok()?.modified().ok()
        };
        best = best.max(t);
    }
    best
}

/// The whole story, in order, on one cluster and three hosts (starting
/// them is the expensive part): each step says what it proves.
#[test]
fn a_fleet_of_three_trees_driven_through_etcd() {
    let ready = prereqs();
    require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
    let busybox = ready.expect("checked");
    let mut etcd = Etcd::start();
    let mut hosts: Vec<Host> = ["h0", "h1", "h2"]
        .iter()
        .map(|n| Host::new(n, &busybox))
        .collect();
    for h in hosts.iter_mut() {
        h.start_tree();
        h.start_agent(&etcd);
    }
    let all_logs = |hosts: &[Host], etcd: &Etcd| {
        let mut s: Vec<String> = hosts.iter().map(Host::logs).collect();
        s.push(etcd.logs());
        s.join("\n")
    };
    for h in &hosts {
        wait_for(
            &format!("{}'s status", h.name),
            || status(&etcd, &h.name),
            || h.logs(),
        );
    }

    // 1. A put makes instances run on the right hosts, and only there.
    etcd.put(&key("h0", "box"), &app(2, ""));
    etcd.put(&key("h1", "box"), &app(1, ""));
    wait_for(
        "2 on h0, 1 on h1",
        || (hosts[0].running("box").len() == 2 && hosts[1].running("box").len() == 1).then_some(()),
        || all_logs(&hosts, &etcd),
    );
    assert!(hosts[2].running("box").is_empty());
    let st = wait_for(
        "h0's status to show its instances ready",
        || {
            status(&etcd, "h0").filter(|s| {
                s["sandboxes"]["box"]["result"] == "applied"
                    && s["instances"].as_array().is_some_and(|a| {
                        a.len() == 2
                            && a.iter()
                                .all(|i| i["state"] == "running" && i["ready"] == true)
                    })
            })
        },
        || all_logs(&hosts, &etcd),
    );
    assert!(st["revision"].as_i64().unwrap_or(0) > 0, "{st}");
    assert_eq!(st["instances"][0]["restarts"], 0, "{st}");
    let h0_pids = hosts[0].running("box");
    let h1_pids = hosts[1].running("box");

    // 2. A refused config is reported with the check's message and
    // changes nothing; so is a sandbox the host does not have.
    etcd.put(&key("h1", "box"), &app(3, "  bogus-key: 1\n"));
    etcd.put(&key("h2", "nope"), &app(1, ""));
    let st = wait_for(
        "h1's refusal in its status",
        || status(&etcd, "h1").filter(|s| s["sandboxes"]["box"]["result"] == "refused"),
        || all_logs(&hosts, &etcd),
    );
    assert!(
        st["sandboxes"]["box"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("bogus-key"),
        "{st}"
    );
    let st2 = wait_for(
        "h2's refusal of a sandbox it does not have",
        || status(&etcd, "h2").filter(|s| s["sandboxes"]["nope"]["result"] == "refused"),
        || all_logs(&hosts, &etcd),
    );
    assert!(
        st2["sandboxes"]["nope"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no sandbox"),
        "{st2}"
    );
    assert!(!hosts[2].set.p("sandboxes/nope.yaml").exists());
    assert_eq!(
        hosts[1].running("box"),
        h1_pids,
        "a refused config changed nothing"
    );
    etcd.put(&key("h1", "box"), &app(1, ""));

    // 3. One etcd member stopped: the others go on, nothing restarts.
    etcd.stop_member(0);
    etcd.put(&key("h2", "box"), &app(1, ""));
    wait_for(
        "1 on h2",
        || (hosts[2].running("box").len() == 1).then_some(()),
        || all_logs(&hosts, &etcd),
    );
    let h2_pids = hosts[2].running("box");
    assert_eq!(hosts[0].running("box"), h0_pids);
    // The whole cluster stopped: every agent loses etcd, nothing restarts.
    etcd.stop_member(1);
    etcd.stop_member(2);
    for h in &hosts {
        wait_for(
            &format!("{} to see etcd gone", h.name),
            || (h.metric("cairn_agent_etcd_connected").as_deref() == Some("0")).then_some(()),
            || h.logs(),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    for (h, pids) in hosts.iter().zip([&h0_pids, &h1_pids, &h2_pids]) {
        assert_eq!(
            &h.running("box"),
            pids,
            "{}: nothing restarts without etcd",
            h.name
        );
    }
    for i in 0..3 {
        etcd.start_member(i);
    }
    etcd.wait_healthy();
    for h in &hosts {
        wait_for(
            &format!("{} to reconnect", h.name),
            || (h.metric("cairn_agent_etcd_connected").as_deref() == Some("1")).then_some(()),
            || all_logs(&hosts, &etcd),
        );
    }
    for (h, pids) in hosts.iter().zip([&h0_pids, &h1_pids, &h2_pids]) {
        assert_eq!(
            &h.running("box"),
            pids,
            "{}: a reconnect restarts nothing",
            h.name
        );
    }

    // 4. kill -9 of an agent: nothing restarts; restarted, it resumes from
    // its revision and applies what changed meanwhile.
    hosts[0].stop_agent(libc::SIGKILL);
    etcd.put(&key("h0", "box"), &app(3, ""));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hosts[0].running("box"), h0_pids, "no agent, no change");
    hosts[0].start_agent(&etcd);
    wait_for(
        "3 on h0",
        || (hosts[0].running("box").len() == 3).then_some(()),
        || all_logs(&hosts, &etcd),
    );
    let now = hosts[0].running("box");
    for p in &h0_pids {
        assert!(
            now.contains(p),
            "{p:?} kept its knot across the agent's kill -9: {now:?}"
        );
    }
    assert_eq!(
        hosts[0].metric("cairn_agent_full_resyncs_total").as_deref(),
        Some("0"),
        "resumed by revision"
    );
    assert!(
        std::fs::read_to_string(hosts[0].set.p("agent.log"))
            .unwrap_or_default()
            .contains("resuming from revision")
    );

    // 5. A compaction past an agent's revision forces a full read.
    hosts[1].stop_agent(libc::SIGKILL);
    etcd.put(&key("h1", "box"), &app(2, ""));
    etcd.put(&key("h1", "box"), &app(3, ""));
    let rev = etcd.revision();
    etcd.ok(&["compact", &rev.to_string()]);
    hosts[1].start_agent(&etcd);
    wait_for(
        "3 on h1",
        || (hosts[1].running("box").len() == 3).then_some(()),
        || all_logs(&hosts, &etcd),
    );
    wait_for(
        "h1's full read in its metrics",
        || {
            (hosts[1].metric("cairn_agent_full_resyncs_total").as_deref() == Some("1"))
                .then_some(())
        },
        || all_logs(&hosts, &etcd),
    );
    assert!(
        std::fs::read_to_string(hosts[1].set.p("agent.log"))
            .unwrap_or_default()
            .contains("was compacted")
    );

    // The agent's metrics, read by the official Prometheus parser
    // (Debian's python3-prometheus-client, as tests/tree/metrics.rs does
    // for the tree's).
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                  for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n    \
                  for s in f.samples:\n        print(s.name, s.value)\n";
    let parsed = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(hosts[1].set.p("run/cairn-agent.prom"))
        .output()
        .expect("/usr/bin/python3 (python3-prometheus-client)");
    assert!(
        parsed.status.success(),
        "the agent's metrics do not parse: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let parsed = String::from_utf8_lossy(&parsed.stdout).to_string();
    assert!(
        parsed
            .lines()
            .any(|l| l == "cairn_agent_full_resyncs_total 1.0"),
        "{parsed}"
    );

    // 5b. Deleting a host's key empties that sandbox (the agent installs
    // an empty process config): its instances stop, no other host's do;
    // a put brings them back.
    let h0_before = hosts[0].running("box");
    etcd.ok(&["del", &key("h1", "box")]);
    wait_for(
        "h1's box emptied",
        || hosts[1].running("box").is_empty().then_some(()),
        || all_logs(&hosts, &etcd),
    );
    assert_eq!(hosts[0].running("box"), h0_before, "h0 changed");
    etcd.put(&key("h1", "box"), &app(3, ""));
    wait_for(
        "3 on h1 again",
        || (hosts[1].running("box").len() == 3).then_some(()),
        || all_logs(&hosts, &etcd),
    );

    // 6. A second agent for a host refuses: on the same runtime dir (the
    // pid file lock), and from elsewhere (the host's key in etcd).
    let same = hosts[0].agent_cmd(&etcd, "h0").output().expect("run agent");
    assert_eq!(same.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&same.stderr).contains("locked"),
        "{same:?}"
    );
    let spare = Host::new("spare", &busybox);
    let other = spare.agent_cmd(&etcd, "h0").output().expect("run agent");
    assert_eq!(other.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("another cairn-agent serves it"),
        "{other:?}"
    );

    // 7. The reference scheduler spreads 4 instances over the live hosts;
    // when a host's agent stops its status disappears and the scheduler
    // moves its instances.
    let sched = |etcd: &Etcd| {
        let out =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fleet-scheduler"))
                .args([
                    "--endpoints",
                    &etcd.endpoints(),
                    "--sandbox",
                    "sched",
                    "--process",
                    "app",
                    "--image",
                    "bb",
                    "--config",
                    "/config/app.yaml",
                    "--instances",
                    "4",
                    "--once",
                ])
                .output()
                .expect("run scripts/fleet-scheduler");
        assert!(
            out.status.success(),
            "scheduler: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sched(&etcd);
    wait_for(
        "4 instances over 3 hosts",
        || {
            let n: Vec<usize> = hosts.iter().map(|h| h.running("sched").len()).collect();
            (n == [2, 1, 1]).then_some(())
        },
        || all_logs(&hosts, &etcd),
    );
    // kill -9: nothing revokes the lease; it expires (TTL 3 s).
    hosts[2].stop_agent(libc::SIGKILL);
    wait_for(
        "h2's status to disappear",
        || status(&etcd, "h2").is_none().then_some(()),
        || all_logs(&hosts, &etcd),
    );
    sched(&etcd);
    wait_for(
        "4 instances over h0 and h1",
        || {
            let n: Vec<usize> = hosts[..2]
                .iter()
                .map(|h| h.running("sched").len())
                .collect();
            (n == [2, 2]).then_some(())
        },
        || all_logs(&hosts, &etcd),
    );
    // A stopped agent changes nothing on its host: h2 still runs its own.
    assert_eq!(hosts[2].running("box"), h2_pids);

    // SIGTERM revokes the lease: the status goes at once, well before the
    // lease could have expired (keep-alives every TTL/3 leave at least 2 s).
    let t0 = std::time::Instant::now();
    hosts[1].stop_agent(libc::SIGTERM);
    wait_for(
        "h1's status to disappear",
        || status(&etcd, "h1").is_none().then_some(()),
        || all_logs(&hosts, &etcd),
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(1500),
        "h1's status went after {:?}: expired, not revoked",
        t0.elapsed()
    );
}

/// benches/fleet: time from a put to all instances running on 3 hosts
/// (median and p99 of 20 changes), the agents' memory (VmRSS, VmHWM) and
/// their wake-ups while idle (voluntary context switches over 10 s).
/// Prints the figures; `#[ignore]`d, run by `benches/fleet`.
#[test]
#[ignore]
fn bench_put_to_running_on_three_hosts() {
    let ready = prereqs();
    require!(ready.is_ok(), ready.clone().err().unwrap_or_default());
    let busybox = ready.expect("checked");
    let etcd = Etcd::start();
    let mut hosts: Vec<Host> = ["h0", "h1", "h2"]
        .iter()
        .map(|n| Host::new(n, &busybox))
        .collect();
    for h in hosts.iter_mut() {
        h.start_tree();
        h.start_agent(&etcd);
    }
    for h in &hosts {
        wait_for("status", || status(&etcd, &h.name), || h.logs());
    }
    let changes = std::env::var("FLEET_BENCH_CHANGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20usize);
    let mut times = Vec::new();
    for i in 0..changes {
        // Alternate 1 and 2 instances per host: every change starts or
        // stops instances on all three. The clock starts before the first
        // put and stops when all three trees run the change.
        let n = 1 + (i % 2) as u32;
        let start = std::time::Instant::now();
        for h in ["h0", "h1", "h2"] {
            etcd.put(&key(h, "box"), &app(n, ""));
        }
        wait_for(
            "every host to run the change",
            || {
                hosts
                    .iter()
                    .all(|h| {
                        h.try_ps().is_some_and(|ps| {
                            let inst = ps["instances"].as_array().cloned().unwrap_or_default();
                            inst.len() == n as usize
                                && inst.iter().all(|x| x["state"] == "running")
                                && ps["rollouts"].as_array().is_some_and(|r| r.is_empty())
                        })
                    })
                    .then_some(())
            },
            || hosts.iter().map(Host::logs).collect::<Vec<_>>().join("\n"),
        );
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "put -> all running on 3 hosts: {} changes, median {:.0} ms, p99 {:.0} ms, min {:.0} ms, max {:.0} ms",
        sorted.len(),
        pct(0.5),
        pct(0.99),
        sorted[0],
        sorted[sorted.len() - 1]
    );
    let proc_field = |pid: u32, field: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let pids: Vec<u32> = hosts
        .iter()
        .filter_map(|h| h.agent.as_ref().map(|c| c.id()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // Every thread's switches (tokio's and tonic's too), from /proc/PID/task.
    let wakeups = |p: u32| -> u64 {
        std::fs::read_dir(format!("/proc/{p}/task"))
            .map(|rd| {
                rd.flatten()
                    .map(|t| {
                        let s =
                            std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                        s.lines()
                            .filter(|l| l.contains("ctxt_switches:"))
                            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                            .sum::<u64>()
                    })
                    .sum()
            })
            .unwrap_or(0)
    };
    let before: Vec<u64> = pids.iter().map(|p| wakeups(*p)).collect();
    let idle = Duration::from_secs(10);
    std::thread::sleep(idle);
    for (i, p) in pids.iter().enumerate() {
        println!(
            "agent h{i}: VmRSS {} KiB, VmHWM {} KiB, {} context switches in {} idle s (lease TTL 3 s: a keep-alive every 1 s)",
            proc_field(*p, "VmRSS:"),
            proc_field(*p, "VmHWM:"),
            wakeups(*p) - before[i],
            idle.as_secs()
        );
    }
}
