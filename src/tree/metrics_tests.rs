use super::*;
use std::time::Duration;

fn key(s: &str, p: &str) -> ProcKey {
    (s.to_string(), p.to_string())
}

fn input(counters: &BTreeMap<ProcKey, Counters>) -> Input<'_> {
    Input {
        counters,
        desired: [(key("sb", "web"), 3), (key("sb", "new"), 2)].into(),
        by_state: [
            ((key("sb", "web"), State::Running), 2),
            ((key("sb", "web"), State::Backoff), 1),
        ]
        .into(),
        rolling: [key("sb", "web")].into(),
        halted: BTreeSet::new(),
        config_errors: [("/etc/cairn/processes/sb.yaml".to_string(), 2)].into(),
        last_reload: Some((UNIX_EPOCH + Duration::from_millis(1_500), false)),
        unknown_children: 4,
        version: "0.1.0 (abc)",
        started: UNIX_EPOCH + Duration::from_secs(7),
        upgrades: 3,
    }
}

#[test]
fn every_process_has_every_series_and_no_row_sums_the_others() {
    let c: BTreeMap<ProcKey, Counters> = [(
        key("sb", "web"),
        Counters {
            started: 3,
            deaths: 2,
            failures: 1,
            refused: 1,
            rollouts_stopped: 2,
            restarts: 2,
            oom_kills: 1,
            health_kills: 1,
            notify_refused: 4,
        },
    )]
    .into();
    let m = render(&input(&c));
    for line in [
        "cairn_started_total{sandbox=\"sb\",process=\"web\"} 3",
        "cairn_restarts_total{sandbox=\"sb\",process=\"web\"} 2",
        "cairn_oom_kills_total{sandbox=\"sb\",process=\"web\"} 1",
        "cairn_health_kills_total{sandbox=\"sb\",process=\"web\"} 1",
        "cairn_notify_refused_total{sandbox=\"sb\",process=\"web\"} 4",
        "cairn_refused_starts_total{sandbox=\"sb\",process=\"web\"} 1",
        "cairn_rollouts_stopped_total{sandbox=\"sb\",process=\"web\"} 2",
        // A process with no count yet has all its series, at 0.
        "cairn_started_total{sandbox=\"sb\",process=\"new\"} 0",
        "cairn_failures_total{sandbox=\"sb\",process=\"new\"} 0",
        "cairn_desired_instances{sandbox=\"sb\",process=\"web\"} 3",
        "cairn_desired_instances{sandbox=\"sb\",process=\"new\"} 2",
        "cairn_instances{sandbox=\"sb\",process=\"web\",state=\"running\"} 2",
        "cairn_instances{sandbox=\"sb\",process=\"web\",state=\"backoff\"} 1",
        "cairn_instances{sandbox=\"sb\",process=\"web\",state=\"failed\"} 0",
        "cairn_instances{sandbox=\"sb\",process=\"new\",state=\"starting\"} 0",
        "cairn_running{sandbox=\"sb\",process=\"web\"} 2",
        "cairn_running{sandbox=\"sb\",process=\"new\"} 0",
        "cairn_rollout_in_progress{sandbox=\"sb\",process=\"web\"} 1",
        "cairn_rollout_in_progress{sandbox=\"sb\",process=\"new\"} 0",
        "cairn_rollout_stopped{sandbox=\"sb\",process=\"web\"} 0",
        "cairn_config_errors{file=\"/etc/cairn/processes/sb.yaml\"} 2",
        "cairn_last_reload_success 0",
        "cairn_last_reload_timestamp_seconds 1.500",
        "cairn_unknown_children_total 4",
        "cairn_upgrades_total 3",
        "cairn_start_time_seconds 7.000",
        "cairn_build_info{version=\"0.1.0 (abc)\"} 1",
        "# TYPE cairn_deaths_total counter",
        "# TYPE cairn_instances gauge",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing in\n{m}");
    }
    assert!(!m.contains("sandbox=\"\""), "a total row:\n{m}");
    // Each family's HELP and TYPE come once.
    let types = m.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let names: BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split(' ').nth(2))
        .collect();
    assert_eq!(types, names.len());
}

#[test]
fn labels_are_escaped() {
    assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    let c = BTreeMap::new();
    let mut i = input(&c);
    i.desired = [(key("s\"b", "w\nx"), 1)].into();
    let m = render(&i);
    assert!(
        m.contains("cairn_desired_instances{sandbox=\"s\\\"b\",process=\"w\\nx\"} 1"),
        "{m}"
    );
}

#[test]
fn the_file_of_a_config_problem() {
    assert_eq!(
        problem_file("/etc/c/p.yaml:3: web.instances: bad"),
        "/etc/c/p.yaml"
    );
    assert_eq!(problem_file("/etc/c/p.yaml: not found"), "/etc/c/p.yaml");
    assert_eq!(problem_file("/img/c.yaml:12: x"), "/img/c.yaml");
    assert_eq!(problem_file("odd"), "odd");
    // A colon in the file's name is not a line number.
    assert_eq!(problem_file("/img/a:b.yaml: not found"), "/img/a:b.yaml");
}
