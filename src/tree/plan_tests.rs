use super::*;

fn key(p: &str) -> ProcKey {
    ("sb".to_string(), p.to_string())
}

fn want(list: &[(&str, &str, &str)]) -> BTreeMap<String, Want> {
    list.iter()
        .map(|(n, p, h)| {
            (
                n.to_string(),
                Want {
                    min_ready: std::time::Duration::ZERO,
                    process: key(p),
                    hash: h.to_string(),
                    generation: 0,
                },
            )
        })
        .collect()
}

fn have(name: &str, p: &str, hash: &str, state: State) -> (String, Have) {
    (
        name.to_string(),
        Have {
            process: key(p),
            hash: hash.to_string(),
            generation: 0,
            state,
            stopping: false,
            replacing: false,
            fresh_replacement: false,
        },
    )
}

fn none() -> BTreeSet<ProcKey> {
    BTreeSet::new()
}

#[test]
fn starts_missing_and_keeps_matching() {
    let w = want(&[("sb/a.0", "a", "h1"), ("sb/a.1", "a", "h1")]);
    let h: BTreeMap<_, _> = [have("sb/a.0", "a", "h1", State::Running)].into();
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [Change::Start("sb/a.1".into())]
    );
}

#[test]
fn stops_removed_once() {
    let w = want(&[]);
    let mut h: BTreeMap<_, _> = [have("sb/a.0", "a", "h1", State::Running)].into();
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [Change::Stop("sb/a.0".into())]
    );
    h.get_mut("sb/a.0").unwrap().stopping = true;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
}

#[test]
fn frozen_process_is_left_alone() {
    let w = want(&[]);
    let h: BTreeMap<_, _> = [have("sb/a.0", "a", "h1", State::Running)].into();
    let frozen: BTreeSet<_> = [key("a")].into();
    assert!(plan(&w, &h, &frozen, &none()).is_empty());
}

#[test]
fn scale_3_to_5_to_1() {
    let h: BTreeMap<_, _> = (0..3)
        .map(|i| have(&format!("sb/a.{i}"), "a", "h", State::Running))
        .collect();
    let w5 = want(&[
        ("sb/a.0", "a", "h"),
        ("sb/a.1", "a", "h"),
        ("sb/a.2", "a", "h"),
        ("sb/a.3", "a", "h"),
        ("sb/a.4", "a", "h"),
    ]);
    assert_eq!(
        plan(&w5, &h, &none(), &none()),
        [
            Change::Start("sb/a.3".into()),
            Change::Start("sb/a.4".into())
        ]
    );
    let h5: BTreeMap<_, _> = (0..5)
        .map(|i| have(&format!("sb/a.{i}"), "a", "h", State::Running))
        .collect();
    let w1 = want(&[("sb/a.0", "a", "h")]);
    let stops: Vec<_> = (1..5).map(|i| Change::Stop(format!("sb/a.{i}"))).collect();
    assert_eq!(plan(&w1, &h5, &none(), &none()), stops);
}

#[test]
fn rolling_replaces_one_at_a_time() {
    let w = want(&[
        ("sb/a.0", "a", "new"),
        ("sb/a.1", "a", "new"),
        ("sb/a.2", "a", "new"),
        ("sb/b.0", "b", "new"),
    ]);
    let mut h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "old", State::Running),
        have("sb/a.1", "a", "old", State::Running),
        have("sb/a.2", "a", "old", State::Running),
        have("sb/b.0", "b", "old", State::Running),
    ]
    .into();
    // One per process.
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [
            Change::Replace("sb/a.0".into()),
            Change::Replace("sb/b.0".into())
        ]
    );
    // a.0 is being stopped for replacement: nothing more for `a`.
    let a0 = h.get_mut("sb/a.0").unwrap();
    a0.stopping = true;
    a0.replacing = true;
    a0.state = State::Stopping;
    h.get_mut("sb/b.0").unwrap().replacing = true;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    // a.0 came back with the new config but is still starting: wait.
    h.insert(
        "sb/a.0".into(),
        Have {
            hash: "new".into(),
            fresh_replacement: true,
            state: State::Starting,
            ..h["sb/a.0"].clone()
        },
    );
    let a0 = h.get_mut("sb/a.0").unwrap();
    a0.stopping = false;
    a0.replacing = false;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    // Running (ready) but not yet proven (min-ready): still wait.
    h.get_mut("sb/a.0").unwrap().state = State::Running;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    // Proven: next one.
    h.get_mut("sb/a.0").unwrap().fresh_replacement = false;
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [Change::Replace("sb/a.1".into())]
    );
}

#[test]
fn a_halted_rollout_replaces_nothing_that_runs() {
    let w = want(&[
        ("sb/a.0", "a", "new"),
        ("sb/a.1", "a", "new"),
        ("sb/a.2", "a", "new"),
        ("sb/b.0", "b", "new"),
    ]);
    let h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "new", State::Backoff),
        have("sb/a.1", "a", "old", State::Running),
        have("sb/a.2", "a", "old", State::Backoff),
        have("sb/b.0", "b", "old", State::Running),
    ]
    .into();
    let halted: BTreeSet<ProcKey> = [("sb".to_string(), "a".to_string())].into();
    // a.1 runs its old config; a.2 runs nothing (replaced at once, as
    // always); b's rollout is not halted.
    assert_eq!(
        plan(&w, &h, &none(), &halted),
        [
            Change::Replace("sb/a.2".into()),
            Change::Replace("sb/b.0".into())
        ]
    );
}

