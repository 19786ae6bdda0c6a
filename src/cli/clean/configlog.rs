//! What the config log says about images: when each was last in use.
//!
//! The tree appends one line per config version an instance starts with
//! (`tree::logs`): `TIME SANDBOX/PROCESS.N HASH {spec as JSON}`, the spec
//! naming its `image` and the sandbox's `image_dir`. An instance runs the
//! image of its line until the log shows the same instance starting with
//! another config; the log records starts, never stops, so the image of an
//! instance's last line counts as used at that start.
//!
//! lithos_tree wrote `TIME {process name: its process entry, ...}` (the
//! whole process config of the sandbox, each time it changed) to a file of
//! the same name; such lines are read too (a config-log-dir shared with
//! lithos): each process of the line runs its `image`, relative to the
//! sandbox's image-dir, until a later line changes or drops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cli::ps_text::parse_rfc3339;
use crate::sys::hostfs::HostDir;

/// A config log line longer than this is not one the tree wrote.
const MAX_LINE: usize = 16 << 20;
/// Rotated files (`SANDBOX.log.N`) read at most.
const MAX_ROTATIONS: u32 = 1000;

/// One line of a config log, the parts clean needs (a lithos line gives
/// one per process it names, and one per process it no longer names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: SystemTime,
    pub instance: String,
    pub image_dir: PathBuf,
    /// `None`: the instance stopped then (a lithos line without it).
    pub image: Option<String>,
}

/// Parse a line of `sandbox`'s config log (whose image-dir is
/// `image_dir`, for lithos's lines, which do not name it). `lithos_was`:
/// the processes the last lithos line of the file named, updated.
pub fn parse_line(
    s: &str,
    sandbox: &str,
    image_dir: &Path,
    lithos_was: &mut Vec<String>,
) -> Result<Vec<Line>, String> {
    let form = || "not of the form TIME INSTANCE HASH SPEC".to_string();
    let (time, rest) = s.split_once(' ').ok_or_else(form)?;
    let time = parse_rfc3339(time).ok_or_else(|| format!("{time:?} is not an RFC 3339 time"))?;
    if rest.starts_with('{') {
        return parse_lithos(time, rest, sandbox, image_dir, lithos_was);
    }
    let mut parts = rest.splitn(3, ' ');
    let (Some(instance), Some(_hash), Some(json)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(form());
    };
    let spec: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("the spec is not JSON: {e}"))?;
    let field = |k: &str| {
        spec.get(k)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the spec has no {k:?}"))
    };
    Ok(vec![Line {
        time,
        instance: instance.to_string(),
        image_dir: PathBuf::from(field("image_dir")?),
        image: Some(field("image")?.to_string()),
    }])
}

/// `TIME {"PROCESS": {"image": ..., ...}, ...}`, lithos_tree's form.
fn parse_lithos(
    time: SystemTime,
    json: &str,
    sandbox: &str,
    image_dir: &Path,
    was: &mut Vec<String>,
) -> Result<Vec<Line>, String> {
    let all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("not a lithos process config: {e}"))?;
    let mut out = Vec::new();
    let mut now = Vec::new();
    for (name, entry) in &all {
        let image = entry
            .get("image")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("lithos process {name:?} has no \"image\""))?;
        now.push(name.clone());
        out.push(Line {
            time,
            instance: format!("{sandbox}/{name}"),
            image_dir: image_dir.to_path_buf(),
            image: Some(image.to_string()),
        });
    }
    for gone in was.iter().filter(|n| !all.contains_key(n.as_str())) {
        out.push(Line {
            time,
            instance: format!("{sandbox}/{gone}"),
            image_dir: image_dir.to_path_buf(),
            image: None,
        });
    }
    *was = now;
    Ok(out)
}

/// When each (image-dir as logged, image) was last in use, from lines in
/// any order: an image is in use from its line's time until the next line
/// of the same instance (a later line of another config), and at least at
/// its own line's time.
pub fn last_uses(mut lines: Vec<Line>) -> HashMap<(PathBuf, String), SystemTime> {
    // Stable: lines of one file keep their order within a second.
    lines.sort_by_key(|l| l.time);
    let mut out: HashMap<(PathBuf, String), SystemTime> = HashMap::new();
    let mut bump = |key: (PathBuf, String), t: SystemTime| {
        let e = out.entry(key).or_insert(t);
        if *e < t {
            *e = t;
        }
    };
    let mut current: HashMap<String, (PathBuf, String)> = HashMap::new();
    for l in lines {
        let before = match l.image {
            Some(image) => {
                let key = (l.image_dir, image);
                bump(key.clone(), l.time);
                current.insert(l.instance, key)
            }
            None => current.remove(&l.instance),
        };
        if let Some(before) = before {
            bump(before, l.time);
        }
    }
    out
}

