//! metrics.prom as real Prometheus clients read it: the official Python
//! parser, and Debian's prometheus-node-exporter serving the file through
//! its textfile collector on loopback, scraped by the test. Every process
//! has all its series (also right after a `kill -9` and adoption) and no
//! row sums the others.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::*;

/// GET /metrics from 127.0.0.1:PORT (HTTP/1.0, the whole answer).
fn scrape(port: u16) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.").then_some(text)
}

struct Exporter(std::process::Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        kill(self.0.id() as i32, libc::SIGKILL);
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_parse_with_real_prometheus_clients() {
    let mut fx = fixture!();
    let python = Path::new("/usr/bin/python3");
    let parser_ok = python.exists()
        && Command::new(python)
            .args(["-c", "import prometheus_client.parser"])
            .output()
            .is_ok_and(|o| o.status.success());
    require!(
        parser_ok && have("prometheus-node-exporter"),
        "needs python3-prometheus-client and prometheus-node-exporter (Debian)"
    );
    fx.container("web", &sleeper(""));
    fx.container("crash", &sh("exit 3", "restart-timeout: 30\n"));
    fx.processes(&[("web", 2), ("crash", 1)]);
    fx.start();
    fx.wait_ps("web running, crash backing off", |ps| {
        all_running(ps, &["box/web.0", "box/web.1"]) && state(ps, "box/crash.0") == Some("backoff")
    });
    fx.expect_metrics(&[
        ("cairn_running", "web", 2),
        ("cairn_failures_total", "crash", 1),
    ]);
    let file = fx.set.p("run/metrics.prom");
    // The official parser reads every family; print name type sample count.
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                  for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n    \
                  for s in f.samples:\n        print(s.name, sorted(s.labels.items()), s.value)\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8_lossy(&out.stdout).to_string();
    for want in [
        "cairn_running [('process', 'web'), ('sandbox', 'box')] 2.0",
        "cairn_desired_instances [('process', 'web'), ('sandbox', 'box')] 2.0",
        "cairn_instances [('process', 'crash'), ('sandbox', 'box'), ('state', 'backoff')] 1.0",
        "cairn_failures_total [('process', 'crash'), ('sandbox', 'box')] 1.0",
        "cairn_last_reload_success [] 1.0",
        "cairn_upgrades_total [] 0.0",
    ] {
        assert!(parsed.lines().any(|l| l == want), "{want} not in\n{parsed}");
    }
    assert!(
        !parsed.contains("('sandbox', '')"),
        "a total row:\n{parsed}"
    );
    // node-exporter's textfile collector, on loopback, scraped.
    let port = free_port();
    let exporter = Exporter(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!(
                "--collector.textfile.directory={}",
                fx.set.s("run")
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter"),
    );
    let text = wait_for(Duration::from_secs(10), "the exporter", || scrape(port));
    drop(exporter);
    for want in [
        "cairn_running{process=\"web\",sandbox=\"box\"} 2",
        "cairn_instances{process=\"web\",sandbox=\"box\",state=\"running\"} 2",
        "node_textfile_scrape_error 0",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} not in\n{text}");
    }
    // After a kill -9 and adoption: every process has all its series.
    fx.stop_tree(libc::SIGKILL);
    fx.start();
    fx.wait_ps("adopted", |ps| {
        ps["tree"]["running"] == true && all_running(ps, &["box/web.0", "box/web.1"])
    });
    fx.expect_metrics(&[
        ("cairn_running", "web", 2),
        ("cairn_failures_total", "web", 0),
        ("cairn_refused_starts_total", "crash", 0),
        ("cairn_desired_instances", "crash", 1),
    ]);
}
