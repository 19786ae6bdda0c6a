//! Listening sockets across upgrades, reloads and lost trees: a `tcp-ports`
//! service answers every connection through upgrades and reloads; an unused
//! socket is closed and bound again when needed; a restarted instance of a
//! shared-port service listens again after a `kill -9` or a crash.

use super::*;

/// What fd `fd` of `pid` is.
fn upg_fd(pid: i32, fd: u32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|t| t.display().to_string())
        .unwrap_or_default()
}

/// Whether nothing listens on 127.0.0.1:`port` (we can bind it).
fn upg_port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Connect to `port` on localhost and read the acceptor's whole answer.
fn fetch(port: u16) -> Result<Vec<u8>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    Ok(buf)
}

/// Issue 5, "Done when" 5: a client connecting in a loop to a `tcp-ports`
/// service sees no refused or reset connection during 20 upgrades and 5
/// reloads.
#[test]
fn tcp_port_service_answers_every_connection_through_upgrades_and_reloads() {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 2);
    let tree = w.start_tree();
    let before = w.wait_running(2, START);
    assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]), "service answers");
    // One socket, bound by the tree, shared by both workloads at fd 3.
    let sockets = upg_sockets(tree);
    assert_eq!(sockets.len(), 1, "the tree's sockets: {sockets:?}");
    for i in before.inst.values() {
        let fd3 = upg_fd(i.workload.unwrap(), 3);
        assert!(sockets.contains(&fd3), "workload fd 3 is {fd3:?}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u64, Vec::<String>::new());
            while !stop.load(Ordering::Relaxed) {
                match fetch(port) {
                    Ok(b) if b == b"ok\n" => ok += 1,
                    Ok(b) => failures.push(format!("short answer {b:?}")),
                    Err(e) => failures.push(e),
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            (ok, failures)
        })
    };
    let mut upgrades = 0;
    for round in 0..20 {
        upgrades += 1;
        let ps = w.upgrade_to(upgrades, 2);
        assert_eq!(ps.tree_pid, tree);
        if round % 4 == 3 {
            let reloads = ps.reloads;
            let out = upg_output(Command::new(&w.cli).args(["reload", "-c", &w.master()]));
            assert!(out.status.success(), "cairn reload failed");
            w.wait("a reload", STEP, |p| {
                p.reloads > reloads && p.all_running(2)
            });
        }
    }
    // Let the client run a little past the last change.
    let last = fetch(port);
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = client.join().expect("client thread");
    assert!(
        failures.is_empty(),
        "{} of {} connections failed; first: {:?}",
        failures.len(),
        ok as usize + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(last.as_deref(), Ok(&b"ok\n"[..]));
    eprintln!("{ok} connections answered, none failed");
    assert!(ok >= 200, "only {ok} connections in 20 upgrades");
    let after = w.ps().expect("ps");
    assert_eq!(after.upgrades, 20);
    assert_eq!(after.pids(), before.pids(), "a workload restarted");
    assert!(after.inst.values().all(|i| i.restarts == 0));
    // The very same socket: never closed, never re-bound.
    assert_eq!(upg_sockets(tree), sockets, "the tree's sockets changed");
}

/// A listening socket is closed once no instance uses it (the entry is
/// removed and reloaded away), and bound again when it comes back.
#[test]
fn unused_socket_is_closed_and_rebound_when_needed() {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 1);
    w.sleepers("other", 1);
    let tree = w.start_tree();
    w.wait_running(2, START);
    assert!(!upg_port_free(port), "nothing listens on {port}");
    w.entries.remove("web");
    w.entry("other", 1, "");
    w.signal_tree(libc::SIGHUP);
    w.wait("web to be stopped", STEP, |p| p.all_running(1));
    assert!(
        upg_sockets(tree).is_empty(),
        "the tree still holds a socket"
    );
    assert!(upg_port_free(port), "port {port} is still bound");
    upg_acceptor_service(&mut w, port, 1);
    w.signal_tree(libc::SIGHUP);
    w.wait("web to be back", STEP, |p| p.all_running(2));
    assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]));
    assert_eq!(upg_sockets(tree).len(), 1);
}

/// After the tree was lost (kill -9 or a crash), an instance of a service
/// whose instances share one listening socket dies: its replacement must
/// get the port again, while the other instance still holds the socket.
fn upg_shared_port_restart_after(how: &str) {
    let mut w = world!();
    acceptor!(w);
    let port = free_port();
    upg_acceptor_service(&mut w, port, 2);
    w.start_tree();
    w.wait_running(2, START);
    let before = upg_lose_the_tree(&mut w, how, 2);
    let victim = "box/web.0";
    let old = before.inst[victim].workload.unwrap();
    kill(old, libc::SIGKILL);
    let ps = w.wait("the acceptor to be restarted", STEP, |p| {
        p.all_running(2) && p.inst[victim].workload.is_some_and(|x| x != old)
    });
    assert_eq!(ps.inst[victim].restarts, 1);
    for _ in 0..20 {
        assert_eq!(fetch(port).as_deref(), Ok(&b"ok\n"[..]));
    }
    // The new workload really listens on the same port: its fd 3 is the
    // very socket the other instance accepts on. (Stopping the other
    // instance to see who answers is not reliable: a stopped process
    // blocked in accept() still takes the wake-one wakeup.)
    let new = ps.inst[victim].workload.unwrap();
    let other = ps.inst["box/web.1"].workload.unwrap();
    let fd3 = upg_fd(new as i32, 3);
    assert!(fd3.starts_with("socket:["), "web.0 fd 3 is {fd3:?}");
    assert_eq!(
        fd3,
        upg_fd(other as i32, 3),
        "web.0 and web.1 do not share the socket"
    );
}

#[test]
fn kill9_then_a_shared_port_instance_restarts_and_listens() {
    upg_shared_port_restart_after("kill9");
}

#[test]
fn crash_then_a_shared_port_instance_restarts_and_listens() {
    upg_shared_port_restart_after("crash");
}
