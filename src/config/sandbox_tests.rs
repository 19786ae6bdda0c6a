use super::*;
use crate::config::isolation::Seccomp;

fn master() -> Master {
    Master::parse(Path::new("/etc/c/master.yaml"), b"").unwrap()
}

fn parse(text: &str) -> Result<Sandbox, Problems> {
    Sandbox::parse(
        &master(),
        Path::new("/etc/c/sandboxes/web.yaml"),
        text.as_bytes(),
    )
}

const MIN: &str = "image-dir: /img\nallow-users: [1]\nallow-groups: [0]\n";

#[test]
fn defaults() {
    let s = parse(MIN).unwrap();
    assert_eq!(s.name, "web");
    assert_eq!(s.config_file, Path::new("/etc/c/processes/web.yaml"));
    assert_eq!(s.image_dir, Path::new("/img"));
    assert_eq!(s.image_dir_levels, 1);
    assert_eq!(s.used_images_list, None);
    assert_eq!(s.log_file, Path::new("/var/log/cairn/web.log"));
    assert_eq!(s.log_level, None);
    assert!(s.readonly_paths.is_empty() && s.writable_paths.is_empty());
    assert_eq!(s.default_user, None);
    assert_eq!(s.default_group, 0);
    assert!(s.allow_tcp_ports.is_empty());
    assert!(s.additional_hosts.is_empty());
    assert!(s.uid_map.is_empty() && s.gid_map.is_empty());
    assert!(s.auto_clean);
    assert_eq!(s.resolv_conf, Path::new("/etc/resolv.conf"));
    assert_eq!(s.hosts_file, Path::new("/etc/hosts"));
    assert_eq!(s.bridged_network, None);
    assert_eq!(s.secrets_private_key, None);
    assert!(s.secrets_namespaces.is_empty());
    assert!(s.allow_capabilities.is_empty());
    assert_eq!(s.isolation, Isolation::default());
    assert_eq!(s.isolation.seccomp, Seccomp::Default);
    assert!(!s.isolation.allow_user_namespaces && !s.isolation.sysfs);
}

#[test]
fn isolation_keys() {
    let s = parse(&format!(
        "{MIN}seccomp: log
allow_user_namespaces: true
sysfs: true
"
    ))
    .unwrap();
    assert_eq!(s.isolation.seccomp, Seccomp::Log);
    assert!(s.isolation.allow_user_namespaces && s.isolation.sysfs);
    let s = parse(&format!(
        "{MIN}seccomp: unconfined
sysfs: false
"
    ))
    .unwrap();
    assert_eq!(s.isolation.seccomp, Seccomp::Unconfined);
    assert!(!s.isolation.sysfs);
    for (text, needle) in [
        (
            "seccomp: off
",
            "not a seccomp setting (default, log or unconfined)",
        ),
        (
            "seccomp: [default]
",
            "a scalar is expected",
        ),
        (
            "allow-user-namespaces: yes
",
            "not a boolean",
        ),
        (
            "sysfs: 1
",
            "not a boolean",
        ),
    ] {
        let e = parse(&format!("{MIN}{text}")).unwrap_err().to_string();
        assert!(e.contains(needle), "{text:?} gave {e}");
        let key = text.split(':').next().unwrap();
        assert!(e.contains(key) && e.contains("sandboxes/web.yaml:4"), "{e}");
    }
}

#[test]
fn every_key() {
    let s = parse(
        "config_file: other.yaml\nimage-dir: imgs\nimage_dir_levels: 2\n\
         used-images-list: /u.txt\nlog-file: w.log\nlog-level: info\n\
         readonly-paths: {/ro: /srv/ro}\nwritable_paths: {/data: /srv/data, /: /srv/root}\n\
         allow-users: [1, 1000-2000]\ndefault-user: 1000\nallow-groups: [0-5]\n\
         default-group: 5\nallow-tcp-ports: [80, 8000-8100]\n\
         additional-hosts: {db.local: 10.0.0.5}\n\
         uid-map: [{inside: 0, outside: 100000, count: 65536}]\n\
         gid_map: [{inside: 0, outside: 100000, count: 65536}]\nauto-clean: false\n\
         resolv-conf: /etc/r.conf\nhosts-file: /etc/h\n\
         bridged-network: {bridge: br0, network: 10.71.0.0/16, default-gateway: 10.71.0.1,\n  \
           after-setup-command: [/usr/bin/arping, '@{container_ip}']}\n\
         secrets-private-key: /etc/k\nsecrets-namespaces: [a, b]\n\
         allow-capabilities: [net_bind_service]\n",
    )
    .unwrap();
    assert_eq!(s.config_file, Path::new("/etc/c/processes/other.yaml"));
    assert_eq!(s.image_dir, Path::new("/etc/c/sandboxes/imgs"));
    assert_eq!(s.image_dir_levels, 2);
    assert_eq!(s.used_images_list.as_deref(), Some(Path::new("/u.txt")));
    assert_eq!(s.log_file, Path::new("/var/log/cairn/w.log"));
    assert_eq!(s.log_level, Some(LogLevel::Info));
    assert_eq!(s.readonly_paths["/ro"], Path::new("/srv/ro"));
    assert!(s.allow_users.contains(1500) && !s.allow_users.contains(2));
    assert_eq!(s.default_user, Some(1000));
    assert_eq!(s.default_group, 5);
    assert!(s.allow_tcp_ports.contains(8050));
    assert_eq!(s.additional_hosts["db.local"].to_string(), "10.0.0.5");
    assert_eq!(s.uid_map[0].outside, 100000);
    assert_eq!(s.gid_map[0].count, 65536);
    assert!(!s.auto_clean);
    assert_eq!(s.resolv_conf, Path::new("/etc/r.conf"));
    assert_eq!(s.hosts_file, Path::new("/etc/h"));
    let b = s.bridged_network.unwrap();
    assert_eq!(b.bridge, "br0");
    assert!(b.contains(&"10.71.3.4".parse().unwrap()));
    assert!(!b.contains(&"10.72.0.1".parse().unwrap()));
    assert_eq!(b.after_setup_command.len(), 2);
    assert_eq!(s.secrets_namespaces, ["a", "b"]);
    assert_eq!(s.allow_capabilities, ["CAP_NET_BIND_SERVICE"]);
}

