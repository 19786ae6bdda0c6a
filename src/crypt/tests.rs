use super::*;

// A test key (seed 00 01 .. 1f, comment "test"), written by Python's
// `cryptography` and accepted by `ssh-keygen -y`: made by
// `scripts/lithos-secret.py key 000102...1f DIR`. Not a secret.
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUx
OQAAACADoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuAAAAIi4vfWQuL31kAAAAAtzc2gt
ZWQyNTUxOQAAACADoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuAAAAEAAAQIDBAUGBwgJ
CgsMDQ4PEBESExQVFhcYGRobHB0eHwOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4AAAA
AAECAwQF
-----END OPENSSH PRIVATE KEY-----
";
const PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 test\n";

// Made by libsodium (PyNaCl) as lithos makes them, for KEY:
// `printf the_secret | scripts/lithos-secret.py encrypt key.pub myapp` and
// `printf 'p@ss word' | scripts/lithos-secret.py encrypt key.pub ""`.
const MYAPP_THE_SECRET: &str = "v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:FevSFB+JYlOY2v9t1Ey4Hc7k76OZtv+9vSsq0wEAc2MPl1CQPJ2XN3qeCaJfV3EPTRwNmtEBED4uCCipvfMlyQ==";
const EMPTY_NS: &str = "v2:i4+dWTpg:3dnEB2f5:IuPa74Iy:liJtd8GdQyyBhrw1BHk7HzpCY2eH8JHyGBjNeCyOiUU8W8rLJ86SB4cOI3lc5BCULka6LYkWZ40a3A==";

fn keys() -> Vec<PrivateKey> {
    parse_private_keys(KEY.as_bytes()).expect("test key")
}

fn ns(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn short_hashes_are_lithos_s_documented_ones() {
    // docs/tips/secrets.rst: `echo -n "the_secret" | b2sum -l48 | xxd -r -p
    // | base64` is 8MtOoWUX; its example for `-n myapp` has KqWSX0BY.
    assert_eq!(short_hash(b"the_secret"), "8MtOoWUX");
    assert_eq!(short_hash(b"myapp"), "KqWSX0BY");
}

#[test]
fn keys_parse_and_belong_together() {
    let k = keys();
    assert_eq!(k.len(), 1);
    assert_eq!(parse_public_key(PUB).expect("pub"), *k[0].public());
    assert_eq!(short_hash(k[0].public().as_bytes()), "i4+dWTpg");
}

#[test]
fn a_value_made_by_libsodium_as_lithos_makes_it_decrypts() {
    let s = decrypt(&keys(), &ns(&["myapp"]), MYAPP_THE_SECRET).expect("decrypts");
    assert_eq!(s.as_slice(), b"the_secret");
    let s = decrypt(&keys(), &ns(&[""]), EMPTY_NS).expect("decrypts");
    assert_eq!(s.as_slice(), b"p@ss word");
}

#[test]
fn round_trip() {
    let public = parse_public_key(PUB).expect("pub");
    for secret in [&b"x"[..], b"with:colons:", b"\xff\x00binary", &[b'a'; 5000]] {
        let v = encrypt(&public, "team.a-1_b", secret).expect("encrypts");
        assert!(v.starts_with("v2:i4+dWTpg:"));
        let back = decrypt(&keys(), &ns(&["other", "team.a-1_b"]), &v).expect("decrypts");
        assert_eq!(back.as_slice(), secret);
    }
    // Each encryption differs (a fresh ephemeral key), and each decrypts.
    let a = encrypt(&public, "", b"same").expect("encrypts");
    let b = encrypt(&public, "", b"same").expect("encrypts");
    assert_ne!(a, b);
    assert_eq!(a[..30], b[..30]);
}

#[test]
fn a_wrong_key_is_its_own_error() {
    // Another test key, seed 1f 1e .. 00.
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = 31 - i as u8;
    }
    let other = {
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::{Scalar, clamp_integer};
        use sha2::{Digest, Sha512};
        let h = Sha512::digest(seed);
        let mut half = [0u8; 32];
        half.copy_from_slice(&h[..32]);
        let s = Scalar::from_bytes_mod_order(clamp_integer(half));
        EdwardsPoint::mul_base(&s).compress().0
    };
    let other = PrivateKey::from_seed(Zeroizing::new(seed), other).expect("key");
    let e = decrypt(&[other], &ns(&["myapp"]), MYAPP_THE_SECRET).expect_err("wrong key");
    assert!(matches!(e, DecryptError::WrongKey { ref value, .. } if value == "i4+dWTpg"));
    assert!(e.to_string().contains("encrypted for another key"), "{e}");
}

