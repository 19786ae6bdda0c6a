//! `cairn crypt`: lithos's `lithos_crypt`. `encrypt` makes a value for
//! `secret-environ` (or `secret-files`) from a public key alone, so
//! anyone may add a secret; `decrypt` opens one with the private key (a
//! debugging aid for whoever holds it); `check-key` tells whether a value
//! was made for a public key. Values are lithos's v2 format both ways:
//! lithos's run on cairn and cairn's on lithos.

use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::crypt;

/// Longest secret taken (the container config that holds it is at most
/// 1 MiB; its base64 is 4/3 larger).
const MAX_SECRET: usize = 512 << 10;

fn fail(msg: &str) -> u8 {
    eprintln!("cairn crypt: {}", crate::text::escape(msg));
    1
}

fn public_key(path: &Path) -> Result<crypt::PublicKey, String> {
    let text = crate::config::read_file_capped(path, 64 << 10)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    crypt::parse_public_key(&String::from_utf8_lossy(&text))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The secret: `data`, or standard input without one trailing newline.
fn secret(data: Option<String>) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(d) = data {
        return Ok(Zeroizing::new(d.into_bytes()));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET + 1));
    std::io::stdin()
        .take(MAX_SECRET as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("standard input: {e}"))?;
    if buf.len() > MAX_SECRET {
        return Err(format!("the secret is longer than {MAX_SECRET} bytes"));
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(buf)
}

/// `cairn crypt encrypt -k KEY.pub [-n NAMESPACE] [-d DATA]`.
pub fn encrypt(key: &Path, namespace: &str, data: Option<String>) -> u8 {
    let run = || -> Result<String, String> {
        let k = public_key(key)?;
        let s = secret(data)?;
        crypt::encrypt(&k, namespace, &s).map_err(|e| e.to_string())
    };
    match run() {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => fail(&e),
    }
}

/// `cairn crypt decrypt -i KEY [-d DATA]`: the secret on stdout, its
/// namespace on stderr.
pub fn decrypt(key: &Path, data: Option<String>) -> u8 {
    let run = || -> Result<(String, Zeroizing<Vec<u8>>), String> {
        let text = Zeroizing::new(
            crate::config::read_file_capped(key, 64 << 10)
                .map_err(|e| format!("{}: {e}", key.display()))?,
        );
        let keys =
            crypt::parse_private_keys(&text).map_err(|e| format!("{}: {e}", key.display()))?;
        let value = secret(data)?;
        let value = std::str::from_utf8(&value).map_err(|_| "the value is not text".to_string())?;
        crypt::open(&keys, value.trim()).map_err(|e| e.to_string())
    };
    match run() {
        Ok((ns, s)) => {
            eprintln!("namespace: {}", crate::text::escape(&ns));
            let mut out = std::io::stdout();
            if out.write_all(&s).and_then(|_| out.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(e) => fail(&e),
    }
}

/// `cairn crypt check-key -k KEY.pub -d DATA`: 0 when the value was
/// encrypted for this key.
pub fn check_key(key: &Path, data: &str) -> u8 {
    let run = || -> Result<(), String> {
        let k = public_key(key)?;
        let v = crypt::Value::parse(data.trim()).map_err(|e| e.to_string())?;
        let ours = crypt::short_hash(k.as_bytes());
        if v.key_hash != ours {
            return Err(format!(
                "encrypted for another key (key hash {}; {} has {ours})",
                v.key_hash,
                key.display()
            ));
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!(
                "ok: encrypted for {}",
                crate::text::escape(&key.display().to_string())
            );
            0
        }
        Err(e) => fail(&e),
    }
}
