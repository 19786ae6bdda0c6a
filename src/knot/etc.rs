//! Contents of the generated `/etc/hosts` and `/etc/resolv.conf` (pure).

use crate::spec::EtcFile;

/// Build the file: the copied host file (if any), then our lines.
/// `host` is (hostname, address) for `public-hostname`.
pub fn render(f: &EtcFile, copied: Option<&[u8]>, host: Option<(&str, &str)>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(c) = copied {
        out.extend_from_slice(c);
        if !c.is_empty() && !c.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    for line in &f.extra_lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    if f.public_hostname
        && let Some((name, addr)) = host
    {
        out.extend_from_slice(format!("{addr} {name}\n").as_bytes());
    }
    out
}

/// Whether there is anything to write at all.
pub fn wanted(f: &EtcFile) -> bool {
    f.wanted()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(copy: bool, lines: &[&str], public: bool) -> EtcFile {
        EtcFile {
            copy_from: copy.then(|| "/etc/hosts".into()),
            extra_lines: lines.iter().map(|s| s.to_string()).collect(),
            public_hostname: public,
            mount: None,
        }
    }

    #[test]
    fn renders_in_order() {
        let f = etc(true, &["127.0.0.1 localhost", "10.0.0.5 db"], true);
        let out = render(&f, Some(b"1.2.3.4 h"), Some(("box", "10.1.1.1")));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.2.3.4 h\n127.0.0.1 localhost\n10.0.0.5 db\n10.1.1.1 box\n"
        );
        assert!(wanted(&f));
        assert!(!wanted(&etc(false, &[], false)));
        assert_eq!(render(&etc(false, &[], true), None, None), b"");
    }
}
