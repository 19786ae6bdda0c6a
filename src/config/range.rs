//! Id ranges (`[1, 99, 1000-2000]`) and user-namespace id maps.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::reader::Value;

/// One inclusive range of ids or ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: u32,
    pub end: u32,
}

impl Range {
    pub fn contains(&self, v: u32) -> bool {
        self.start <= v && v <= self.end
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A list of ranges, as in `allow-users: [1, 99, 1000-2000]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges(pub Vec<Range>);

impl Ranges {
    pub fn contains(&self, v: u32) -> bool {
        self.0.iter().any(|r| r.contains(v))
    }
    /// True when `[start, start+count-1]` lies within a single range.
    pub fn contains_span(&self, start: u32, count: u32) -> bool {
        if count == 0 {
            return true;
        }
        let Some(last) = start.checked_add(count - 1) else {
            return false;
        };
        self.0.iter().any(|r| r.start <= start && last <= r.end)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Ranges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{r}")?;
        }
        write!(f, "]")
    }
}

/// Parse one range: `N` or `A-B` (inclusive, `A <= B`).
pub fn parse_range(s: &str) -> Result<Range, String> {
    let s = s.trim();
    let num = |t: &str| -> Result<u32, String> {
        let t = t.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a number or a range like 1000-2000"));
        }
        t.parse::<u32>().map_err(|_| format!("{t:?} is too large"))
    };
    match s.split_once('-') {
        None => {
            let v = num(s)?;
            Ok(Range { start: v, end: v })
        }
        Some((a, b)) => {
            let (start, end) = (num(a)?, num(b)?);
            if start > end {
                return Err(format!("range {s:?} is empty (start is after end)"));
            }
            Ok(Range { start, end })
        }
    }
}

pub fn read_ranges(v: &Value) -> Result<Ranges, ConfigError> {
    let mut out = Vec::new();
    for item in v.seq()? {
        out.push(parse_range(item.str()?).map_err(|e| item.err(e))?);
    }
    Ok(Ranges(out))
}

/// One line of a uid or gid map: `count` ids starting at `inside` (in the
/// container) are `outside` (on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Map an inside id to the host through `maps` (empty = identity).
pub fn map_to_host(maps: &[IdMap], id: u32) -> Option<u32> {
    if maps.is_empty() {
        return Some(id);
    }
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.inside)?;
        if off < m.count {
            m.outside.checked_add(off)
        } else {
            None
        }
    })
}

pub fn read_id_maps(v: &Value) -> Result<Vec<IdMap>, ConfigError> {
    let mut out = Vec::new();
    for item in v.seq()? {
        let mut f = item.fields()?;
        let inside = f.req("inside")?.id()?;
        let outside = f.req("outside")?.id()?;
        let count = f.req("count")?.u32()?;
        let mut p = super::error::Problems::new();
        f.finish(&mut p);
        if let Some(e) = p.0.into_iter().next() {
            return Err(e);
        }
        if count == 0 {
            return Err(item.err("count must be at least 1"));
        }
        // The last id of a line is `first + count - 1`, and it must stay
        // below 2^32-1 ("no id"): the kernel refuses a line whose
        // `first + count` wraps to 0 (EINVAL on writing uid_map).
        if inside.checked_add(count).is_none() || outside.checked_add(count).is_none() {
            return Err(item.err("the mapped range goes past the largest id"));
        }
        out.push(IdMap {
            inside,
            outside,
            count,
        });
    }
    // The kernel refuses overlapping lines; say so here, with the file.
    for (i, a) in out.iter().enumerate() {
        for b in &out[..i] {
            let overlap =
                |x: u32, y: u32, n: u32, m: u32| x < y.saturating_add(m) && y < x.saturating_add(n);
            if overlap(a.inside, b.inside, a.count, b.count)
                || overlap(a.outside, b.outside, a.count, b.count)
            {
                return Err(v.err("id map lines overlap"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("5"), Ok(Range { start: 5, end: 5 }));
        assert_eq!(
            parse_range("1000-2000"),
            Ok(Range {
                start: 1000,
                end: 2000
            })
        );
        assert_eq!(parse_range(" 0 - 1 "), Ok(Range { start: 0, end: 1 }));
        assert_eq!(parse_range("7-7"), Ok(Range { start: 7, end: 7 }));
        assert!(parse_range("2-1").is_err());
        assert!(parse_range("a").is_err());
        assert!(parse_range("-1").is_err());
        assert!(parse_range("1-").is_err());
        assert!(parse_range("99999999999").is_err());
        let r = Ranges(vec![
            parse_range("1").unwrap(),
            parse_range("10-20").unwrap(),
        ]);
        assert!(r.contains(1) && r.contains(10) && r.contains(20));
        assert!(!r.contains(0) && !r.contains(2) && !r.contains(21));
        assert!(r.contains_span(10, 11));
        assert!(!r.contains_span(10, 12));
        assert!(!r.contains_span(1, 2));
        assert_eq!(r.to_string(), "[1, 10-20]");
    }

    #[test]
    fn maps() {
        let m = [IdMap {
            inside: 0,
            outside: 10000,
            count: 2,
        }];
        assert_eq!(map_to_host(&m, 0), Some(10000));
        assert_eq!(map_to_host(&m, 1), Some(10001));
        assert_eq!(map_to_host(&m, 2), None);
        assert_eq!(map_to_host(&[], 7), Some(7));
    }

    fn id_maps(text: &str) -> Result<Vec<IdMap>, ConfigError> {
        let ast =
            crate::config::yaml::parse("/m.yaml", text.as_bytes(), &crate::config::yaml::TRUSTED)?;
        read_id_maps(&Value::root("/m.yaml", &ast))
    }

    fn line(inside: u32, outside: u32, count: u32) -> String {
        format!("{{inside: {inside}, outside: {outside}, count: {count}}}")
    }

    /// A YAML list of id map lines (inside, outside, count).
    fn map_text(lines: &[(u32, u32, u32)]) -> String {
        let lines: Vec<String> = lines.iter().map(|&(i, o, n)| line(i, o, n)).collect();
        format!("[{}]", lines.join(", "))
    }

    fn refused(text: &str, message: &str) {
        match id_maps(text) {
            Ok(m) => panic!("{text} was accepted: {m:?}"),
            Err(e) => assert!(e.message.contains(message), "{text}: {e}"),
        }
    }

    #[test]
    fn id_map_lines() {
        assert_eq!(
            id_maps(&format!("[{}]", line(0, 100000, 65536))),
            Ok(vec![IdMap {
                inside: 0,
                outside: 100000,
                count: 65536
            }])
        );
        refused(&format!("[{}]", line(0, 1, 0)), "at least 1");
        refused("[{inside: 0, outside: 1}]", "count");
        refused(
            "[{inside: 0, outside: 1, count: 1, extra: 2}]",
            "unknown key",
        );
        // 4294967295 is "no id": neither side may name it.
        refused(&format!("[{}]", line(4294967295, 0, 1)), "4294967295");
        refused(&format!("[{}]", line(0, 4294967295, 1)), "4294967295");
    }

    /// The last id of a line is 4294967294 at most, on either side: the
    /// kernel refuses a line that reaches 4294967295 (its first + count
    /// wraps), so the config check does too.
    #[test]
    fn id_map_last_id() {
        let max = u32::MAX - 1;
        for (inside, outside, count) in [
            (max, 0, 1),
            (0, max, 1),
            (max - 1, 0, 2),
            (0, max - 1, 2),
            (0, 1, u32::MAX - 1),
            (1, 0, u32::MAX - 1),
            // 4294967295 ids from 0: the last is 4294967294.
            (0, 0, u32::MAX),
        ] {
            let text = format!("[{}]", line(inside, outside, count));
            assert_eq!(
                id_maps(&text),
                Ok(vec![IdMap {
                    inside,
                    outside,
                    count
                }]),
                "{text}"
            );
        }
        for (inside, outside, count) in [
            (max, 0, 2),
            (0, max, 2),
            (max - 1, 0, 3),
            (0, max - 1, 3),
            (2, 0, u32::MAX - 1),
            (0, 2, u32::MAX - 1),
            // One side overflowing is enough.
            (max, 10, 2),
            (10, max, 2),
            (1000, 4000000000, 300000000),
        ] {
            refused(
                &format!("[{}]", line(inside, outside, count)),
                "past the largest id",
            );
        }
    }

    /// Lines must not share an id, inside or outside (the kernel refuses
    /// them); lines that touch end to start do not overlap.
    #[test]
    fn id_map_overlaps() {
        let ok = |lines: &[(u32, u32, u32)]| {
            let text = map_text(lines);
            let want: Vec<IdMap> = lines
                .iter()
                .map(|&(inside, outside, count)| IdMap {
                    inside,
                    outside,
                    count,
                })
                .collect();
            assert_eq!(id_maps(&text), Ok(want), "{text}");
        };
        let bad = |lines: &[(u32, u32, u32)]| {
            let text = map_text(lines);
            refused(&text, "overlap");
        };
        // Adjacent, in either order, on both sides.
        ok(&[(0, 1000, 10), (10, 1010, 10)]);
        ok(&[(10, 1010, 10), (0, 1000, 10)]);
        // Far apart, in either order.
        ok(&[(0, 1000, 10), (500, 5000, 10)]);
        ok(&[(500, 5000, 10), (0, 1000, 10)]);
        // Crossed: inside order differs from outside order.
        ok(&[(0, 5000, 10), (500, 1000, 10)]);
        // The top ids.
        ok(&[
            (u32::MAX - 2, 0, 1),
            (u32::MAX - 3, 1, 1),
            (0, u32::MAX - 2, 1),
        ]);
        // Sharing inside ids (outside apart), in either order.
        bad(&[(0, 1000, 10), (5, 5000, 10)]);
        bad(&[(5, 5000, 10), (0, 1000, 10)]);
        bad(&[(0, 1000, 10), (9, 5000, 1)]);
        bad(&[(9, 5000, 1), (0, 1000, 10)]);
        // Sharing outside ids (inside apart), in either order.
        bad(&[(0, 1000, 10), (500, 1005, 10)]);
        bad(&[(500, 1005, 10), (0, 1000, 10)]);
        bad(&[(0, 1000, 10), (500, 1009, 1)]);
        // The same line twice; one line inside another; a third line
        // overlapping the first.
        bad(&[(0, 1000, 10), (0, 1000, 10)]);
        bad(&[(0, 1000, 100), (40, 1040, 10)]);
        bad(&[(0, 1000, 10), (100, 2000, 10), (5, 3000, 1)]);
        bad(&[(u32::MAX - 2, 0, 1), (u32::MAX - 2, 1, 1)]);
        bad(&[(0, u32::MAX - 2, 1), (1, u32::MAX - 2, 1)]);
    }
}
