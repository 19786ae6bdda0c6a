use std::time::UNIX_EPOCH;

use super::*;

const DAY: u64 = 86_400;

fn at(days_ago: u64) -> SystemTime {
    now() - Duration::from_secs(days_ago * DAY)
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(20_000 * DAY)
}

fn img(name: &str) -> Image {
    Image {
        name: name.into(),
        mtime: Some(at(100)),
        ..Image::default()
    }
}

fn rules(keep_days: Option<f64>, keep_recent: usize) -> Rules {
    Rules {
        keep_days,
        keep_recent,
        now: now(),
        history: History::Log(Some(at(365))),
    }
}

#[test]
fn a_running_image_stays_whatever_else_holds() {
    let i = Image {
        running: vec!["box/web.1 (stopping)".into()],
        last_used: Some(at(300)),
        ..img("old")
    };
    let v = decide(&[i], &rules(Some(0.0), 0));
    assert_eq!(v, [Verdict::Running(vec!["box/web.1 (stopping)".into()])]);
    assert_eq!(v[0].to_string(), "in use by box/web.1 (stopping)");
}

#[test]
fn reasons_to_keep_come_in_order() {
    let full = Image {
        running: vec!["pid 7 (sh)".into()],
        configured: vec!["box/web".into()],
        listed: vec!["/etc/used".into()],
        mount: Some("/srv/img/x/mnt".into()),
        last_used: Some(at(1)),
        ..img("x")
    };
    let mut i = full.clone();
    let r = rules(Some(7.0), 0);
    assert!(matches!(decide(&[i.clone()], &r)[0], Verdict::Running(_)));
    i.running.clear();
    assert_eq!(
        decide(&[i.clone()], &r)[0].to_string(),
        "configured for box/web"
    );
    i.configured.clear();
    assert_eq!(
        decide(&[i.clone()], &r)[0].to_string(),
        "listed in /etc/used"
    );
    i.listed.clear();
    assert!(matches!(decide(&[i.clone()], &r)[0], Verdict::Mount(_)));
    i.mount = None;
    assert_eq!(decide(&[i.clone()], &r)[0], Verdict::Used(at(1), Some(7.0)));
    i.last_used = Some(at(8));
    assert_eq!(decide(&[i.clone()], &r)[0], Verdict::Unused(at(8), 7.0));
    i.last_used = None;
    assert_eq!(
        decide(&[i], &r)[0],
        Verdict::Never(History::Log(Some(at(365))))
    );
}

#[test]
fn keep_days_is_a_window_back_from_now() {
    let used = |d: u64| Image {
        last_used: Some(at(d)),
        ..img("i")
    };
    let r = rules(Some(7.0), 0);
    assert!(!decide(&[used(6)], &r)[0].removes());
    assert!(!decide(&[used(7)], &r)[0].removes(), "the edge is kept");
    assert!(decide(&[used(8)], &r)[0].removes());
    // Fractions of a day, and 0: the log keeps nothing from before now.
    assert!(decide(&[used(1)], &rules(Some(0.5), 0))[0].removes());
    assert!(!decide(&[used(0)], &rules(Some(0.0), 0))[0].removes());
    assert!(decide(&[used(1)], &rules(Some(0.0), 0))[0].removes());
    // A window larger than time itself keeps everything.
    assert!(!decide(&[used(10_000)], &rules(Some(1e12), 0))[0].removes());
}

#[test]
fn without_keep_days_everything_the_log_names_stays() {
    let i = Image {
        last_used: Some(at(3000)),
        ..img("i")
    };
    let v = decide(&[i, img("never")], &rules(None, 0));
    assert_eq!(v[0], Verdict::Used(at(3000), None));
    assert!(v[1].removes());
}

#[test]
fn keep_recent_keeps_the_newest_of_what_would_go() {
    let with = |name: &str, d: u64| Image {
        mtime: Some(at(d)),
        ..img(name)
    };
    let images = [
        with("a", 4),
        with("b", 1),
        Image {
            configured: vec!["box/w".into()],
            ..with("used", 0)
        },
        with("c", 3),
        with("d", 2),
    ];
    let v = decide(&images, &rules(Some(0.0), 2));
    let kept: Vec<&str> = images
        .iter()
        .zip(&v)
        .filter(|(_, v)| matches!(v, Verdict::Recent(..)))
        .map(|(i, _)| i.name.as_str())
        .collect();
    // The newest unused are b and d: `used` is kept anyway and not counted.
    assert_eq!(kept, ["b", "d"]);
    assert!(v[0].removes() && v[3].removes());
    assert_eq!(
        v[1].to_string(),
        format!(
            "one of the 2 newest unused (--keep-recent 2), modified {}",
            rfc3339(at(1))
        )
    );
    // More than there are: all stay.
    assert!(
        decide(&images, &rules(Some(0.0), 10))
            .iter()
            .all(|v| !v.removes())
    );
}

#[test]
fn an_image_without_mtime_counts_as_newest() {
    let images = [
        img("old"),
        Image {
            mtime: None,
            ..img("unknown")
        },
    ];
    let v = decide(&images, &rules(Some(0.0), 1));
    assert!(v[0].removes());
    assert!(matches!(v[1], Verdict::Recent(1, None)));
}

#[test]
fn reasons_read_as_sentences() {
    let s = |v: Verdict| v.to_string();
    assert_eq!(
        s(Verdict::Unused(at(10), 7.0)),
        format!(
            "unused since {} per the config log, more than 7 days ago (--keep-days 7)",
            rfc3339(at(10))
        )
    );
    assert_eq!(
        s(Verdict::Never(History::Off)),
        "not in use (no config log: config-log-dir is null)"
    );
    assert_eq!(
        s(Verdict::Never(History::Log(None))),
        "never used per the config log (no line of it names this image-dir)"
    );
    assert_eq!(
        s(Verdict::Running(vec!["pid 5 (a\nb)".into()])),
        "in use by pid 5 (a\\nb)",
        "text from /proc is escaped"
    );
}
