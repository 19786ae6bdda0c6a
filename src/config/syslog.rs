//! The syslog keys of master.yaml: `syslog-facility` (a name from
//! syslog(3)'s list, checked here so `cairn check` and the tree's start
//! report a typo with its file, line and key) and `syslog-name` (the
//! program name in every message).

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::reader::{Value, closest};

/// A syslog facility, with the code syslog(3) gives it (`<sys/syslog.h>`;
/// the PRI of a message is `code * 8 + severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User = 1,
    Mail = 2,
    Daemon = 3,
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    Authpriv = 10,
    Ftp = 11,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

/// Every facility by the name master.yaml gives it.
pub const FACILITIES: &[(&str, Facility)] = &[
    ("kern", Facility::Kern),
    ("user", Facility::User),
    ("mail", Facility::Mail),
    ("daemon", Facility::Daemon),
    ("auth", Facility::Auth),
    ("syslog", Facility::Syslog),
    ("lpr", Facility::Lpr),
    ("news", Facility::News),
    ("uucp", Facility::Uucp),
    ("cron", Facility::Cron),
    ("authpriv", Facility::Authpriv),
    ("ftp", Facility::Ftp),
    ("local0", Facility::Local0),
    ("local1", Facility::Local1),
    ("local2", Facility::Local2),
    ("local3", Facility::Local3),
    ("local4", Facility::Local4),
    ("local5", Facility::Local5),
    ("local6", Facility::Local6),
    ("local7", Facility::Local7),
];

impl Facility {
    /// The facility called `name` (case does not matter).
    pub fn parse(name: &str) -> Option<Facility> {
        let name = name.to_ascii_lowercase();
        FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    pub(super) fn read(v: &Value) -> Result<Facility, ConfigError> {
        let s = v.str()?;
        Facility::parse(s).ok_or_else(|| {
            let lower = s.to_ascii_lowercase();
            let hint = closest(&lower, FACILITIES.iter().map(|(n, _)| *n))
                .map(|n| format!("; did you mean {n:?}?"))
                .unwrap_or_default();
            let known: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            v.err(format!(
                "{s:?} is not a syslog facility{hint} (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// The longest `syslog-name`. RFC 3164 allows a tag of 32 characters;
/// syslog daemons and journald take longer ones, so a little more room.
pub const MAX_NAME: usize = 48;

/// A `syslog-name`: printable ASCII without spaces, `:`, `[` or `]`, which
/// end the program name in a syslog line (`NAME[PID]: message`), so that
/// every reader finds the name and the message where they are.
pub(super) fn read_name(v: &Value) -> Result<String, ConfigError> {
    let s = v.str()?;
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(v.err(format!(
            "{s:?} is not a syslog name (1 to {MAX_NAME} characters)"
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, ':' | '[' | ']'))
    {
        return Err(v.err(format!(
            "{s:?} is not a syslog name: {c:?} is not allowed (printable ASCII without spaces, ':', '[' or ']')"
        )));
    }
    Ok(s.to_string())
}
