//! Numbers as config files write them: `100Mi`, `1k`, `0o755`, `1_000`,
//! `0.5` (seconds). Same syntax as quire/humannum so lithos files keep
//! their meaning, but every value is range-checked here: no overflow, no
//! NaN, no infinite timeouts.

/// Decimal and binary suffixes, longest first so `Ki` wins over `k`/`i`.
const SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

/// Parse an unsigned integer with an optional unit suffix and an optional
/// `0x`/`0o`/`0b` prefix; underscores between digits are ignored.
pub fn parse_u64(src: &str) -> Result<u64, String> {
    let s = src.trim();
    if s.is_empty() {
        return Err("a number is expected, found an empty value".into());
    }
    let mut mult = 1u64;
    let mut digits = s;
    // Hex digits include E (and unit letters would be ambiguous): no units
    // after 0x.
    let suffixes = if s.starts_with("0x") {
        &[][..]
    } else {
        SUFFIXES
    };
    for &(suffix, value) in suffixes {
        if let Some(stripped) = s.strip_suffix(suffix)
            && !stripped.is_empty()
        {
            mult = value;
            digits = stripped.trim_end();
            break;
        }
    }
    let (radix, body) = if let Some(b) = digits.strip_prefix("0x") {
        (16, b)
    } else if let Some(b) = digits.strip_prefix("0o") {
        (8, b)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else {
        (10, digits.strip_prefix('+').unwrap_or(digits))
    };
    if body.is_empty() || body.starts_with('_') {
        return Err(format!("{src:?} is not a number"));
    }
    let mut value: u64 = 0;
    for c in body.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix).ok_or_else(|| not_a_number(src))?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| format!("{src:?} is too large"))?;
    }
    value
        .checked_mul(mult)
        .ok_or_else(|| format!("{src:?} is too large"))
}

/// Why `src` is not a number; for a number with a unit we do not know
/// (`64MB`), the units we do.
fn not_a_number(src: &str) -> String {
    let s = src.trim();
    let lead = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if lead > 0 && s[lead..].chars().all(|c| c.is_ascii_alphabetic()) {
        let n = &s[..lead];
        return format!(
            "{src:?} is not a number: write {n}Mi (binary, {n} × 1024²) or {n}M (decimal, \
             {n} × 1000²); the units are k, M, G, T, P, E (powers of 1000) and Ki, Mi, Gi, \
             Ti, Pi, Ei (powers of 1024)"
        );
    }
    format!("{src:?} is not a number")
}

/// An unsigned integer no larger than `max`.
pub fn parse_bounded(src: &str, max: u64) -> Result<u64, String> {
    let v = parse_u64(src)?;
    if v > max {
        return Err(format!("{v} is larger than the maximum of {max}"));
    }
    Ok(v)
}

/// Longest duration accepted for any timeout: one day. Anything longer is
/// almost certainly a mistake and would overflow some clocks' arithmetic.
pub const MAX_SECONDS: f64 = 86_400.0;

/// A duration in seconds (float allowed), `0 <= d <= MAX_SECONDS`.
pub fn parse_seconds(src: &str) -> Result<f64, String> {
    let s = src.trim();
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{src:?} is not a number of seconds"))?;
    if !v.is_finite() {
        return Err(format!("{src:?} is not a finite number of seconds"));
    }
    if v < 0.0 {
        return Err(format!("{src:?} is negative"));
    }
    if v > MAX_SECONDS {
        return Err(format!("{src:?} is more than {MAX_SECONDS} seconds"));
    }
    Ok(v)
}

