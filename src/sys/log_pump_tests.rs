use super::*;

/// A log dir in memory: files by index (0 the log's own name), the one
/// being written, and what was done, in order.
#[derive(Default)]
struct Fake {
    /// The file being written, by identity (a rename moves an identity
    /// from one name to another).
    writing: usize,
    /// Identity of the contents under each name.
    ids: Vec<Option<usize>>,
    next_id: usize,
    /// Contents by identity.
    data: Vec<Vec<u8>>,
    writes: Vec<usize>,
    ops: Vec<String>,
    lock_fails: bool,
}

impl Fake {
    fn new() -> Fake {
        let mut f = Fake {
            ids: vec![None; 8],
            ..Fake::default()
        };
        f.data.push(Vec::new());
        f.ids[0] = Some(0);
        f.next_id = 1;
        f
    }
    fn text(&self, name: usize) -> String {
        match self.ids[name] {
            Some(id) => String::from_utf8_lossy(&self.data[id]).into_owned(),
            None => "<none>".into(),
        }
    }
}

impl LogFile for Fake {
    fn write_parts(&mut self, parts: &[&[u8]]) -> bool {
        for p in parts {
            self.data[self.writing].extend_from_slice(p);
        }
        self.writes.push(parts.len());
        true
    }
    fn size(&mut self) -> Option<u64> {
        Some(self.data[self.writing].len() as u64)
    }
    fn lock(&mut self) -> bool {
        self.ops.push("lock".into());
        !self.lock_fails
    }
    fn unlock(&mut self) {
        self.ops.push("unlock".into());
    }
    fn is_current(&mut self) -> bool {
        self.ids[0] == Some(self.writing)
    }
    fn rename(&mut self, from: u32, to: u32) {
        self.ops.push(format!("rename {from} {to}"));
        if let Some(id) = self.ids[from as usize].take() {
            self.ids[to as usize] = Some(id);
        }
    }
    fn reopen(&mut self) -> bool {
        self.ops.push("reopen".into());
        match self.ids[0] {
            Some(id) => self.writing = id,
            None => {
                self.data.push(Vec::new());
                self.ids[0] = Some(self.next_id);
                self.writing = self.next_id;
                self.next_id += 1;
            }
        }
        true
    }
}

fn cfg(name: &[u8], timestamps: bool) -> Config<'_> {
    Config {
        max_size: 0,
        files: 3,
        timestamps,
        name,
    }
}

/// Feed `input` as one read.
fn feed(p: &mut Pump, input: &[u8], now: u64, c: &Config, f: &mut Fake) {
    let mut rest = input;
    while !rest.is_empty() {
        let space = p.space();
        let n = space.len().min(rest.len());
        space[..n].copy_from_slice(&rest[..n]);
        p.filled(n, now, c, f);
        rest = &rest[n..];
    }
}

const T: u64 = 1_764_748_434_123; // 2025-12-03T07:53:54.123Z

#[test]
fn each_line_gets_the_time_and_the_name() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    feed(&mut p, b"one\ntwo\n", T, &cfg(b"web.0", true), &mut f);
    assert_eq!(
        f.text(0),
        "2025-12-03T07:53:54.123Z web.0 one\n2025-12-03T07:53:54.123Z web.0 two\n"
    );
    // One write for the two lines.
    assert_eq!(f.writes, [4]);
}

#[test]
fn either_prefix_alone() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    feed(&mut p, b"a\n", T, &cfg(b"web.0", false), &mut f);
    feed(&mut p, b"b\n", T, &cfg(b"", true), &mut f);
    assert_eq!(f.text(0), "web.0 a\n2025-12-03T07:53:54.123Z b\n");
}

#[test]
fn without_a_prefix_lines_go_out_as_read() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    feed(&mut p, b"one\ntwo\nthr", T, &cfg(b"", false), &mut f);
    assert_eq!(f.text(0), "one\ntwo\n");
    assert_eq!(f.writes, [1]);
    feed(&mut p, b"ee\n", T, &cfg(b"", false), &mut f);
    assert_eq!(f.text(0), "one\ntwo\nthree\n");
}

#[test]
fn a_line_waits_for_its_end() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let c = cfg(b"w", false);
    feed(&mut p, b"par", T, &c, &mut f);
    assert_eq!(f.text(0), "");
    feed(&mut p, b"tial\nnext", T, &c, &mut f);
    assert_eq!(f.text(0), "w partial\n");
    // At the end, what is left is written, with a newline.
    p.finish(T, &c, &mut f);
    assert_eq!(f.text(0), "w partial\nw next\n");
    p.finish(T, &c, &mut f);
    assert_eq!(f.text(0), "w partial\nw next\n");
}

#[test]
fn a_line_longer_than_the_buffer_is_cut() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let c = cfg(b"w", false);
    let mut long = vec![b'x'; CHUNK + 10];
    long.push(b'\n');
    feed(&mut p, &long, T, &c, &mut f);
    let text = f.text(0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), 2 + CHUNK);
    assert_eq!(lines[1], format!("w {}", "x".repeat(10)));
}

#[test]
fn many_lines_go_out_in_batches_of_whole_lines() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let input: Vec<u8> = (0..300)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    feed(&mut p, &input, T, &cfg(b"w", false), &mut f);
    assert_eq!(f.writes, [2 * BATCH, 2 * BATCH, 2 * (300 - 2 * BATCH)]);
    let want: String = (0..300).map(|i| format!("w {i}\n")).collect();
    assert_eq!(f.text(0), want);
}

