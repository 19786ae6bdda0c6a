//! `bridged-network` under the tree: daemons get their addresses, and a
//! restarted instance gets a new veth pair on the bridge.

use super::*;

/// The host ends (`cn<knot pid>`) attached to `bridge` in the network
/// namespace of `pid`.
fn bridge_ports(pid: i32, bridge: &str) -> BTreeSet<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-o", "link", "show", "master", bridge])
        .output()
        .expect("nsenter ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn bridged_daemons_get_their_addresses_and_a_new_pair_on_restart() {
    let mut fx = fixture!();
    require!(
        have("unshare") && have("nsenter") && have("ip"),
        "util-linux unshare, nsenter and iproute2 ip needed"
    );
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\n\
             bridged-network:\n  bridge: br-cairn\n  network: 10.71.0.0/16\n",
            fx.set.s("images"),
        ),
    );
    fx.container(
        "web",
        &sh(
            "ip -o -4 addr show dev eth0; exec sleep 1000",
            "kill-timeout: 1\nrestart-timeout: 0.2\n",
        ),
    );
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: bb\n  config: /config/web.yaml\n  instances: 2\n  \
         ip-addresses: [10.71.0.2, 10.71.0.3]\n",
    );
    // The tree runs in a network namespace of this test, with the bridge.
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
    let tree = fx.tree.as_ref().expect("spawned").id() as i32;
    fx.tree_pid = Some(tree);
    let names = ["box/web.0", "box/web.1"];
    let ps = fx.wait_ps("both running", |ps| all_running(ps, &names));
    let knots: Vec<i32> = names.iter().map(|n| pids(&ps, n).0).collect();
    // Each workload saw its own address on eth0.
    wait_for(WAIT, "both addresses in the stdio log", || {
        let t = fs::read_to_string(fx.set.p("log/stdio/box.log")).ok()?;
        (t.contains("inet 10.71.0.2/16") && t.contains("inet 10.71.0.3/16")).then_some(())
    });
    let want: BTreeSet<String> = knots.iter().map(|k| format!("cn{k}")).collect();
    assert_eq!(bridge_ports(tree, "br-cairn"), want, "{}", fx.log());
    // A replaced instance gets a new pair; the old one goes with its
    // network namespace.
    let (_, work) = pids(&ps, "box/web.0");
    std::thread::sleep(Duration::from_millis(250));
    kill(work, libc::SIGKILL);
    let ps = fx.wait_ps("a new web.0", |ps| {
        all_running(ps, &names) && pids(ps, "box/web.0").0 != knots[0]
    });
    let want: BTreeSet<String> = [pids(&ps, "box/web.0").0, knots[1]]
        .iter()
        .map(|k| format!("cn{k}"))
        .collect();
    wait_for(WAIT, "the bridge holds the new pair only", || {
        (bridge_ports(tree, "br-cairn") == want).then_some(())
    });
    let (status, _) = fx.stop_tree(libc::SIGTERM);
    assert!(status.success(), "tree exit {status:?}\n{}", fx.log());
}
