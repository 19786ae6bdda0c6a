use super::*;
use crate::tree::lifecycle::State;
use std::time::Duration;

fn want(list: &[(&str, &str, &str)]) -> BTreeMap<String, Want> {
    list.iter()
        .map(|(n, p, h)| {
            (
                n.to_string(),
                Want {
                    process: ("sb".into(), p.to_string()),
                    hash: h.to_string(),
                    min_ready: Duration::ZERO,
                    generation: 0,
                },
            )
        })
        .collect()
}

fn have(n: &str, p: &str, h: &str, state: State) -> (String, Have) {
    (
        n.to_string(),
        Have {
            process: ("sb".into(), p.to_string()),
            hash: h.to_string(),
            generation: 0,
            state,
            stopping: false,
            replacing: false,
            fresh_replacement: false,
        },
    )
}

#[test]
fn a_rollout_is_in_progress_until_every_instance_runs_the_wanted_config_proven() {
    let w = want(&[
        ("sb/a.0", "a", "new"),
        ("sb/a.1", "a", "new"),
        ("sb/b.0", "b", "x"),
    ]);
    let mut h: BTreeMap<String, Have> = [
        have("sb/a.0", "a", "new", State::Running),
        have("sb/a.1", "a", "old", State::Running),
        have("sb/b.0", "b", "x", State::Running),
    ]
    .into();
    let key = ("sb".to_string(), "a".to_string());
    assert_eq!(in_progress(&w, &h), [key.clone()].into());
    let i = infos(&w, &h, &BTreeMap::new());
    assert_eq!(i.len(), 1);
    assert_eq!(
        (i[0].state.as_str(), i[0].done, i[0].total),
        ("in-progress", 1, 2)
    );
    assert_eq!(i[0].instance, None);
    // a.1 replaced, but not proven yet: still in progress.
    h.insert("sb/a.1".into(), {
        let mut x = have("sb/a.1", "a", "new", State::Running).1;
        x.fresh_replacement = true;
        x
    });
    assert_eq!(infos(&w, &h, &BTreeMap::new())[0].done, 1);
    // Proven: done, and no rollout is listed.
    h.get_mut("sb/a.1").unwrap().fresh_replacement = false;
    assert!(in_progress(&w, &h).is_empty());
    assert!(infos(&w, &h, &BTreeMap::new()).is_empty());
}

#[test]
fn a_stopped_rollout_is_listed_with_its_instance_and_reason_until_the_config_changes() {
    let w = want(&[("sb/a.0", "a", "new"), ("sb/a.1", "a", "new")]);
    let h: BTreeMap<String, Have> = [
        have("sb/a.0", "a", "new", State::Backoff),
        have("sb/a.1", "a", "old", State::Running),
    ]
    .into();
    let halt = Halt::new(
        "sb/a.0",
        ("new", 0),
        "exited with status 1".into(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1),
    );
    assert!(halt.holds(&w));
    let halted: BTreeMap<ProcKey, Halt> = [(("sb".into(), "a".into()), halt.clone())].into();
    let i = infos(&w, &h, &halted);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].state, "stopped");
    assert_eq!(i[0].instance.as_deref(), Some("sb/a.0"));
    assert_eq!(i[0].reason.as_deref(), Some("exited with status 1"));
    assert_eq!(i[0].since.as_deref(), Some("1970-01-01T00:00:01Z"));
    assert_eq!((i[0].done, i[0].total), (0, 2));
    // A new config for the instance, or the instance removed: no longer.
    assert!(!halt.holds(&want(&[("sb/a.0", "a", "newer")])));
    assert!(!halt.holds(&want(&[("sb/a.1", "a", "new")])));
}

/// A restart is a rollout too: listed while an instance runs an older
/// generation, and a stopped restart holds until the next restart (a
/// higher generation) or config change.
#[test]
fn a_restart_is_in_progress_until_every_instance_runs_the_wanted_generation() {
    let mut w = want(&[("sb/a.0", "a", "h"), ("sb/a.1", "a", "h")]);
    let mut h: BTreeMap<String, Have> = [
        have("sb/a.0", "a", "h", State::Running),
        have("sb/a.1", "a", "h", State::Running),
    ]
    .into();
    assert!(in_progress(&w, &h).is_empty());
    for v in w.values_mut() {
        v.generation = 1;
    }
    let i = infos(&w, &h, &BTreeMap::new());
    assert_eq!(
        (i[0].state.as_str(), i[0].done, i[0].total),
        ("in-progress", 0, 2)
    );
    h.get_mut("sb/a.0").unwrap().generation = 1;
    assert_eq!(infos(&w, &h, &BTreeMap::new())[0].done, 1);
    h.get_mut("sb/a.1").unwrap().generation = 1;
    assert!(infos(&w, &h, &BTreeMap::new()).is_empty());
    let halt = Halt::new("sb/a.0", ("h", 1), "x".into(), SystemTime::UNIX_EPOCH);
    assert!(halt.holds(&w));
    w.get_mut("sb/a.0").unwrap().generation = 2;
    assert!(!halt.holds(&w));
}