#[test]
fn vpath_resolution() {
    let s = parse(
        "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\n\
         writable-paths: {/data: /srv/d, /data/sub: /srv/s, /: /srv/r}\n",
    )
    .unwrap();
    let r = |v| Sandbox::resolve_vpath(&s.writable_paths, v);
    assert_eq!(r("/data"), Some(PathBuf::from("/srv/d")));
    assert_eq!(r("/data/x/y"), Some(PathBuf::from("/srv/d/x/y")));
    assert_eq!(r("/data/sub/z"), Some(PathBuf::from("/srv/s/z")));
    assert_eq!(r("/datax"), Some(PathBuf::from("/srv/r/datax")));
    assert_eq!(r("/"), Some(PathBuf::from("/srv/r")));
    assert_eq!(Sandbox::resolve_vpath(&BTreeMap::new(), "/a"), None);
}

#[test]
fn rejects() {
    for (text, needle) in [
        (
            "allow-users: [1]\nallow-groups: [0]\n",
            "\"image-dir\" is missing",
        ),
        ("image-dir: /i\nallow-groups: [0]\n", "allow-users is empty"),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nimage-dir-levels: 0\n",
            "between 1 and 16",
        ),
        (
            "image-dir: /i\nallow-users: [x]\nallow-groups: [0]\n",
            "not a number",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nuid-map: [{inside: 0, count: 1}]\n",
            "\"outside\" is missing",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nreadonly-paths: {rel: /x}\n",
            "not an absolute path",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nbridged-network: {bridge: b, network: 10.0.0.0/40}\n",
            "not a network",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nallow-capabilities: [CAP_FLY]\n",
            "unknown capability",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nadditional-hosts: {a: 1.2.3}\n",
            "not an IP",
        ),
        (
            "image-dir: /i\nallow-users: [1]\nallow-groups: [0]\nextra: 1\n",
            "unknown key",
        ),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text:?} gave {e}");
        assert!(e.contains("sandboxes/web.yaml"), "{e}");
    }
}

#[test]
fn bridged_networks_contain_their_addresses() {
    let net = |text: &str| {
        parse(&format!(
            "{MIN}bridged-network: {{bridge: b, network: '{text}'}}\n"
        ))
        .unwrap()
        .bridged_network
        .unwrap()
    };
    let has = |b: &BridgedNetwork, ip: &str| b.contains(&ip.parse().unwrap());
    let v6 = net("fd00:1::/64");
    assert!(has(&v6, "fd00:1::5") && has(&v6, "fd00:1::ffff:1"));
    assert!(!has(&v6, "fd00:2::5") && !has(&v6, "10.0.0.1"));
    let v4 = net("10.1.0.0/16");
    assert!(has(&v4, "10.1.255.1") && !has(&v4, "10.2.0.1") && !has(&v4, "fd00:1::5"));
    let all6 = net("::/0");
    assert!(has(&all6, "fd00:9::1") && !has(&all6, "10.0.0.1"));
    let all4 = net("0.0.0.0/0");
    assert!(has(&all4, "192.0.2.1") && !has(&all4, "::1"));
}

#[test]
fn network_prefixes_up_to_the_address_size() {
    let net = |text: &str| {
        parse(&format!(
            "{MIN}bridged-network: {{bridge: b, network: '{text}'}}\n"
        ))
        .map(|s| s.bridged_network.map(|b| b.network.1))
        .map_err(|e| e.to_string())
    };
    assert_eq!(net("10.0.0.1/32"), Ok(Some(32)));
    assert_eq!(net("fd00::1/128"), Ok(Some(128)));
    for bad in ["10.0.0.1/33", "fd00::1/129", "10.0.0.0", "10.0.0.0/x"] {
        let e = net(bad).unwrap_err();
        assert!(
            e.contains("is not a network like 10.0.0.0/16"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn additional_host_names() {
    let s = parse(&format!(
        "{MIN}additional-hosts: {{db-1.local_x: 10.0.0.5}}\n"
    ))
    .unwrap();
    assert_eq!(s.additional_hosts.len(), 1);
    for bad in ["'a b'", "''", "'a/b'", "'a:b'"] {
        let e = parse(&format!("{MIN}additional-hosts: {{{bad}: 10.0.0.5}}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a host name"), "{bad}: {e}");
    }
}
