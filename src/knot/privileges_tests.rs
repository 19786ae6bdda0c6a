//! The order and values of the id and capability steps, through the
//! recording fake (no root).

use super::*;
use crate::knot::seam::fake::Fake;

fn spec(capabilities: &[&str]) -> InstanceSpec {
    let mut s = crate::spec::tests::sample("");
    (s.uid, s.gid, s.groups) = (1000, 1001, vec![27, 100]);
    s.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
    s
}

const NO_CAPS: [&str; 4] = [
    "drop_whole_bounding_set",
    "set_ids 1000 1001 [27, 100]",
    "clear_all_sets",
    "set_no_new_privs",
];

const SOME_CAPS: [&str; 5] = [
    "drop_bounding [\"CAP_NET_BIND_SERVICE\"]",
    "set_keepcaps true",
    "set_ids 1000 1001 [27, 100]",
    "set_exactly [\"CAP_NET_BIND_SERVICE\"]",
    "set_no_new_privs",
];

#[test]
fn without_capabilities_the_bounding_set_goes_first_and_no_new_privs_last() {
    let k = Fake::new();
    drop_privileges(&k, &spec(&[])).unwrap();
    assert_eq!(k.lines(), NO_CAPS);
}

#[test]
fn allowed_capabilities_are_kept_across_the_setuid_and_set_exactly() {
    let k = Fake::new();
    drop_privileges(&k, &spec(&["CAP_NET_BIND_SERVICE"])).unwrap();
    assert_eq!(k.lines(), SOME_CAPS);
}

#[test]
fn a_failing_step_stops_the_rest_and_keeps_its_errno() {
    for (caps, steps) in [
        (vec![], &NO_CAPS[..]),
        (vec!["CAP_NET_BIND_SERVICE"], &SOME_CAPS[..]),
    ] {
        for n in 0..steps.len() {
            let k = Fake::new();
            k.fail_nth(n, libc::EPERM);
            let e = drop_privileges(&k, &spec(&caps)).unwrap_err();
            assert_eq!(e.errno(), Some(libc::EPERM), "{}", steps[n]);
            assert_eq!(k.lines(), steps[..=n], "nothing after {}", steps[n]);
        }
    }
}

const JOINED: [&str; 7] = [
    "drop_whole_bounding_set",
    "set_keepcaps true",
    "set_ids 1000 1001 [27]",
    "set_dumpable false",
    "clear_all_sets",
    "set_keepcaps false",
    "set_no_new_privs",
];

#[test]
fn a_joined_command_is_non_dumpable_again_before_its_capabilities_go() {
    let k = Fake::new();
    drop_for_join(&k, 1000, 1001, &[27]).unwrap();
    assert_eq!(k.lines(), JOINED);
    for n in 0..JOINED.len() {
        let k = Fake::new();
        k.fail_nth(n, libc::EPERM);
        let e = drop_for_join(&k, 1000, 1001, &[27]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EPERM), "{}", JOINED[n]);
        assert_eq!(k.lines(), JOINED[..=n], "nothing after {}", JOINED[n]);
    }
}
