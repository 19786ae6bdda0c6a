//! `bridged-network`: the instance gets its own network namespace, joined
//! to the sandbox's bridge by a veth pair. Each test runs `cairn cmd` in a
//! network namespace of its own (`unshare --net`) holding the bridge, so
//! the host's network is never touched.

use super::*;

const BRIDGE: &str = "br-cairn";

fn ip_tool() -> bool {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).is_file())
}

/// Sandbox `box` (plus the top-level keys `sandbox_extra`) with a bridged
/// network (plus the keys `extra_net` inside it), and the Command entry
/// `net` (address 10.71.0.2) running a probe with the top-level keys
/// `container_extra`.
fn bridged(fx: &mut Fixture, container_extra: &str, sandbox_extra: &str, extra_net: &str) {
    fx.command("net", &probe(container_extra));
    fx.sandbox(&format!(
        "allow-users: [1000-1999]\nallow-groups: [1000-1999]\n{sandbox_extra}\
         bridged-network:\n  bridge: {BRIDGE}\n  network: 10.71.0.0/16\n{extra_net}"
    ));
    fx.set.write(
        "processes/box.yaml",
        "net:\n  kind: Command\n  image: bb\n  config: /config/net.yaml\n  \
         ip-addresses: [10.71.0.2]\n",
    );
}

/// Shell lines making the bridge, with the gateway's address, in the
/// test's network namespace.
fn make_bridge() -> String {
    format!(
        "ip link add {BRIDGE} type bridge\nip addr add 10.71.0.1/16 dev {BRIDGE}\n\
         ip link set {BRIDGE} up"
    )
}

/// Run `cairn cmd box net SCRIPT` in a new network namespace, after
/// `setup` (a shell snippet) has run there.
fn run_in_netns(fx: &Fixture, setup: &str, script: &str) -> Output {
    let wrapper = format!(
        "set -e\nip link set lo up\n{setup}\nset +e\n\"$@\"\nrc=$?\n\
         [ -z \"$srv\" ] || kill \"$srv\"\nexit $rc\n"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "/bin/sh", "-c", &wrapper, "sh"])
        .arg(cairn_bin())
        .args(["cmd", "-c", &fx.set.master(), "box", "net", script])
        .env_remove("RUST_BACKTRACE");
    let out = output_within(&mut cmd, None, TIMEOUT);
    fx.assert_cleaned_up();
    out
}

#[test]
fn bridged_instance_has_its_address_route_and_reaches_the_bridge() {
    let mut fx = fixture!();
    require!(
        ip_tool(),
        "iproute2's ip is needed (apt-get install iproute2)"
    );
    let before = host_mounts();
    let marker = fx.set.p("after-setup");
    bridged(
        &mut fx,
        "",
        "",
        &format!(
            "  default-gateway: 10.71.0.1\n  after-setup-command: \
             [/bin/sh, -c, 'echo @{{container_ip}} > {}']\n",
            marker.display()
        ),
    );
    fx.set.write("www/hello.txt", "hello over the bridge\n");
    let setup = format!(
        "{bridge}\n{bb} httpd -f -p 10.71.0.1:8080 -h {www} &\nsrv=$!",
        bridge = make_bridge(),
        bb = fx.busybox.display(),
        www = fx.set.s("www"),
    );
    let script = format!(
        "echo {STARTED}; ip -o -4 addr show dev eth0; ip route; \
         ip -o link show | cut -d: -f2; \
         printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.71.0.1 8080"
    );
    let out = run_in_netns(&fx, &setup, &script);
    let text = ok(&out);
    assert!(text.contains("inet 10.71.0.2/16"), "eth0 address:\n{text}");
    assert!(text.contains("default via 10.71.0.1"), "route:\n{text}");
    assert!(
        text.contains("hello over the bridge"),
        "fetch through the bridge:\n{text}"
    );
    // Only lo and eth0 in the container: none of the namespace's other
    // interfaces (the bridge, the host end of the pair).
    let links: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim().split('@').next().unwrap_or(""))
        .collect();
    assert_eq!(links, ["lo", "eth0"], "links:\n{text}");
    assert_eq!(
        fs::read_to_string(&marker).expect("after-setup-command ran"),
        "10.71.0.2\n"
    );
    assert_host_mounts_unchanged(&before);
}

#[test]
fn missing_bridge_refuses_the_instance() {
    let mut fx = fixture!();
    require!(
        ip_tool(),
        "iproute2's ip is needed (apt-get install iproute2)"
    );
    let before = host_mounts();
    bridged(&mut fx, "", "", "");
    // No bridge in this namespace: the pair cannot be attached.
    let out = run_in_netns(&fx, "true", &format!("echo {STARTED}"));
    assert_refused(
        &out,
        125,
        &["box/cmd.net.", "bridged-network", BRIDGE],
        &before,
    );
}

#[test]
fn bridged_ports_open_inside_the_container_unless_external() {
    let mut fx = fixture!();
    require!(
        ip_tool(),
        "iproute2's ip is needed (apt-get install iproute2)"
    );
    let before = host_mounts();
    bridged(
        &mut fx,
        "tcp-ports:\n  8080: {fd: 3}\n  9090: {fd: 4, external: true}\n",
        "allow-tcp-ports: [9090]\n",
        "",
    );
    let setup = make_bridge();
    // /proc/net/tcp lists the sockets of the reader's network namespace:
    // the port opened inside shows there, the external one does not.
    let script = format!(
        "echo {STARTED}; \
         i3=$(readlink /proc/self/fd/3 | tr -dc 0-9); \
         i4=$(readlink /proc/self/fd/4 | tr -dc 0-9); \
         [ -n \"$i3\" ] && [ -n \"$i4\" ] || echo missing-fd; \
         if grep -q \" $i3 \" /proc/net/tcp; then echo fd3-inside; fi; \
         if grep -q \" $i4 \" /proc/net/tcp; then echo fd4-inside; fi"
    );
    let out = run_in_netns(&fx, &setup, &script);
    let text = ok(&out);
    assert!(!text.contains("missing-fd"), "{text}");
    assert!(
        text.contains("fd3-inside"),
        "port 8080 not in the container:\n{text}"
    );
    assert!(
        !text.contains("fd4-inside"),
        "external port 9090 opened in the container:\n{text}"
    );
    assert_host_mounts_unchanged(&before);
}
