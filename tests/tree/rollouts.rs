//! Gated rollouts: a config change replaces the instances of a process one
//! at a time, each only once the one before is ready and has stayed ready
//! for the entry's `min-ready`; a replacement that fails stops the
//! rollout, the others keep their config, and `ps`, the log and the
//! metrics say so; the next config change starts a new rollout.

use std::io::Read;
use std::net::TcpStream;

use super::*;

/// `processes/box.yaml` with one entry `web` of `n` instances and extra
/// keys.
fn web_entry(fx: &Fx, n: u32, extra: &str) {
    fx.set.write(
        "processes/box.yaml",
        format!("web:\n  image: bb\n  config: /config/web.yaml\n  instances: {n}\n{extra}"),
    );
}

fn hash(ps: &Value, name: &str) -> String {
    inst(ps, name).expect("listed")["config_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One connection to 127.0.0.1:PORT, answered "ok\n".
fn ask(port: u16) -> Result<(), String> {
    let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = String::new();
        c.read_to_string(&mut buf)?;
        Ok(buf)
    });
    match got {
        Ok(b) if b == "ok\n" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// A 3-instance rollout of a service that is ready 2 s after it starts,
/// all sharing one listening socket, with a client connecting through
/// the whole rollout: no request fails, and at least 2 instances are
/// ready at every moment.
#[test]
fn a_gated_rollout_behind_a_shared_port_fails_no_request_and_keeps_two_ready() {
    let mut fx = fixture!();
    let built = common::build_helper(
        "acceptor",
        &["-static"],
        &fx.set.p("images/bb/bin/acceptor"),
    );
    require!(built.is_ok(), built.err().unwrap_or_default());
    let port = free_port();
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\nallow-tcp-ports: [{port}]\n",
            fx.set.s("images"),
        ),
    );
    let web = |version: &str| {
        sh_env(
            "sleep 2; echo ready >&4; exec /bin/acceptor graceful",
            &[("VERSION", version)],
            &format!(
                "ready: !Fd 4\nkill-timeout: 5\n\
                 tcp-ports: {{{port}: {{fd: 3, host: 127.0.0.1}}}}\n"
            ),
        )
    };
    fx.container("web", &web("1"));
    web_entry(&fx, 3, "");
    fx.start();
    let all = names("web", 3);
    let ps0 = fx.wait_ps("3 ready", |ps| all_running(ps, &refs(&all)));
    let old: Vec<(i32, String)> = all
        .iter()
        .map(|n| (pids(&ps0, n).0, hash(&ps0, n)))
        .collect();
    let hammer = Hammer::start(|| {}, move || ask(port));
    std::thread::sleep(Duration::from_millis(300));
    fx.container("web", &web("2"));
    let t0 = Instant::now();
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut fewest_ready = 3;
    let mut saw_in_progress = false;
    let done = loop {
        assert!(t0.elapsed() < WAIT, "the rollout did not end\n{}", fx.log());
        let Some(ps) = fx.try_ps() else { continue };
        let ready = all
            .iter()
            .filter(|n| state(&ps, n) == Some("running"))
            .count();
        fewest_ready = fewest_ready.min(ready);
        let rollouts = ps["rollouts"].as_array().cloned().unwrap_or_default();
        saw_in_progress |= rollouts.iter().any(|r| r["state"] == "in-progress");
        let replaced = all
            .iter()
            .zip(&old)
            .all(|(n, (_, h))| hash(&ps, n) != *h && state(&ps, n) == Some("running"));
        if replaced && rollouts.is_empty() {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let (ok, failed, errors) = hammer.finish();
    assert_eq!(
        failed, 0,
        "{failed} failed requests ({ok} answered): {errors:?}"
    );
    assert!(ok > 50, "only {ok} answers");
    assert!(
        fewest_ready >= 2,
        "only {fewest_ready} instances ready at one moment"
    );
    assert!(saw_in_progress, "ps never showed the rollout");
    // One at a time, each 2 s to be ready: at least 6 s.
    assert!(took >= Duration::from_secs(6), "rolled in {took:?}");
    for (n, (knot, _)) in all.iter().zip(&old) {
        assert_ne!(pids(&done, n).0, *knot, "{n} was not replaced");
        assert_eq!(inst(&done, n).expect("listed")["restarts"], 0);
    }
}

/// A new version that crashes 0.5 s after it starts: with `min-ready: 2`
/// the rollout stops at the first instance, the other two keep running
/// their old config with the same pids, and ps, the log and the metrics
/// say why. The next config change rolls out again.
#[test]
fn a_version_that_crashes_stops_the_rollout_after_the_first_instance() {
    let mut fx = fixture!();
    let good = |v: &str| sh_env("exec sleep 1000", &[("VERSION", v)], "kill-timeout: 1\n");
    fx.container("web", &good("1"));
    web_entry(&fx, 3, "  min-ready: 2\n");
    fx.start();
    let all = names("web", 3);
    let ps0 = fx.wait_ps("3 running", |ps| all_running(ps, &refs(&all)));
    fx.container(
        "web",
        &sh_env(
            "sleep 0.5; exit 1",
            &[("VERSION", "2")],
            "kill-timeout: 1\nrestart-timeout: 1\n",
        ),
    );
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("the rollout stopped", |ps| {
        ps["rollouts"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "stopped"))
    });
    let r = &ps["rollouts"][0];
    assert_eq!(
        (r["sandbox"].as_str(), r["process"].as_str()),
        (Some("box"), Some("web"))
    );
    assert_eq!(r["instance"], "box/web.0", "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("box/web.0 exited with status 1 within min-ready"),
        "{reason}"
    );
    assert!(r["since"].is_string(), "{r}");
    // Well past the crash and the back-off: the other two are untouched.
    std::thread::sleep(Duration::from_secs(3));
    let ps = fx.ps();
    for n in ["box/web.1", "box/web.2"] {
        assert_eq!(pids(&ps, n), pids(&ps0, n), "{n} was restarted");
        assert_eq!(hash(&ps, n), hash(&ps0, n), "{n} has the new config");
    }
    assert_ne!(hash(&ps, "box/web.0"), hash(&ps0, "box/web.0"));
    assert_eq!(ps["rollouts"][0]["state"], "stopped");
    assert!(
        fx.log()
            .contains("box/web: rollout stopped: box/web.0 exited with status 1 within min-ready"),
        "{}",
        fx.log()
    );
    fx.expect_metrics(&[("cairn_rollouts_stopped_total", "web", 1)]);
    // A fixed version: a new rollout, to the end.
    fx.container("web", &good("3"));
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let broken = hash(&ps, "box/web.0");
    fx.wait_ps("the fixed version everywhere", |ps| {
        ps["rollouts"].as_array().is_some_and(|r| r.is_empty())
            && all_running(ps, &refs(&all))
            && all.iter().all(|n| hash(ps, n) != hash(&ps0, n))
            && hash(ps, "box/web.0") != broken
    });
}
