//! Helpers shared by the fuzz targets.
//!
//! libfuzzer-sys installs a panic hook that aborts on *every* panic, even one
//! that would be caught. `cairn::config::yaml` deliberately runs quire (the
//! YAML parser) under `catch_unwind` and turns a quire panic into a config
//! error, so by default such a panic is reported as a crash: it is a real
//! quire bug and cairn only survives it because it is built with
//! `panic = "unwind"`.
//!
//! Set `CAIRN_FUZZ_ALLOW_QUIRE_PANICS=1` to let panics raised while quire is
//! on the stack unwind to cairn's `catch_unwind` instead (the target then
//! checks that the parse returned an error), so a long run is not stopped
//! by a quire bug that is already known. Each distinct panic location is
//! printed once. Any other panic (cairn's own code, saphyr's pre-flight)
//! still aborts.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Number of panics tolerated so far (only in the permissive mode).
pub static TOLERATED: AtomicUsize = AtomicUsize::new(0);

/// Was this panic raised while quire (run by `yaml::quire_parse` under
/// `catch_unwind`) was on the stack? The location check is cheap; the
/// backtrace (slow) is only taken for panics located elsewhere, e.g. in std
/// code called by quire without `#[track_caller]`.
fn inside_quire(file: &str) -> bool {
    if file.contains("/quire-") {
        return true;
    }
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    bt.contains("quire::") || bt.contains("yaml::quire_parse")
}

/// Call from `fuzz_target!(init: ...)` in targets that reach quire.
pub fn install_panic_hook() {
    let allow = std::env::var_os("CAIRN_FUZZ_ALLOW_QUIRE_PANICS").is_some_and(|v| v == "1");
    if !allow {
        return; // keep libfuzzer-sys's abort-on-any-panic hook
    }
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map(|l| l.to_string()).unwrap_or_default();
        if inside_quire(&file) {
            TOLERATED.fetch_add(1, Ordering::Relaxed);
            let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
            if seen.get_or_insert_with(HashSet::new).insert(file.clone()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                eprintln!("cairn-fuzz: tolerated quire panic at {file}: {msg}");
            }
            return; // unwind to cairn's catch_unwind
        }
        fuzzer_hook(info); // prints and aborts
    }));
}