#[test]
fn a_wrong_namespace_is_its_own_error() {
    let e = decrypt(&keys(), &ns(&["otherapp"]), MYAPP_THE_SECRET).expect_err("wrong ns");
    assert!(matches!(e, DecryptError::WrongNamespace { ref value, .. } if value == "KqWSX0BY"));
    assert!(e.to_string().contains("\"otherapp\""), "{e}");
    // The default namespace of a sandbox without secrets-namespaces is "".
    let e = decrypt(&keys(), &ns(&[""]), MYAPP_THE_SECRET).expect_err("wrong ns");
    assert!(matches!(e, DecryptError::WrongNamespace { .. }));
}

#[test]
fn corrupt_values_are_their_own_errors() {
    // One bit of the sealed data flipped: the tag no longer matches.
    let v = Value::parse(MYAPP_THE_SECRET).expect("parses");
    let mut sealed = v.sealed.clone();
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let bad = format!(
        "v2:{}:{}:{}:{}",
        v.key_hash,
        v.namespace_hash,
        v.secret_hash,
        STANDARD.encode(&sealed)
    );
    let e = decrypt(&keys(), &ns(&["myapp"]), &bad).expect_err("corrupt");
    assert_eq!(e, DecryptError::Corrupt);
    // A secret hash that is not the secret's.
    let bad = MYAPP_THE_SECRET.replace("8MtOoWUX", "AAAAAAAA");
    let e = decrypt(&keys(), &ns(&["myapp"]), &bad).expect_err("mismatch");
    assert_eq!(e, DecryptError::Mismatch("secret"));
    // Malformed values, each with its reason.
    let cases = [
        ("v1:a:b:c:d", FormatError::NotV2),
        ("the_secret", FormatError::NotV2),
        ("v2:i4+dWTpg:KqWSX0BY:8MtOoWUX", FormatError::Fields(4)),
        (
            "v2:i4+dWTp:KqWSX0BY:8MtOoWUX:AAAA",
            FormatError::Hash("key"),
        ),
        (
            "v2:i4+dWTpg:KqWSX0B!:8MtOoWUX:AAAA",
            FormatError::Hash("namespace"),
        ),
        (
            "v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:not base64!",
            FormatError::Base64,
        ),
        ("v2:i4+dWTpg:KqWSX0BY:8MtOoWUX:AAAA", FormatError::Short(3)),
    ];
    for (text, want) in cases {
        assert_eq!(
            decrypt(&keys(), &ns(&["myapp"]), text),
            Err(DecryptError::Format(want.clone())),
            "{text}"
        );
    }
}

#[test]
fn the_first_value_that_decrypts_wins() {
    let values = [
        "v2:AAAAAAAA:KqWSX0BY:8MtOoWUX:AAAA".to_string(),
        EMPTY_NS.to_string(),
        MYAPP_THE_SECRET.to_string(),
    ];
    let s = decrypt_any(&keys(), &ns(&["myapp"]), &values).expect("one decrypts");
    assert_eq!(s.as_slice(), b"the_secret");
    let errs = decrypt_any(&keys(), &ns(&["nope"]), &values).expect_err("none");
    assert_eq!(errs.len(), 3);
}

#[test]
fn env_values_are_text() {
    assert_eq!(
        env_value(Zeroizing::new(b"ok".to_vec()))
            .expect("text")
            .as_str(),
        "ok"
    );
    assert_eq!(
        env_value(Zeroizing::new(b"a\0b".to_vec())),
        Err(DecryptError::NotText)
    );
    assert_eq!(
        env_value(Zeroizing::new(vec![0xff])),
        Err(DecryptError::NotText)
    );
}

#[test]
fn bad_keys_are_refused_with_a_reason() {
    assert_eq!(
        parse_private_keys(b"not a key").expect_err("armor"),
        KeyError::PrivateArmor
    );
    assert_eq!(
        parse_public_key("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x").expect_err("rsa"),
        KeyError::Type("ssh-rsa".into())
    );
    // The public half of the pair changed: the halves no longer match.
    let tampered = KEY.replace("HwOhB7", "HwOhB8");
    assert!(parse_private_keys(tampered.as_bytes()).is_err());
    // Namespaces as lithos_crypt accepts them.
    assert!(namespace_ok("") && namespace_ok("a.b-c_9"));
    assert!(!namespace_ok("a:b") && !namespace_ok("a b"));
    assert_eq!(
        encrypt(&parse_public_key(PUB).expect("pub"), "a:b", b"x"),
        Err(EncryptError::Namespace("a:b".into()))
    );
}
