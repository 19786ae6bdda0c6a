//! The bounded YAML loader alone (saphyr pre-flight + quire), with the
//! limits used for untrusted container configs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cairn_fuzz::install_panic_hook(), |data: &[u8]| {
    let limits = &cairn::config::yaml::UNTRUSTED;
    match cairn::config::yaml::parse("f", data, limits) {
        Ok(ast) => {
            // What passed the pre-flight was bounded by it.
            assert!(data.len() <= limits.max_bytes);
            let _ = ast.pos();
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            let _ = e.to_string();
        }
    }
});