#[test]
fn a_name_is_one_printable_word() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let long = [b'n'; NAME_MAX + 5];
    feed(&mut p, b"a\n", T, &cfg(b"we b\x1b", false), &mut f);
    feed(&mut p, b"b\n", T, &cfg(&long, false), &mut f);
    assert_eq!(f.text(0), format!("we?b? a\n{} b\n", "n".repeat(NAME_MAX)));
}

#[test]
fn a_full_log_is_rotated_and_the_oldest_dropped() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let mut c = cfg(b"", false);
    c.max_size = 10;
    for (i, line) in ["aaaaa\n", "bbbbb\n", "ccccc\n", "ddddd\n", "eeeee\n"]
        .iter()
        .enumerate()
    {
        feed(&mut p, line.as_bytes(), T, &c, &mut f);
        if i == 1 {
            assert_eq!(
                f.ops,
                [
                    "lock",
                    "rename 2 3",
                    "rename 1 2",
                    "rename 0 1",
                    "reopen",
                    "unlock"
                ]
            );
        }
    }
    // Two lines a file: 12 bytes each when full, then rotated.
    assert_eq!(f.text(0), "eeeee\n");
    assert_eq!(f.text(1), "ccccc\nddddd\n");
    assert_eq!(f.text(2), "aaaaa\nbbbbb\n");
    assert_eq!(f.text(3), "<none>");
}

#[test]
fn a_long_read_is_rotated_between_its_batches() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let mut c = cfg(b"w", false);
    c.max_size = 100;
    c.files = 5;
    // 300 lines in one read: three batches, each past the size.
    let input: Vec<u8> = (0..300)
        .flat_map(|i| format!("{i:03}\n").into_bytes())
        .collect();
    feed(&mut p, &input, T, &c, &mut f);
    assert_eq!(f.ops.iter().filter(|o| *o == "reopen").count(), 3);
    assert_eq!(f.text(0), "");
    assert!(f.text(1).starts_with("w 256\n"), "{}", f.text(1));
    assert!(f.text(3).starts_with("w 000\n") && f.text(3).ends_with("w 127\n"));
}

#[test]
fn files_are_kept_up_to_their_number() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let mut c = cfg(b"", false);
    c.max_size = 1;
    c.files = 2;
    for l in ["1\n", "2\n", "3\n", "4\n"] {
        feed(&mut p, l.as_bytes(), T, &c, &mut f);
    }
    assert_eq!(f.text(0), "");
    assert_eq!(f.text(1), "4\n");
    assert_eq!(f.text(2), "3\n");
    assert_eq!(f.text(3), "<none>");
}

#[test]
fn a_log_another_instance_rotated_is_only_reopened() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let mut c = cfg(b"", false);
    feed(&mut p, b"old old\n", T, &c, &mut f);
    // Another writer filled and rotated it since: our file is NAME.1
    // now, a new NAME exists.
    c.max_size = 8;
    f.ids[1] = f.ids[0].take();
    f.data.push(b"new\n".to_vec());
    f.ids[0] = Some(f.next_id);
    f.next_id += 1;
    feed(&mut p, b"late\n", T + 1, &c, &mut f);
    assert_eq!(f.ops, ["lock", "reopen", "unlock"]);
    assert_eq!(f.text(1), "old old\nlate\n");
    feed(&mut p, b"x\n", T + 2, &c, &mut f);
    assert_eq!(f.text(0), "new\nx\n");
}

#[test]
fn a_log_moved_away_is_replaced_within_a_second() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let c = cfg(b"", false);
    feed(&mut p, b"a\n", T, &c, &mut f);
    // logrotate moves it (no signal to anyone).
    f.rename(0, 1);
    f.ops.clear();
    feed(&mut p, b"b\n", T + RECHECK_MS - 1, &c, &mut f);
    assert_eq!(f.text(1), "a\nb\n");
    assert!(f.ops.is_empty());
    feed(&mut p, b"c\n", T + RECHECK_MS, &c, &mut f);
    assert_eq!(f.ops, ["reopen"]);
    assert_eq!(f.text(0), "c\n");
    assert_eq!(f.text(1), "a\nb\n");
}

#[test]
fn no_lock_no_rotation() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    let mut c = cfg(b"", false);
    c.max_size = 1;
    f.lock_fails = true;
    feed(&mut p, b"a\n", T, &c, &mut f);
    assert_eq!(f.ops, ["lock"]);
    assert_eq!(f.text(0), "a\n");
}

#[test]
fn no_size_no_rotation() {
    let (mut p, mut f) = (Box::new(Pump::new()), Fake::new());
    feed(&mut p, &[b'a'; 5000], T, &cfg(b"", false), &mut f);
    feed(&mut p, b"\n", T, &cfg(b"", false), &mut f);
    assert!(f.ops.is_empty());
}

#[test]
fn the_stamp_is_rfc3339_in_milliseconds() {
    use std::time::{Duration, UNIX_EPOCH};
    for ms in [
        0u64,
        951_782_400_000, // 2000-02-29
        T,
        4_107_542_399_999,   // 2100-02-28T23:59:59.999
        253_402_300_799_000, // 9999-12-31T23:59:59
    ] {
        let mut s = [0u8; STAMP_LEN];
        stamp(ms, &mut s);
        let want = crate::text::rfc3339_ms(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(std::str::from_utf8(&s).ok(), Some(want.as_str()), "{ms}");
    }
}
