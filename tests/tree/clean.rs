//! `cairn clean`: which images go and which stay (configured, running, a
//! running one whose config was switched away, used within `--keep-days`
//! per the config log, listed in `used-images-list`, `--keep-recent`,
//! `auto-clean: false`), `--dry-run`, and the attacks a removal must
//! withstand: a symlink in an image to a host dir, a directory swapped for
//! such a symlink while the removal runs, a mount inside an image, an
//! image-dir someone other than root could change. The symlink, the race
//! and the mount are first shown to work against a naive removal.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

const DAY: u64 = 86_400;

/// RFC 3339 UTC of `secs_ago` seconds before now, as the tree writes it.
fn ago(secs_ago: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        - secs_ago;
    let (days, rem) = ((t / DAY) as i64, t % DAY);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `cairn clean -c MASTER ARGS...`.
fn clean(fx: &Fx, args: &[&str]) -> std::process::Output {
    let mut a = vec!["clean", "-c"];
    let m = fx.master_path();
    a.push(&m);
    a.extend_from_slice(args);
    let mut cmd = Command::new(cairn_bin());
    cmd.args(&a).env_remove("RUST_BACKTRACE");
    output_within(&mut cmd, None, Duration::from_secs(60))
}

/// The paths after `prefix` ("would remove", "removed", "keep") in the
/// output, each with its reason.
fn lines_of(out: &str, prefix: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .filter_map(|l| l.split_once(": "))
        .filter(|(p, _)| p.starts_with('/'))
        .map(|(p, why)| (p.to_string(), why.to_string()))
        .collect()
}

/// Every path below `dir`, with its kind and, for files, content: to see
/// that nothing changed.
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let t = fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(dir).expect("below").display().to_string();
            if t.is_dir() {
                out.insert(format!("{rel}/"));
                todo.push(p);
            } else if t.file_type().is_symlink() {
                out.insert(format!(
                    "{rel} -> {}",
                    fs::read_link(&p).expect("link").display()
                ));
            } else {
                out.insert(format!("{rel} = {:?}", fs::read(&p).expect("read")));
            }
        }
    }
    out
}

/// An image that is not run: a dir with a few files.
fn junk_image(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).expect("mkdir");
    fs::write(dir.join("etc/hello"), "hello").expect("write");
    fs::write(dir.join("data"), "data").expect("write");
}

/// Set a dir's mtime.
fn set_mtime(dir: &Path, secs_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs_ago);
    fs::File::open(dir)
        .expect("open dir")
        .set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .expect("set times");
}

fn sandbox(fx: &Fx, extra: &str) {
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {}\nallow-users: [1000-1999]\nallow-groups: [1000-1999]\n\
             min-restart-timeout: 0\n{extra}",
            fx.set.s("images"),
        ),
    );
}

/// A config-log line as the tree writes it, with a spec cut down to what
/// clean reads.
fn log_line(fx: &Fx, secs_ago: u64, instance: &str, image: &str) -> String {
    format!(
        "{} {instance} 0123456789abcdef {}\n",
        ago(secs_ago),
        serde_json::json!({"name": instance, "image": image, "image_dir": fx.set.s("images")})
    )
}