#[test]
fn rollout_pauses_when_replacement_does_not_come_up() {
    let w = want(&[("sb/a.0", "a", "new"), ("sb/a.1", "a", "new")]);
    let mut h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "new", State::Backoff),
        have("sb/a.1", "a", "old", State::Running),
    ]
    .into();
    h.get_mut("sb/a.0").unwrap().fresh_replacement = true;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
}

#[test]
fn idle_instances_are_replaced_at_once() {
    let w = want(&[
        ("sb/a.0", "a", "new"),
        ("sb/a.1", "a", "new"),
        ("sb/a.2", "a", "new"),
    ]);
    let h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "old", State::Backoff),
        have("sb/a.1", "a", "", State::Failed),
        have("sb/a.2", "a", "old", State::Running),
    ]
    .into();
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [
            Change::Replace("sb/a.0".into()),
            Change::Replace("sb/a.1".into()),
            Change::Replace("sb/a.2".into())
        ]
    );
}

#[test]
fn stopping_instances_are_not_touched() {
    let w = want(&[("sb/a.0", "a", "new")]);
    let mut h: BTreeMap<_, _> = [have("sb/a.0", "a", "old", State::Stopping)].into();
    h.get_mut("sb/a.0").unwrap().stopping = true;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
}

#[test]
fn unchanged_set_plans_nothing() {
    let w = want(&[("sb/a.0", "a", "h"), ("sb/b.0", "b", "h")]);
    let h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "h", State::Running),
        have("sb/b.0", "b", "h", State::Backoff),
    ]
    .into();
    assert!(plan(&w, &h, &none(), &none()).is_empty());
}

/// An instance already being replaced is never replaced again, whatever
/// state it is seen in. (The tree sets `replacing` together with a stop
/// request, so today `stopping` covers it too; the plan does not rely on
/// that.)
#[test]
fn an_instance_being_replaced_is_not_replaced_twice() {
    let w = want(&[("sb/a.0", "a", "new"), ("sb/b.0", "b", "new")]);
    let mut h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "old", State::Backoff),
        have("sb/b.0", "b", "old", State::Failed),
    ]
    .into();
    for v in h.values_mut() {
        v.replacing = true;
    }
    assert!(plan(&w, &h, &none(), &none()).is_empty());
}

/// A restart (`cairn restart`) is a higher wanted generation: with the
/// same config, the instances of a lower one are replaced one at a time,
/// by the same gate as a config change; one ahead is left alone.
#[test]
fn a_higher_wanted_generation_rolls_like_a_config_change() {
    let mut w = want(&[
        ("sb/a.0", "a", "h"),
        ("sb/a.1", "a", "h"),
        ("sb/b.0", "b", "h"),
    ]);
    let mut h: BTreeMap<_, _> = [
        have("sb/a.0", "a", "h", State::Running),
        have("sb/a.1", "a", "h", State::Running),
        have("sb/b.0", "b", "h", State::Running),
    ]
    .into();
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    for n in ["sb/a.0", "sb/a.1"] {
        w.get_mut(n).unwrap().generation = 1;
    }
    // One of `a` at a time; `b` untouched.
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [Change::Replace("sb/a.0".into())]
    );
    // a.0 came back as generation 1 but has not proven itself: wait.
    let a0 = h.get_mut("sb/a.0").unwrap();
    a0.generation = 1;
    a0.fresh_replacement = true;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    h.get_mut("sb/a.0").unwrap().fresh_replacement = false;
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [Change::Replace("sb/a.1".into())]
    );
    // Halted: nothing more that runs.
    assert!(plan(&w, &h, &none(), &[key("a")].into()).is_empty());
    // Done: nothing.
    h.get_mut("sb/a.1").unwrap().generation = 1;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    // An instance ahead of the wanted generation is current.
    h.get_mut("sb/b.0").unwrap().generation = 5;
    assert!(plan(&w, &h, &none(), &none()).is_empty());
    // A restart of an instance that runs nothing: at once.
    w.get_mut("sb/b.0").unwrap().generation = 6;
    h.get_mut("sb/b.0").unwrap().state = State::Backoff;
    w.get_mut("sb/a.0").unwrap().generation = 2;
    w.get_mut("sb/a.1").unwrap().generation = 2;
    assert_eq!(
        plan(&w, &h, &none(), &none()),
        [
            Change::Replace("sb/a.0".into()),
            Change::Replace("sb/b.0".into())
        ]
    );
}

#[test]
fn current_means_the_wanted_config_and_at_least_the_wanted_generation() {
    let w = |hash: &str, generation| Want {
        process: key("a"),
        hash: hash.into(),
        min_ready: std::time::Duration::ZERO,
        generation,
    };
    let h = |hash: &str, generation| Have {
        generation,
        ..have("sb/a.0", "a", hash, State::Running).1
    };
    assert!(current(&w("x", 0), &h("x", 0)));
    assert!(current(&w("x", 1), &h("x", 2)));
    assert!(!current(&w("x", 2), &h("x", 1)));
    assert!(!current(&w("y", 0), &h("x", 0)));
    assert!(!current(&w("y", 1), &h("x", 1)));
}
