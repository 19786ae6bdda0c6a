use super::*;
use std::ffi::OsStr;
use std::time::Duration;

/// The inverse of `escape_bytes`, to show that no two inputs escape to the
/// same output. Panics on text `escape_bytes` cannot produce.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            assert!(!needs_escape(c), "raw {c:?} in {s:?}");
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16).expect("two hex digits");
                // Below 0x80: an ASCII control; above: a byte of invalid
                // UTF-8. Either way one byte.
                assert!(!matches!(b, b'\n' | b'\r' | b'\t' | b'\\'), "{s:?}");
                out.push(b);
            }
            Some('u') => {
                assert_eq!(chars.next(), Some('{'), "{s:?}");
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let c =
                    char::from_u32(u32::from_str_radix(&hex, 16).expect("hex")).expect("a char");
                assert!(!c.is_ascii(), "ASCII shows as \\x: {s:?}");
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            other => panic!("bad escape {other:?} in {s:?}"),
        }
    }
    out
}

/// Nothing in `s` can break a line or drive a terminal.
fn assert_safe(s: &str) {
    assert!(!s.chars().any(|c| c != '\\' && needs_escape(c)), "{s:?}");
}

#[test]
fn table() {
    let cases: &[(&str, &str)] = &[
        ("", ""),
        ("plain text: /bin/sh -c 'x'", "plain text: /bin/sh -c 'x'"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("\\", "\\\\"),
        // A literal backslash-n stays distinguishable from a newline.
        ("a\\nb", "a\\\\nb"),
        ("\0", "\\x00"),
        ("\x07", "\\x07"),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
        ("\x7f", "\\x7f"),
        ("\x1f", "\\x1f"),
        // C1: NEL, CSI, OSC, ST.
        ("\u{85}", "\\u{85}"),
        ("\u{9b}2J", "\\u{9b}2J"),
        ("\u{9d}0;x\u{9c}", "\\u{9d}0;x\\u{9c}"),
        ("\u{80}\u{9f}", "\\u{80}\\u{9f}"),
        // Bidi embeddings, overrides, isolates, marks.
        ("abc\u{202e}fed", "abc\\u{202e}fed"),
        (
            "\u{202a}\u{202b}\u{202c}\u{202d}",
            "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
        ),
        (
            "\u{2066}\u{2067}\u{2068}\u{2069}",
            "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
        ),
        ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
        ("line\u{2028}sep\u{2029}", "line\\u{2028}sep\\u{2029}"),
        // Printable non-ASCII passes.
        ("é ü ß 日本 🙂 \u{a0}", "é ü ß 日本 🙂 \u{a0}"),
        // The forged log line of the issue.
        (
            "/bin/x\n2026-01-01T00:00:00Z INFO s/victim.0: started",
            "/bin/x\\n2026-01-01T00:00:00Z INFO s/victim.0: started",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(escape(input), *want, "escape({input:?})");
        assert_eq!(escape_bytes(input.as_bytes()), *want, "bytes {input:?}");
        assert_eq!(unescape(want), input.as_bytes(), "unescape({want:?})");
    }
}

#[test]
fn clean_text_is_borrowed() {
    assert!(matches!(escape("box/web.0: started"), Cow::Borrowed(_)));
    assert!(matches!(escape_bytes(b"/srv/data"), Cow::Borrowed(_)));
    assert!(matches!(escape("a\nb"), Cow::Owned(_)));
}

#[test]
fn invalid_utf8_shows_as_bytes_of_80_and_above() {
    let cases: &[(&[u8], &str)] = &[
        (b"/tmp/\xff\xfe/x", "/tmp/\\xff\\xfe/x"),
        (b"\xe2\x80", "\\xe2\\x80"),
        (b"\xc0\xaf", "\\xc0\\xaf"),
        (b"ok\x1b\xff\n", "ok\\x1b\\xff\\n"),
        (b"\xe2\x80\xae\xff", "\\u{202e}\\xff"),
        (b"\\\x80", "\\\\\\x80"),
    ];
    for (input, want) in cases {
        assert_eq!(escape_bytes(input), *want, "{input:?}");
        assert_eq!(unescape(want), *input, "{want:?}");
    }
    let p = Path::new(OsStr::from_bytes(b"/srv/\xffdir\n"));
    assert_eq!(path(p), "/srv/\\xffdir\\n");
}

/// Every char below U+0200, and every bidi and separator char: escaped
/// exactly when it must be, into text that is safe and decodes back.
#[test]
fn every_char_below_0x200_escapes_safely_and_reversibly() {
    let specials = (0x2000..0x2070).chain([0x61c, 0xfeff, 0x10ffff]);
    let chars: Vec<char> = (0..0x200u32)
        .chain(specials)
        .filter_map(char::from_u32)
        .collect();
    for &c in &chars {
        let s = c.to_string();
        let e = escape(&s);
        assert_safe(&e);
        let must = c == '\\'
            || (c as u32) < 0x20
            || (0x7f..=0x9f).contains(&(c as u32))
            || (0x202a..=0x202e).contains(&(c as u32))
            || (0x2066..=0x2069).contains(&(c as u32))
            || matches!(c as u32, 0x61c | 0x200e | 0x200f | 0x2028 | 0x2029);
        assert_eq!(needs_escape(c), must, "{c:?}");
        if must {
            assert!(e.starts_with('\\') && e.len() > 1, "{c:?} -> {e:?}");
        } else {
            assert_eq!(e, s, "{c:?} changed");
        }
        assert_eq!(unescape(&e), s.as_bytes(), "{c:?}");
    }
    // Pairs: escapes never run into each other or into plain text.
    for &a in chars.iter().filter(|c| (**c as u32) < 0x100) {
        for &b in &chars {
            let s: String = [a, b].iter().collect();
            let e = escape(&s);
            assert_safe(&e);
            assert_eq!(unescape(&e), s.as_bytes(), "{s:?} -> {e:?}");
        }
    }
}

/// Every one- and two-byte input, valid UTF-8 or not.
#[test]
fn every_short_byte_string_escapes_safely_and_reversibly() {
    for a in 0..=255u8 {
        let one = [a];
        let e = escape_bytes(&one);
        assert_safe(&e);
        assert_eq!(unescape(&e), one, "{a:#x} -> {e:?}");
        for b in 0..=255u8 {
            let two = [a, b];
            let e = escape_bytes(&two);
            assert_safe(&e);
            assert_eq!(unescape(&e), two, "{a:#x} {b:#x} -> {e:?}");
        }
    }
}

/// `json` keeps the value (serde reads back the same string) and leaves
/// nothing a terminal acts on, for every char below U+0200 and the bidi
/// and separator chars; already-escaped text is not escaped again.
#[test]
fn json_keeps_the_value_and_shows_no_raw_control() {
    let chars = (0..0x200u32)
        .chain(0x2000..0x2070)
        .chain([0x61c, 0xfeff])
        .filter_map(char::from_u32);
    for c in chars {
        let value = format!("a{c}b\\n");
        let text = serde_json::to_string(&serde_json::json!({ "k": [value] })).expect("serialize");
        let safe = json(&text);
        assert_safe(&safe);
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back["k"][0], value.as_str(), "{c:?}: {safe}");
        if !needs_escape(c) || c == '\\' || (c as u32) < 0x20 {
            // serde's own escapes (C0, `\`) are left alone.
            assert_eq!(safe, text, "{c:?}");
        }
    }
    assert_eq!(
        json("{\"k\":\"\u{202e}\u{85}\\n\"}"),
        "{\"k\":\"\\u202e\\u0085\\n\"}"
    );
    // Pretty JSON keeps its whitespace.
    assert_eq!(json("{\n\t\"k\": 1\r\n}"), "{\n\t\"k\": 1\r\n}");
}

#[test]
fn dates() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_316_645)),
        "2026-11-22T03:04:05Z"
    );
}

#[test]
fn civil_times_before_and_after_the_epoch() {
    let c = |year, month, day, hour, minute, second| Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    };
    assert_eq!(civil(0), c(1970, 1, 1, 0, 0, 0));
    // A local time west of UTC, just after the epoch, is before it.
    assert_eq!(civil(-1), c(1969, 12, 31, 23, 59, 59));
    assert_eq!(civil(-86_400 * 365), c(1969, 1, 1, 0, 0, 0));
    assert_eq!(civil(1_795_316_645), c(2026, 11, 22, 3, 4, 5));
    assert_eq!(civil(951_868_799), c(2000, 2, 29, 23, 59, 59));
    // No overflow at the ends.
    assert!(civil(i64::MAX).year > 2026);
    assert!(civil(i64::MIN).year < 1970);
}

#[test]
fn rfc3339_with_milliseconds() {
    use std::time::{Duration, UNIX_EPOCH};
    let t = UNIX_EPOCH + Duration::from_millis(1_764_748_434_007);
    assert_eq!(rfc3339_ms(t), "2025-12-03T07:53:54.007Z");
    assert_eq!(rfc3339_ms(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
}