/// Everything a config set uses stays; only the unused images go, and a
/// dry run lists exactly those and removes nothing. Kept: `bb`
/// (configured, running), `sw-b` (configured), `sw-a` (its config was
/// switched away to `sw-b`, but `box/sw.1` still runs it: the rollout
/// waits out `min-ready`), `recent` (per the config log used until 2 days
/// ago), `listed` (in `used-images-list`). Removed: `old` (used until 10
/// days ago), `never`. A file, a symlink and a dot-name in the image-dir
/// are left alone.
#[test]
fn dry_run_lists_the_unused_images_and_clean_keeps_every_used_one() {
    let mut fx = fixture!();
    let busybox = common::static_busybox().expect("checked by the fixture");
    fx.master("");
    sandbox(
        &fx,
        &format!("used-images-list: {}\n", fx.set.s("used-images.txt")),
    );
    fx.set.write("used-images.txt", "listed\n");
    for i in ["sw-a", "sw-b", "tool"] {
        make_busybox_image(&busybox, &fx.set.p(&format!("images/{i}")));
        fx.set
            .write(&format!("images/{i}/config/sw.yaml"), sleeper(""));
    }
    fx.set.write(
        "images/tool/config/tool.yaml",
        sleeper("").replace("kind: Daemon", "kind: Command"),
    );
    for i in ["never", "old", "recent", "listed", ".hidden"] {
        junk_image(&fx.set.p(&format!("images/{i}")));
    }
    fx.set.write("images/notes.txt", "not an image");
    symlink("bb", fx.set.p("images/ln")).expect("symlink");
    fx.container("web", &sleeper(""));
    // The config log of earlier days: `box/gone.0` ran `old` 10 days ago;
    // `box/was.0` ran `recent` from 30 days ago until 2 days ago.
    fs::create_dir_all(fx.set.p("log/config")).expect("mkdir");
    let log = fx.set.write(
        "log/config/box.log",
        [
            log_line(&fx, 30 * DAY, "box/was.0", "recent"),
            log_line(&fx, 10 * DAY, "box/gone.0", "old"),
            log_line(&fx, 2 * DAY, "box/was.0", "bb"),
        ]
        .concat(),
    );
    fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let procs = |sw: &str| {
        format!(
            "web:\n  image: bb\n  config: /config/web.yaml\n  instances: 1\n\
             tool:\n  kind: Command\n  image: tool\n  config: /config/tool.yaml\n\
             sw:\n  image: {sw}\n  config: /config/sw.yaml\n  instances: 2\n  min-ready: 600\n"
        )
    };
    fx.set.write("processes/box.yaml", procs("sw-a"));
    fx.start();
    fx.wait_ps("all running", |ps| {
        all_running(ps, &["box/web.0", "box/sw.0", "box/sw.1"])
    });
    let out = fx.switch("new.yaml", &procs("sw-b"));
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = fx.wait_ps("sw.0 on sw-b, sw.1 still on sw-a", |ps| {
        all_running(ps, &["box/web.0", "box/sw.0", "box/sw.1"])
            && inst(ps, "box/sw.0").is_some_and(|i| i["image"] == "sw-b")
            && inst(ps, "box/sw.1").is_some_and(|i| i["image"] == "sw-a")
    });
    let sw1 = pids(&ps, "box/sw.1");
    let img = |n: &str| fx.set.s(&format!("images/{n}"));

    let before = listing(&fx.set.p("images"));
    let out = clean(&fx, &["--dry-run", "--keep-days", "7"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let going = lines_of(&text, "would remove");
    assert_eq!(
        going.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([img("never"), img("old")]),
        "{text}"
    );
    assert!(
        going[&img("old")].starts_with("unused since ")
            && going[&img("old")]
                .ends_with(" per the config log, more than 7 days ago (--keep-days 7)"),
        "{text}"
    );
    assert!(
        going[&img("never")].contains("never used per the config log"),
        "{text}"
    );
    let kept = lines_of(&text, "keep");
    assert_eq!(kept.len(), 6, "{text}");
    assert_eq!(kept[&img("tool")], "configured for box/tool", "{text}");
    assert!(
        kept[&img("bb")].starts_with("in use by box/web.0 (running, state.json), pid "),
        "{text}"
    );
    assert!(
        kept[&img("sw-b")].starts_with("in use by box/sw.0 (running"),
        "{text}"
    );
    let sw_a = &kept[&img("sw-a")];
    assert!(sw_a.contains("box/sw.1 (running, state.json)"), "{text}");
    assert!(sw_a.contains(&format!("pid {}", sw1.0)), "{text}");
    assert!(kept[&img("recent")].starts_with("used until"), "{text}");
    assert!(
        kept[&img("recent")].contains("within --keep-days 7"),
        "{text}"
    );
    assert_eq!(
        kept[&img("listed")],
        format!("listed in {}", fx.set.s("used-images.txt")),
        "{text}"
    );
    assert!(
        text.contains("would remove 2 images, keep 6 (dry run: nothing was removed)"),
        "{text}"
    );
    assert_eq!(
        listing(&fx.set.p("images")),
        before,
        "the dry run changed the image-dir"
    );

    let out = clean(&fx, &["--keep-days", "7"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        lines_of(&text, "removed")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([img("never"), img("old")]),
        "{text}"
    );
    let left: BTreeSet<String> = fs::read_dir(fx.set.p("images"))
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        [
            "bb",
            "sw-a",
            "sw-b",
            "tool",
            "recent",
            "listed",
            ".hidden",
            "notes.txt",
            "ln"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
    );

    // With a window of one day, `recent` (last used 2 days ago) goes; the
    // config log also shows `sw-a` out of use since the switch, and a
    // window of 0 days keeps nothing for the log's sake: only the running
    // instance keeps it.
    let out = clean(&fx, &["--keep-days", "0"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        lines_of(&text, "removed")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([img("recent")]),
        "{text}"
    );
    assert!(
        lines_of(&text, "keep")[&img("sw-a")].contains("box/sw.1"),
        "{text}"
    );
    for i in ["bb", "sw-a", "sw-b", "tool"] {
        assert!(
            fx.set.p(&format!("images/{i}/bin/busybox")).is_file(),
            "{i}"
        );
    }
    let after = fx.ps();
    for n in ["box/web.0", "box/sw.0", "box/sw.1"] {
        assert_eq!(pids(&after, n), pids(&ps, n), "{n} was disturbed");
    }
}

/// `--keep-recent N` keeps the N newest (by mtime) of the images that
/// would go.
#[test]
fn keep_recent_keeps_the_newest_unused_images() {
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    for (name, days) in [("u1", 4), ("u2", 3), ("u3", 2), ("u4", 1)] {
        let dir = fx.set.p(&format!("images/{name}"));
        junk_image(&dir);
        set_mtime(&dir, days * DAY);
    }
    let img = |n: &str| fx.set.s(&format!("images/{n}"));
    let out = clean(&fx, &["--dry-run", "--keep-recent", "2"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        lines_of(&text, "would remove")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([img("u1"), img("u2")]),
        "{text}"
    );
    let kept = lines_of(&text, "keep");
    for n in ["u3", "u4"] {
        assert!(
            kept[&img(n)].starts_with("one of the 2 newest unused (--keep-recent 2), modified "),
            "{text}"
        );
    }
    assert!(
        lines_of(&text, "would remove")[&img("u1")]
            .contains("not in use (no config log: config-log-dir is null)"),
        "{text}"
    );
    let out = clean(&fx, &["--keep-recent", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (n, there) in [
        ("u1", false),
        ("u2", false),
        ("u3", true),
        ("u4", true),
        ("bb", true),
    ] {
        assert_eq!(fx.set.p(&format!("images/{n}")).exists(), there, "{n}");
    }
}

/// With `image-dir-levels: 2` an image is two dirs deep: each is judged
/// on its own, and a first-level dir emptied by the clean goes too.
#[test]
fn image_dir_levels_2_names_images_two_deep() {
    let fx = fixture!();
    // The fixture's level-1 image has no place here.
    fs::remove_dir_all(fx.set.p("images/bb")).expect("the test's own dir");
    sandbox(&fx, "image-dir-levels: 2\n");
    fx.set.write(
        "processes/box.yaml",
        "web:\n  image: app/v2\n  config: /config/web.yaml\n",
    );
    for i in ["app/v1", "app/v2", "gone/v1", "gone/v2", "app/.upload"] {
        junk_image(&fx.set.p(&format!("images/{i}")));
    }
    let img = |n: &str| fx.set.s(&format!("images/{n}"));
    let out = clean(&fx, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        lines_of(&text, "removed")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([img("app/v1"), img("gone/v1"), img("gone/v2")]),
        "{text}"
    );
    assert_eq!(
        lines_of(&text, "keep")[&img("app/v2")],
        "configured for box/web"
    );
    assert!(!fx.set.p("images/gone").exists(), "an emptied level stays");
    assert!(fx.set.p("images/app/v2/etc/hello").is_file());
    assert!(fx.set.p("images/app/.upload/etc/hello").is_file());
}

/// `auto-clean: false` leaves a sandbox's image-dir alone, and so does a
/// disagreement between two sandboxes that share one image-dir (as
/// lithos_clean did since 0.14.2).
#[test]
fn auto_clean_false_leaves_the_image_dir_alone() {
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    sandbox(&fx, "auto-clean: false\n");
    junk_image(&fx.set.p("images/junk"));
    let before = listing(&fx.set.p("images"));
    let images = fx.set.s("images");
    for args in [&["--dry-run"][..], &[]] {
        let out = clean(&fx, args);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
        assert!(
            text.contains(&format!("skip {images}: auto-clean is false (sandbox box)")),
            "{text}"
        );
        assert!(lines_of(&text, "would remove").is_empty(), "{text}");
        assert_eq!(listing(&fx.set.p("images")), before);
    }
    // A second sandbox on the same dir (spelled differently) that would
    // clean it: they disagree, the dir stays.
    fx.set.write(
        "sandboxes/other.yaml",
        format!(
            "image-dir: {}/./\nallow-users: [1000]\nallow-groups: [1000]\n",
            fx.set.s("images")
        ),
    );
    let out = clean(&fx, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("its sandboxes disagree on auto-clean (true: other; false: box); left alone"),
        "{text}"
    );
    assert_eq!(listing(&fx.set.p("images")), before);
}

/// An image-dir that someone other than root could change is refused, and
/// nothing anywhere is removed.
#[test]
fn an_image_dir_not_roots_alone_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    junk_image(&fx.set.p("images/junk"));
    let images = fx.set.p("images");
    for (mode, owner, why) in [
        (0o777, 0, "writable by group and others"),
        (0o755, 1000, "owned by uid 1000, not root"),
    ] {
        fs::set_permissions(&images, fs::Permissions::from_mode(mode)).expect("chmod");
        common::chown(&images, owner, owner);
        let out = clean(&fx, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&images.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(err.contains("nothing was removed"), "{err}");
        assert!(images.join("junk/etc/hello").is_file());
    }
}

/// A config log that cannot be read (a line the tree did not write) could
/// hide a use: nothing is removed, and the error names the file and line.
#[test]
fn a_config_log_that_cannot_be_read_removes_nothing() {
    let fx = fixture!();
    fx.master("");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    junk_image(&fx.set.p("images/junk"));
    fs::create_dir_all(fx.set.p("log/config")).expect("mkdir");
    let log = fx.set.write(
        "log/config/box.log",
        format!("{}garbage\n", log_line(&fx, DAY, "box/web.0", "bb")),
    );
    fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let out = clean(&fx, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("config log {}:2: ", log.display())),
        "{err}"
    );
    assert!(err.contains("nothing was removed"), "{err}");
    assert!(fx.set.p("images/junk/etc/hello").is_file());
}

/// lithos_tree's own config log lines (`TIME {the sandbox's process
/// config}`), in a config-log-dir shared with lithos, count too: an image
/// is in use from the line that names it to the line that drops it.
#[test]
fn lithos_config_log_lines_count_as_use() {
    let fx = fixture!();
    fx.master("");
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    junk_image(&fx.set.p("images/legacy"));
    fs::create_dir_all(fx.set.p("log/config")).expect("mkdir");
    let dropped = ago(2 * DAY);
    let log = fx.set.write(
        "log/config/box.log",
        format!(
            "{} {}\n{dropped} {{}}\n",
            ago(10 * DAY),
            r#"{"web":{"kind":"Daemon","image":"legacy","config":"/config/web.yaml","instances":1}}"#,
        ),
    );
    fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let legacy = fx.set.s("images/legacy");
    let out = clean(&fx, &["--dry-run", "--keep-days", "3"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        lines_of(&text, "keep")[&legacy],
        format!("used until {dropped} per the config log, within --keep-days 3"),
        "{text}"
    );
    let out = clean(&fx, &["--keep-days", "1"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(lines_of(&text, "removed").contains_key(&legacy), "{text}");
}

// ---------------------------------------------------------------------------
// Attacks.

/// A path-based recursive removal that follows symlinks to directories
/// (`stat` rather than `lstat`), as a careless `rm -r` of an image would.
fn naive_following_remove(dir: &Path) {
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
            naive_following_remove(&p);
            let _ = fs::remove_dir(&p).or_else(|_| fs::remove_file(&p));
        } else {
            let _ = fs::remove_file(&p);
        }
    }
}

/// A canary dir with two files; true while both are intact.
fn canary(dir: &Path) -> impl Fn() -> bool + use<> {
    fs::create_dir_all(dir.join("sub")).expect("mkdir");
    fs::write(dir.join("keep"), "canary").expect("write");
    fs::write(dir.join("sub/keep"), "canary").expect("write");
    let dir = dir.to_path_buf();
    move || {
        fs::read_to_string(dir.join("keep")).is_ok_and(|s| s == "canary")
            && fs::read_to_string(dir.join("sub/keep")).is_ok_and(|s| s == "canary")
    }
}

/// Symlinks in an image that lead to a host dir (absolute, relative, to
/// the dir and to a file in it, nested) are removed themselves; what they
/// name is untouched. The same layout does wipe the canary through a
/// removal that follows symlinks.
#[test]
fn symlinks_in_an_unused_image_are_removed_not_followed() {
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    let plant = |image: &Path, target: &Path| {
        junk_image(image);
        fs::create_dir_all(image.join("deep/er")).expect("mkdir");
        symlink(target, image.join("to-host")).expect("symlink");
        symlink(target, image.join("deep/er/to-host")).expect("symlink");
        symlink(target.join("keep"), image.join("to-file")).expect("symlink");
        let up = "../".repeat(image.components().count());
        symlink(
            format!(
                "{up}{}",
                target.display().to_string().trim_start_matches('/')
            ),
            image.join("relative"),
        )
        .expect("symlink");
    };
    // Without cairn: the attack works.
    let naive_ok = canary(&fx.set.p("canary-naive"));
    plant(&fx.set.p("naive/victim"), &fx.set.p("canary-naive"));
    naive_following_remove(&fx.set.p("naive/victim"));
    assert!(
        !naive_ok(),
        "the naive removal should have emptied its canary"
    );

    let ok = canary(&fx.set.p("canary"));
    plant(&fx.set.p("images/victim"), &fx.set.p("canary"));
    let out = clean(&fx, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        lines_of(&text, "removed").contains_key(&fx.set.s("images/victim")),
        "{text}"
    );
    assert!(!fx.set.p("images/victim").exists());
    assert!(ok(), "the canary was touched");
}

/// A thread that, again and again, replaces a directory of an image (or
/// the image itself) by a symlink to the canary and then puts it back, as
/// the image's owner could. It follows the image when clean renames it
/// (`.cairn-clean.*`), and counts the swaps and how often its symlink was
/// gone before it took it back (removed by clean: the link, not what it
/// names).
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    links_taken: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Where the image is now: `images/NAME` while it is a dir, else the dir
/// clean renamed it to.
fn image_now(images: &Path, name: &str) -> Option<PathBuf> {
    let p = images.join(name);
    if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        return Some(p);
    }
    fs::read_dir(images).ok()?.flatten().find_map(|e| {
        let ok = e.file_name().to_string_lossy().starts_with(".cairn-clean.")
            && e.file_type().is_ok_and(|t| t.is_dir());
        ok.then(|| e.path())
    })
}

impl Swapper {
    fn start(images: PathBuf, name: &str, inner: Vec<String>, target: PathBuf) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let links_taken = Arc::new(AtomicU64::new(0));
        let (s, n, t) = (stop.clone(), swaps.clone(), links_taken.clone());
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let Some(base) = image_now(&images, &name) else {
                    std::thread::yield_now();
                    continue;
                };
                // Now and then the image itself, else one of its dirs.
                let whole = i % (inner.len() + 1) == 0;
                let d = if whole {
                    images.join(&name)
                } else {
                    base.join(&inner[i % inner.len()])
                };
                let real = d.with_file_name(format!(
                    ".{}.real",
                    d.file_name().expect("name").to_string_lossy()
                ));
                if fs::rename(&d, &real).is_err() {
                    continue;
                }
                if symlink(&target, &d).is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                    let gone = fs::symlink_metadata(&d).is_err();
                    let parent_there = d.parent().is_some_and(Path::is_dir);
                    // (The image itself may be gone for a moment because
                    // clean renamed it: not counted.)
                    if gone && parent_there && !whole {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = fs::remove_file(&d);
                }
                let _ = fs::rename(&real, &d);
            }
        });
        Swapper {
            stop,
            swaps,
            links_taken,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.swaps.load(Ordering::Relaxed),
            self.links_taken.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An image with many dirs, each holding a few files; their names.
fn wide_image(dir: &Path, dirs: usize, files: usize) -> Vec<String> {
    (0..dirs)
        .map(|i| {
            let name = format!("d{i:04}");
            let d = dir.join(&name);
            fs::create_dir_all(&d).expect("mkdir");
            for f in 0..files {
                fs::write(d.join(format!("f{f}")), "x").expect("write");
            }
            name
        })
        .collect()
}

/// A directory of an unused image swapped for a symlink to a host dir
/// while the removal runs cannot redirect it. Without cairn: a removal
/// that checks with `lstat` and then descends by path is redirected (the
/// swap placed exactly between the check and the descent) and empties
/// the canary. With cairn, rounds of clean run while a thread keeps
/// swapping the image's dirs (and the image itself) for symlinks to the
/// canary; the canary survives every round, the thread saw its symlinks
/// removed (the links, not their target: the race was met), and once it
/// stops a last clean removes what is left.
#[test]
fn a_rename_race_cannot_redirect_the_removal() {
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);

    // Without cairn, the race placed at its worst moment.
    let naive_ok = canary(&fx.set.p("canary-naive"));
    let victim = fx.set.p("naive/victim");
    wide_image(&victim, 3, 2);
    fn lstat_then_descend(dir: &Path, hook: &mut dyn FnMut(&Path)) {
        for e in fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let is_dir = fs::symlink_metadata(&p)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if is_dir {
                hook(&p);
                lstat_then_descend(&p, hook);
                let _ = fs::remove_dir(&p).or_else(|_| fs::remove_file(&p));
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
    let target = fx.set.p("canary-naive");
    let mut swapped = false;
    lstat_then_descend(&victim, &mut |p: &Path| {
        if !swapped {
            swapped = true;
            fs::rename(p, p.with_extension("moved")).expect("rename");
            symlink(&target, p).expect("symlink");
        }
    });
    assert!(swapped);
    assert!(
        !naive_ok(),
        "the naive removal should have emptied its canary"
    );

    // With cairn.
    let ok = canary(&fx.set.p("canary"));
    let (mut swaps, mut taken) = (0, 0);
    // At least 4 rounds; more (up to 12) until clean has met a swap.
    for round in 0..12 {
        if round >= 4 && taken > 0 {
            break;
        }
        let image = fx.set.p("images/victim");
        let dirs = wide_image(&image, 400, 4);
        let swapper = Swapper::start(fx.set.p("images"), "victim", dirs, fx.set.p("canary"));
        let out = clean(&fx, &[]);
        let (s, t) = swapper.finish();
        swaps += s;
        taken += t;
        assert!(
            ok(),
            "round {round}: the canary was touched\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        // What the swapper left (moved-away dirs, a half-removed image)
        // goes once nobody swaps.
        let out = clean(&fx, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let left: Vec<_> = fs::read_dir(fx.set.p("images"))
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "bb" && !n.starts_with(".victim"))
            .collect();
        assert!(left.is_empty(), "round {round}: left {left:?}");
        for e in fs::read_dir(fx.set.p("images")).expect("read").flatten() {
            if e.file_name().to_string_lossy().starts_with(".victim") {
                fs::remove_dir_all(e.path()).expect("cleanup of the test's own dir");
            }
        }
        assert!(ok());
    }
    eprintln!("swaps during clean: {swaps}; symlinks removed by clean: {taken}");
    assert!(swaps > 0, "the swapper never ran during a clean");
    assert!(
        taken > 0,
        "clean never met a swapped-in symlink; the race was not exercised"
    );
}

/// Something mounted inside an unused image is never crossed: the image
/// stays, and so does what the mount holds. Without cairn, `rm -r` of such
/// an image empties the mounted file system. (The mounts are made in a
/// mount namespace of the test's own, over dirs of its temp dir.)
#[test]
fn a_mount_inside_an_unused_image_is_not_crossed() {
    let fx = fixture!();
    fx.container("web", &sleeper(""));
    fx.processes(&[("web", 1)]);
    junk_image(&fx.set.p("images/victim"));
    fs::create_dir_all(fx.set.p("images/victim/mnt")).expect("mkdir");
    fs::create_dir_all(fx.set.p("naive/victim/mnt")).expect("mkdir");
    let mnt = fx.set.s("images/victim/mnt");
    let naive = fx.set.s("naive/victim");
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {naive}/mnt && echo canary > {naive}/mnt/keep && \
         rm -rf {naive}; echo naive=$(cat {naive}/mnt/keep 2>&1 || echo gone); \
         mount -t tmpfs -o size=1m tmpfs {mnt} && echo canary > {mnt}/keep && \
         {bin} clean -c {master}; echo rc=$?; cat {mnt}/keep",
        bin = cairn_bin().display(),
        master = fx.master_path(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let out = output_within(&mut cmd, None, Duration::from_secs(60));
    let text = stdout(&out);
    assert!(text.contains("rc=0"), "{text}{}", stderr(&out));
    assert!(
        !text.contains("naive=canary"),
        "rm -r left the mounted canary: {text}"
    );
    let kept = lines_of(&text, "keep");
    assert_eq!(
        kept.get(&fx.set.s("images/victim")).map(String::as_str),
        Some(format!("{mnt} is a mount point inside it; never crossed").as_str()),
        "{text}"
    );
    assert!(text.trim_end().ends_with("canary"), "{text}");
    assert!(fx.set.p("images/victim/etc/hello").is_file());
}
