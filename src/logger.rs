//! The tree's log: `<default-log-dir>/<log-file>` (or stderr with
//! `--log-stderr`), one line per record: `TIME LEVEL message`, the message
//! escaped (`crate::text::escape`).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::text::rfc3339_ms;

enum Sink {
    Stderr,
    File(std::fs::File),
}

struct Logger {
    sink: Mutex<Sink>,
    level: log::LevelFilter,
}

/// The log file, for `reopen`.
static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
static LOGGER: std::sync::OnceLock<&'static Logger> = std::sync::OnceLock::new();

/// Root's alone, never through a symlink (sys::hostfs).
fn open(p: &Path) -> Result<std::fs::File, String> {
    crate::sys::hostfs::open_log(p).map_err(|e| e.to_string())
}

/// Reopen the log file (after logrotate moved it away); on SIGHUP.
pub fn reopen() {
    if let (Some(path), Some(logger)) = (FILE.get(), LOGGER.get())
        && let Ok(f) = open(path)
        && let Ok(mut sink) = logger.sink.lock()
    {
        *sink = Sink::File(f);
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // The whole message is escaped here, so that no caller can forget:
        // what it quotes (a config value, a path, a knot's error) may come
        // from an image and must stay inside this one line.
        let message = r.args().to_string();
        let message = crate::text::escape(&message);
        let line = format!(
            "{} {} {message}\n",
            rfc3339_ms(SystemTime::now()),
            r.level()
        );
        if let Ok(mut sink) = self.sink.lock() {
            let _ = match &mut *sink {
                Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
                Sink::File(f) => f.write_all(line.as_bytes()),
            };
        }
    }
    fn flush(&self) {}
}

/// Install the global logger. `file = None` logs to stderr.
pub fn init(file: Option<&Path>, level: log::LevelFilter) -> Result<(), String> {
    let sink = match file {
        None => Sink::Stderr,
        Some(p) => {
            let _ = FILE.set(p.to_path_buf());
            Sink::File(open(p)?)
        }
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        sink: Mutex::new(sink),
        level,
    }));
    let _ = LOGGER.set(logger);
    log::set_logger(logger).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}
