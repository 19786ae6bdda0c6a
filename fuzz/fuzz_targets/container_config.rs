//! Untrusted container config bytes (they come from images) through the
//! full parse, then the standalone validation `cairn check --container` runs.
//!
//! Must never panic (abort), exceed the libFuzzer `-timeout` (aim: ~1 s per
//! input) or the `-rss_limit_mb`/`-malloc_limit_mb` (aim: 512 MiB).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cairn_fuzz::install_panic_hook(), |data: &[u8]| {
    let before = cairn_fuzz::TOLERATED.load(std::sync::atomic::Ordering::Relaxed);
    match cairn::config::container::parse("fuzz.yaml", data) {
        Ok(cfg) => {
            // A config that parsed cannot have come through a quire panic.
            assert_eq!(
                before,
                cairn_fuzz::TOLERATED.load(std::sync::atomic::Ordering::Relaxed),
                "parse succeeded although quire panicked"
            );
            let problems = cairn::config::validate::standalone("fuzz.yaml", &cfg);
            // Messages are shown to operators: formatting them must not panic.
            let _ = problems.to_string();
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "parse failed without naming a problem");
            let _ = problems.to_string();
        }
    }
});
