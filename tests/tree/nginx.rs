//! Real nginx under the tree: the recipe of docs/recipes/nginx.md, read
//! from that page, run from a Debian image built with mmdebstrap. Three
//! instances share one port: a rollout fails no request and keeps two
//! ready, `stop-signal: QUIT` on a non-blocking socket stops them in
//! well under `kill-timeout`, and on a blocking socket (the default) the
//! same stop hangs until the KILL.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use super::*;
use common::debian::{debian_image, link_image};

/// The shared port of the recipe.
const PORT: u16 = 8080;

/// The fenced block of docs/recipes/nginx.md whose first line is
/// `# PATH`.
fn recipe(path: &str) -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipes/nginx.md");
    let text = fs::read_to_string(&page).expect("docs/recipes/nginx.md");
    let head = format!("# {path}\n");
    text.split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|b| b.split_once('\n').map(|(_, body)| body))
        .find(|body| body.starts_with(&head))
        .unwrap_or_else(|| panic!("no block for {path} in {}", page.display()))
        .to_string()
}

/// `text` with `from` replaced by `to`, which must be there exactly once
/// (so a change of the recipe cannot make a test silently test nothing).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in\n{text}");
    text.replacen(from, to, 1)
}

/// The recipe's sandbox, entry, container config and nginx.conf in the
/// fixture's config set: sandbox `box`, image `nginx` linked from the
/// cached Debian image. `container` edits the container config.
fn write_recipe(fx: &Fx, image: &Path, container: impl Fn(String) -> String) {
    link_image(image, &fx.set.p("images/nginx")).expect("link the nginx image");
    let sandbox = edit(
        &recipe("/etc/cairn/sandboxes/web.yaml"),
        "image-dir: /var/lib/cairn/images",
        &format!("image-dir: {}", fx.set.s("images")),
    );
    fx.set.write("sandboxes/box.yaml", sandbox);
    fx.set.write(
        "processes/box.yaml",
        recipe("/etc/cairn/processes/web.yaml"),
    );
    // New files in the image's own /config dir, never one of the cache's.
    fx.set.write(
        "images/nginx/config/nginx.conf",
        recipe("/config/nginx.conf"),
    );
    fx.set.write(
        "images/nginx/config/nginx.yaml",
        container(recipe("/config/nginx.yaml")),
    );
}

/// Start the tree in a network namespace of its own, with the recipe's
/// bridge (as tests/tree/bridged.rs does).
fn start_in_netns(fx: &mut Fx) {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--",
        "/bin/sh",
        "-c",
        "set -e; ip link set lo up; ip link add br-cairn type bridge; \
         ip link set br-cairn up; exec \"$@\"",
        "sh",
    ])
    .arg(cairn_bin())
    .args(["tree", "-c", &fx.master_path(), "--log-stderr"]);
    fx.spawn_tree(cmd);
    fx.tree_pid = Some(fx.tree.as_ref().expect("spawned").id() as i32);
}

/// Move the calling thread into the network namespace of `pid`.
fn enter_netns(pid: i32) {
    let ns = File::open(format!("/proc/{pid}/ns/net")).expect("open the tree's netns");
    // SAFETY: setns(2) of this thread only, to a namespace fd we hold.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// One `GET /` to 127.0.0.1:PORT: Ok when nginx answered 200 "ok".
fn get() -> Result<(), String> {
    let mut c = TcpStream::connect(("127.0.0.1", PORT)).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("\r\n\r\nok\n") {
        Ok(())
    } else {
        Err(format!("answer {answer:?}"))
    }
}

/// From the tree's network namespace, one `GET /` at a time, each
/// answered, a pause after each, until `done` says yes (Some) after one;
/// gives up after `tries`. Returns (requests sent, what `done` said).
fn requests_until<T: Send + 'static>(
    tree: i32,
    tries: usize,
    done: impl Fn() -> Option<T> + Send + 'static,
) -> Option<(usize, T)> {
    std::thread::spawn(move || {
        enter_netns(tree);
        for n in 1..=tries {
            if let Err(e) = get() {
                panic!("request {n}: {e}");
            }
            std::thread::sleep(Duration::from_millis(20));
            if let Some(v) = done() {
                return Some((n, v));
            }
        }
        None
    })
    .join()
    .expect("client thread")
}

/// The fixture, the cached Debian image with nginx-light, or skip (fail
/// under CI) saying what is missing.
macro_rules! nginx_fixture {
    () => {{
        let fx = fixture!();
        require!(
            have("unshare") && have("ip"),
            "util-linux unshare and iproute2 ip needed"
        );
        let image = debian_image(&["nginx-light"]);
        require!(image.is_ok(), image.clone().err().unwrap_or_default());
        (fx, image.expect("checked above"))
    }};
}

