//! Container variables: declared types, value checks, `@{name}` substitution.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::reader::Value;

/// How a `!TcpPort` variable's socket reaches the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Only the number is substituted; the config's `tcp-ports` opens it.
    None,
    /// The socket is passed systemd-style: next free fd from 3,
    /// `LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`.
    Systemd,
}

/// The type of a declared variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarType {
    TcpPort { activation: Activation },
    Choice(Vec<String>),
    Name,
    DottedName,
}

impl VarType {
    pub fn describe(&self) -> String {
        match self {
            VarType::TcpPort { .. } => "!TcpPort".into(),
            VarType::Choice(c) => format!("!Choice {c:?}"),
            VarType::Name => "!Name".into(),
            VarType::DottedName => "!DottedName".into(),
        }
    }

    /// Check a value given by a process entry against this type. Port
    /// ranges against the sandbox are checked by the caller.
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            VarType::TcpPort { .. } => parse_port(value).map(|_| ()),
            VarType::Choice(options) => {
                if options.iter().any(|o| o == value) {
                    Ok(())
                } else {
                    Err(format!("{value:?} is not one of {options:?}"))
                }
            }
            VarType::Name => {
                if is_name(value) {
                    Ok(())
                } else {
                    Err(format!(
                        "{value:?} is not a name (letters, digits, '-' and '_')"
                    ))
                }
            }
            VarType::DottedName => {
                let ok = !value.is_empty()
                    && value.split('.').all(|part| {
                        is_name(part) && !part.starts_with('-') && !part.ends_with('-')
                    });
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{value:?} is not a dotted name (non-empty parts of letters, digits, '-' and '_', separated by '.')"
                    ))
                }
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A TCP port number, 1..=65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    match t.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port".into()),
        Ok(p) if t.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("{s:?} is not a TCP port (1-65535)")),
    }
}

/// Read a declaration such as `!TcpPort {activation: systemd}`.
pub fn read_var_type(v: &Value) -> Result<VarType, ConfigError> {
    match v.tag() {
        Some("TcpPort") => {
            let activation = if v.is_null() {
                Activation::None
            } else if let Ok(s) = v.str_any_tag() {
                activation_from(v, s)?
            } else {
                let mut f = v.fields_tagged_ok()?;
                let a = match f.opt("activation") {
                    Some(a) => activation_from(&a, a.str()?)?,
                    None => Activation::None,
                };
                let mut p = super::error::Problems::new();
                f.finish(&mut p);
                if let Some(e) = p.0.into_iter().next() {
                    return Err(e);
                }
                a
            };
            Ok(VarType::TcpPort { activation })
        }
        Some("Choice") => {
            if !matches!(v.ast, quire::ast::Ast::Seq(..)) {
                return Err(v.err("!Choice needs a list of options, e.g. !Choice [a, b]"));
            }
            let items = seq_items(v)?;
            if items.is_empty() {
                return Err(v.err("!Choice needs at least one option"));
            }
            Ok(VarType::Choice(items))
        }
        Some("Name") => Ok(VarType::Name),
        Some("DottedName") => Ok(VarType::DottedName),
        Some(other) => Err(v.err(format!(
            "unknown variable type !{other} (expected !TcpPort, !Choice, !Name or !DottedName)"
        ))),
        None => {
            Err(v
                .err("a variable type is expected (!TcpPort, !Choice [...], !Name or !DottedName)"))
        }
    }
}

fn seq_items(v: &Value) -> Result<Vec<String>, ConfigError> {
    let quire::ast::Ast::Seq(_, _, items) = v.ast else {
        return Err(v.err("a sequence is expected"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, ast)| {
            Value {
                file: v.file,
                ast,
                path: format!("{}[{i}]", v.path),
            }
            .string()
        })
        .collect()
}

fn activation_from(v: &Value, s: &str) -> Result<Activation, ConfigError> {
    match s {
        "systemd" => Ok(Activation::Systemd),
        "none" => Ok(Activation::None),
        other => Err(v.err(format!(
            "activation {other:?} is not known (expected systemd or none)"
        ))),
    }
}

/// Names of the built-in variables (both spellings).
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "lithos:name" | "cairn:name" => Some("name"),
        "lithos:config_filename" | "cairn:config_filename" => Some("config_filename"),
        "lithos:pid" | "cairn:pid" => Some("pid"),
        _ => None,
    }
}