/// The files of `sandbox`'s config log in `names` (a listing of the
/// config log dir), oldest first: `SANDBOX.log.N` from the highest N down,
/// then `SANDBOX.log`. Compressed rotations are not read.
pub fn files_of(sandbox: &str, names: &[String]) -> Vec<String> {
    let base = format!("{sandbox}.log");
    let mut rotated: Vec<(u32, &String)> = names
        .iter()
        .filter_map(|n| {
            let rest = n.strip_prefix(&base)?.strip_prefix('.')?;
            let n_ok = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
            let idx: u32 = rest.parse().ok().filter(|_| n_ok)?;
            (idx <= MAX_ROTATIONS).then_some((idx, n))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<String> = rotated.into_iter().map(|(_, n)| n.clone()).collect();
    if names.contains(&base) {
        out.push(base);
    }
    out
}

/// Read the lines of the config log files of `sandboxes` (name and
/// image-dir) in `dir` (which must be root's: `HostDir`). A file another
/// user could write, a symlink, or a line that does not parse is an error
/// naming the file (and line): a log that cannot be read cannot tell which
/// images were used.
pub fn read(dir: &HostDir, sandboxes: &[(&str, &Path)]) -> Result<Vec<Line>, Vec<String>> {
    let names = list(dir.path()).map_err(|e| vec![e])?;
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (sandbox, image_dir) in sandboxes {
        let mut lithos_was = Vec::new();
        for name in files_of(sandbox, &names) {
            let path = dir.path().join(&name);
            let mut file = File {
                sandbox,
                image_dir,
                path: &path,
                lithos_was: &mut lithos_was,
            };
            match dir.open_trusted(&name) {
                Ok(Some(f)) => file.read(f, &mut lines, &mut problems),
                Ok(None) => {}
                Err(e) => problems.push(format!("config log {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(problems)
    }
}

fn list(dir: &Path) -> Result<Vec<String>, String> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| format!("config log dir {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| format!("config log dir {}: {e}", dir.display()))?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    Ok(out)
}

/// One config log file being read.
struct File<'a> {
    sandbox: &'a str,
    image_dir: &'a Path,
    path: &'a Path,
    lithos_was: &'a mut Vec<String>,
}

impl File<'_> {
    fn read(&mut self, f: std::fs::File, out: &mut Vec<Line>, problems: &mut Vec<String>) {
        let shown = crate::text::path(self.path);
        let mut r = BufReader::new(f);
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            match r
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    problems.push(format!("config log {shown}: {e}"));
                    return;
                }
            }
            if buf.len() > MAX_LINE {
                problems.push(format!(
                    "config log {shown}:{n}: longer than {MAX_LINE} bytes"
                ));
                return;
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches('\n');
            if text.trim().is_empty() {
                continue;
            }
            match parse_line(text, self.sandbox, self.image_dir, self.lithos_was) {
                Ok(l) => out.extend(l),
                Err(e) => problems.push(format!(
                    "config log {shown}:{n}: {}; cannot tell which images it names",
                    crate::text::escape(&e)
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn line(time: u64, inst: &str, image: &str) -> Line {
        Line {
            time: t(time),
            instance: inst.into(),
            image_dir: "/img".into(),
            image: Some(image.into()),
        }
    }

    fn parse(s: &str) -> Result<Vec<Line>, String> {
        parse_line(s, "box", Path::new("/img"), &mut Vec::new())
    }

    #[test]
    fn a_line_as_the_tree_writes_it() {
        let l = parse(
            "2026-01-02T03:04:05Z box/web.0 0123abcd {\"name\":\"box/web.0\",\"image\":\"web-1\",\"image_dir\":\"/srv/img\",\"x\":[1]}",
        )
        .expect("parses");
        assert_eq!(
            l,
            [Line {
                time: t(1_767_323_045),
                instance: "box/web.0".into(),
                image_dir: "/srv/img".into(),
                image: Some("web-1".into()),
            }]
        );
    }

    #[test]
    fn lines_as_lithos_tree_wrote_them() {
        let mut was = Vec::new();
        let mut p = |s: &str| parse_line(s, "box", Path::new("/img"), &mut was).expect(s);
        let l = p(
            "2017-03-04T05:06:07Z {\"web\":{\"instances\":2,\"image\":\"web.v1\",\"config\":\"/config/web.yaml\"},\"cron\":{\"image\":\"cron.v1\"}}",
        );
        let got: Vec<(&str, Option<&str>)> = l
            .iter()
            .map(|l| (l.instance.as_str(), l.image.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("box/cron", Some("cron.v1")), ("box/web", Some("web.v1"))]
        );
        assert!(l.iter().all(|l| l.image_dir == Path::new("/img")));
        // `cron` dropped from the config: it stopped then.
        let l = p("2017-03-05T05:06:07Z {\"web\":{\"image\":\"web.v2\"}}");
        let got: Vec<(&str, Option<&str>)> = l
            .iter()
            .map(|l| (l.instance.as_str(), l.image.as_deref()))
            .collect();
        assert_eq!(got, [("box/web", Some("web.v2")), ("box/cron", None)]);
        let m = last_uses(
            [
                p("2017-03-06T00:00:00Z {}"),
                parse("2017-03-06T00:00:01Z box/web.0 h {\"image\":\"x\",\"image_dir\":\"/img\"}")
                    .expect("mixed"),
            ]
            .concat(),
        );
        assert_eq!(
            m.get(&("/img".into(), "x".into())).copied(),
            Some(t(1_488_758_401))
        );
        assert!(parse("2017-03-04T05:06:07Z {\"web\":{\"instances\":2}}").is_err());
    }

    #[test]
    fn broken_lines_say_why() {
        for (s, why) in [
            ("", "not of the form"),
            ("2026-01-02T03:04:05Z box/web.0 h", "not of the form"),
            ("yesterday box/web.0 h {}", "RFC 3339"),
            (
                "2026-01-02T03:04:05Z box/web.0 h {\"image\":\"x\"",
                "not JSON",
            ),
            (
                "2026-01-02T03:04:05Z box/web.0 h {\"image\":\"x\"}",
                "\"image_dir\"",
            ),
            (
                "2026-01-02T03:04:05Z box/web.0 h {\"image_dir\":\"/x\"}",
                "\"image\"",
            ),
            (
                "2026-01-02T03:04:05Z {\"web\":",
                "not a lithos process config",
            ),
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }

    #[test]
    fn an_image_is_used_until_its_instance_starts_with_another() {
        let m = last_uses(vec![
            line(300, "b/w.0", "v2"),
            line(100, "b/w.0", "v1"),
            line(150, "b/w.1", "v1"),
            line(400, "b/w.1", "v2"),
            line(50, "b/gone.0", "old"),
            line(500, "b/w.0", "v3"),
            line(60, "b/stopped", "s"),
            Line {
                image: None,
                ..line(90, "b/stopped", "")
            },
        ]);
        let at = |i: &str| m.get(&(PathBuf::from("/img"), i.to_string())).copied();
        // v1 ran on w.0 until 300 and on w.1 until 400.
        assert_eq!(at("v1"), Some(t(400)));
        // v2 ran on w.0 from 300 to 500, on w.1 from 400 on.
        assert_eq!(at("v2"), Some(t(500)));
        // The last line of an instance: used at its start (stops are not logged).
        assert_eq!(at("v3"), Some(t(500)));
        assert_eq!(at("old"), Some(t(50)));
        // A stop (lithos lines say so): used until then.
        assert_eq!(at("s"), Some(t(90)));
        assert_eq!(at("never"), None);
    }

    #[test]
    fn rotated_files_are_read_oldest_first() {
        let names: Vec<String> = [
            "box.log",
            "box.log.1",
            "box.log.10",
            "box.log.2",
            "box.log.2.gz",
            "box.logx",
            "boxer.log",
            "box.log.",
            "other.log",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            files_of("box", &names),
            ["box.log.10", "box.log.2", "box.log.1", "box.log"]
        );
        assert!(files_of("none", &names).is_empty());
    }
}