fn hash(ps: &Value, name: &str) -> String {
    inst(ps, name).expect("listed")["config_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn nginx_rolls_out_behind_a_shared_port_and_stops_gracefully() {
    let (mut fx, image) = nginx_fixture!();
    write_recipe(&fx, &image, |c| c);
    start_in_netns(&mut fx);
    let all = names("nginx", 3);
    let ps0 = fx.wait_ps("3 nginx ready", |ps| all_running(ps, &refs(&all)));
    let old: Vec<(i32, String)> = all
        .iter()
        .map(|n| (pids(&ps0, n).0, hash(&ps0, n)))
        .collect();
    let tree = fx.tree_pid();
    let hammer = Hammer::start(move || enter_netns(tree), get);
    std::thread::sleep(Duration::from_millis(300));
    let v2 = edit(
        &recipe("/config/nginx.yaml"),
        "VERSION: \"1\"",
        "VERSION: \"2\"",
    );
    fx.set.write("images/nginx/config/nginx.yaml", v2);
    let t0 = Instant::now();
    let out = cairn(&["reload", "-c", &fx.master_path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut fewest_ready = 3;
    let done = loop {
        assert!(t0.elapsed() < WAIT, "the rollout did not end\n{}", fx.log());
        let Some(ps) = fx.try_ps() else { continue };
        let ready = all
            .iter()
            .filter(|n| state(&ps, n) == Some("running"))
            .count();
        fewest_ready = fewest_ready.min(ready);
        let replaced = all
            .iter()
            .zip(&old)
            .all(|(n, (_, h))| hash(&ps, n) != *h && state(&ps, n) == Some("running"));
        if replaced && ps["rollouts"].as_array().is_some_and(|r| r.is_empty()) {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rolled = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed, errors) = hammer.finish();
    eprintln!("rollout took {rolled:?}; {ok} answers, {failed} failed");
    assert_eq!(
        failed, 0,
        "{failed} failed requests ({ok} answered): {errors:?}"
    );
    assert!(ok > 50, "only {ok} answers");
    assert!(
        fewest_ready >= 2,
        "only {fewest_ready} instances ready at one moment"
    );
    for (n, (knot, _)) in all.iter().zip(&old) {
        assert_ne!(pids(&done, n).0, *knot, "{n} was not replaced");
    }
    let stdio = fs::read_to_string(fx.set.p("log/stdio/box.log")).unwrap_or_default();
    assert!(
        stdio.contains("using inherited sockets from \"3;\""),
        "nginx did not take fd 3:\n{stdio}"
    );
    // The graceful stop: QUIT, the workers leave epoll, all exit.
    let (status, took) = fx.stop_tree(libc::SIGTERM);
    eprintln!("graceful stop took {took:?}");
    assert!(status.success(), "tree exit {status:?}\n{}", fx.log());
    assert!(
        took < Duration::from_secs(3),
        "stop took {took:?} (kill-timeout 10)\n{}",
        fx.log()
    );
    // One line per worker: three replaced in the rollout, three now.
    let stdio = fs::read_to_string(fx.set.p("log/stdio/box.log")).unwrap_or_default();
    let graceful = stdio.matches("gracefully shutting down").count();
    assert!(graceful >= 6, "{graceful} graceful stops:\n{stdio}");
}

/// The kernel function a task sleeps in (`/proc/PID/wchan`).
fn wchan(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

#[test]
fn nginx_on_a_blocking_shared_socket_hangs_its_graceful_stop_until_kill() {
    let (mut fx, image) = nginx_fixture!();
    write_recipe(&fx, &image, |c| {
        let c = edit(&c, "set-non-block: true", "set-non-block: false");
        edit(&c, "kill-timeout: 10", "kill-timeout: 4")
    });
    start_in_netns(&mut fx);
    let all = names("nginx", 3);
    let ps = fx.wait_ps("3 nginx ready", |ps| all_running(ps, &refs(&all)));
    // Each connection wakes the worker of every instance (one worker each:
    // no EPOLLEXCLUSIVE). A woken worker looks again before epoll_wait
    // returns; when two still see the connection pending, the one that
    // loses it blocks in accept() (on 2 cores within a few requests).
    let workers: Vec<i32> = all
        .iter()
        .flat_map(|n| descendants(pids(&ps, n).1))
        .collect();
    assert_eq!(workers.len(), 3, "one worker per instance: {workers:?}");
    let watched = workers.clone();
    let stuck = requests_until(fx.tree_pid(), 2000, move || {
        let n = watched
            .iter()
            .filter(|w| wchan(**w).contains("accept"))
            .count();
        (n > 0).then_some(n)
    });
    let Some((sent, in_accept)) = stuck else {
        panic!("no worker blocked in accept() after 2000 requests");
    };
    eprintln!("after {sent} requests, {in_accept} of 3 workers blocked in accept()");
    let (status, took) = fx.stop_tree(libc::SIGTERM);
    eprintln!("stop on a blocking socket took {took:?}");
    assert!(status.success(), "tree exit {status:?}\n{}", fx.log());
    assert!(
        took >= Duration::from_secs(4),
        "stop took only {took:?}: no worker hung in accept()\n{}",
        fx.log()
    );
}