/// One piece of a template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Split `@{name}` references out of a template. An unclosed `@{` is text.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        out.push(Piece::Var(rest[start + 2..start + 2 + len].trim()));
        rest = &rest[start + 2 + len + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The variable names a template refers to.
pub fn references(template: &str) -> Vec<&str> {
    pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Replace every `@{name}` with `lookup(name)`; an unknown name is an error
/// naming it. `@{lithos:pid}` is never substituted here: it is only valid as
/// a whole environ value, which the caller handles before.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => {
                if builtin(name) == Some("pid") {
                    return Err(format!(
                        "@{{{name}}} may only be used as a whole environ value"
                    ));
                }
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(format!("unknown variable @{{{name}}}")),
                }
            }
        }
    }
    Ok(out)
}

/// Is this environ value exactly `@{lithos:pid}` (or the cairn spelling)?
pub fn is_pid_placeholder(value: &str) -> bool {
    let p = pieces(value);
    matches!(p.as_slice(), [Piece::Var(v)] if builtin(v) == Some("pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(name: &str) -> Option<String> {
        match name {
            "port" => Some("8080".into()),
            "lithos:name" => Some("s/p.0".into()),
            "x" => Some("".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute("plain", &look).unwrap(), "plain");
        assert_eq!(substitute("--port=@{port}", &look).unwrap(), "--port=8080");
        assert_eq!(substitute("@{ port }", &look).unwrap(), "8080");
        assert_eq!(substitute("@{port}@{port}", &look).unwrap(), "80808080");
        assert_eq!(substitute("a@{x}b", &look).unwrap(), "ab");
        assert_eq!(substitute("@{lithos:name}", &look).unwrap(), "s/p.0");
        assert_eq!(
            substitute("unclosed @{port", &look).unwrap(),
            "unclosed @{port"
        );
        assert_eq!(substitute("@", &look).unwrap(), "@");
        assert_eq!(
            substitute("@{}x", &look).unwrap_err(),
            "unknown variable @{}"
        );
        assert_eq!(
            substitute("@{nope}", &look).unwrap_err(),
            "unknown variable @{nope}"
        );
        assert!(substitute("pid=@{lithos:pid}", &look).is_err());
        assert!(substitute("@{cairn:pid}", &look).is_err());
    }

    #[test]
    fn pid_placeholder() {
        assert!(is_pid_placeholder("@{lithos:pid}"));
        assert!(is_pid_placeholder("@{ cairn:pid }"));
        assert!(!is_pid_placeholder("x@{lithos:pid}"));
        assert!(!is_pid_placeholder("@{lithos:name}"));
    }

    #[test]
    fn refs() {
        assert_eq!(references("a @{b} @{ c } @{d"), vec!["b", "c"]);
        assert!(references("none").is_empty());
    }

    /// How a type is named in messages: as it is written in a config.
    #[test]
    fn descriptions() {
        let port = VarType::TcpPort {
            activation: Activation::Systemd,
        };
        assert_eq!(port.describe(), "!TcpPort");
        assert_eq!(
            VarType::Choice(vec!["ru".into(), "ua".into()]).describe(),
            "!Choice [\"ru\", \"ua\"]"
        );
        assert_eq!(VarType::Name.describe(), "!Name");
        assert_eq!(VarType::DottedName.describe(), "!DottedName");
    }

    #[test]
    fn value_checks() {
        let port = VarType::TcpPort {
            activation: Activation::None,
        };
        assert!(port.check("80").is_ok());
        assert!(port.check("65535").is_ok());
        for bad in ["0", "65536", "-1", "x", "", "+80"] {
            assert!(port.check(bad).is_err(), "{bad}");
        }
        let choice = VarType::Choice(vec!["ru".into(), "ua".into()]);
        assert!(choice.check("ru").is_ok());
        assert!(choice.check("en").is_err());
        assert!(VarType::Name.check("web-1_a").is_ok());
        assert!(VarType::Name.check("a.b").is_err());
        assert!(VarType::Name.check("").is_err());
        assert!(VarType::DottedName.check("a.b-c.d_e").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.-b", "a.b-", "a b"] {
            assert!(VarType::DottedName.check(bad).is_err(), "{bad}");
        }
    }
}