/// A file mode: at most `0o7777`.
pub fn parse_mode(src: &str) -> Result<u32, String> {
    // `0755` is decimal 755 (0o1363: sticky, others may write) to a YAML
    // reader, never what was meant.
    let t = src.trim();
    if t.len() > 1 && t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()) {
        let v = parse_u64(t).unwrap_or(0);
        return Err(format!(
            "mode {t} is read as the decimal number {v} ({v:#o}), not as octal; write 0o{}",
            t.trim_start_matches('0')
        ));
    }
    let v = parse_u64(src)?;
    if v > 0o7777 {
        return Err(format!("mode {src} is larger than 0o7777"));
    }
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_units_and_decimal_modes_say_what_to_write() {
        let e = parse_u64("64MB").unwrap_err();
        assert!(
            e.contains("write 64Mi (binary, 64 × 1024²) or 64M (decimal"),
            "{e}"
        );
        assert!(e.contains("Ki, Mi, Gi"), "{e}");
        assert_eq!(parse_u64("x1").unwrap_err(), "\"x1\" is not a number");
        let e = parse_mode("0755").unwrap_err();
        assert_eq!(
            e,
            "mode 0755 is read as the decimal number 755 (0o1363), not as octal; write 0o755"
        );
        assert_eq!(parse_mode("0o755"), Ok(0o755));
        assert_eq!(parse_mode("0"), Ok(0));
        assert_eq!(parse_mode("493"), Ok(0o755));
    }

    #[test]
    fn plain_and_units() {
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("104857600"), Ok(104_857_600));
        assert_eq!(parse_u64("100Mi"), Ok(100 << 20));
        assert_eq!(parse_u64("1k"), Ok(1000));
        assert_eq!(parse_u64("8Ki"), Ok(8192));
        assert_eq!(parse_u64("8ki"), Ok(8192));
        assert_eq!(parse_u64("2Gi"), Ok(2 << 30));
        assert_eq!(parse_u64("3G"), Ok(3_000_000_000));
        assert_eq!(parse_u64("1_024"), Ok(1024));
        assert_eq!(parse_u64(" 12 M "), Ok(12_000_000));
        assert_eq!(parse_u64("+5"), Ok(5));
    }

    /// Every suffix multiplies by its own power of 1000 or 1024.
    #[test]
    fn every_unit() {
        let cases: &[(&str, u64)] = &[
            ("1Ki", 1024),
            ("1ki", 1024),
            ("1Mi", 1_048_576),
            ("1Gi", 1_073_741_824),
            ("1Ti", 1_099_511_627_776),
            ("1Pi", 1_125_899_906_842_624),
            ("1Ei", 1_152_921_504_606_846_976),
            ("3Ti", 3 * 1_099_511_627_776),
            ("1k", 1_000),
            ("1K", 1_000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("15Ei", 15 << 60),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_u64(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse_u64("0o755"), Ok(0o755));
        assert_eq!(parse_u64("0xff"), Ok(255));
        assert_eq!(parse_u64("0b101"), Ok(5));
        assert_eq!(parse_u64("0o1Ki"), Ok(1024));
        assert_eq!(parse_u64("0x1E"), Ok(30));
        assert_eq!(parse_u64("0xAE"), Ok(0xae));
        assert!(parse_u64("0x1Mi").is_err());
    }

    #[test]
    fn rejects() {
        for bad in ["", "abc", "-1", "1.5", "_1", "0x", "Mi", "1Xi", "0o9"] {
            assert!(parse_u64(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_u64("18446744073709551616").is_err());
        assert!(parse_u64("17Ei").is_err());
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn bounded() {
        assert_eq!(parse_bounded("10", 10), Ok(10));
        assert!(parse_bounded("11", 10).is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1"), Ok(1.0));
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("0"), Ok(0.0));
        // The bound itself (one day) is accepted; a hair more is not.
        assert_eq!(parse_seconds("86400"), Ok(MAX_SECONDS));
        assert!(parse_seconds("86400.001").is_err());
        for bad in ["NaN", "nan", "inf", "-inf", "-1", "1e300", "86401", "x", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0o755"), Ok(0o755));
        assert_eq!(parse_mode("0o7777"), Ok(0o7777));
        assert!(parse_mode("0o10000").is_err());
        assert_eq!(parse_mode("511"), Ok(0o777));
    }
}
