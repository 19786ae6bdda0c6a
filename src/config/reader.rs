//! Typed access to a quire AST, with errors that name file, line and key.
//!
//! We do not use quire's validators or its serde deserializer: they panic on
//! some inputs (global tags hit `unimplemented!()`) and their messages lose
//! the key. Instead each config module walks the AST through `Value` and
//! `Fields`, which also implement lithos's rules: a key may be spelled with
//! `-` or `_`, keys starting with `_` are ignored (a place for YAML anchors),
//! and any other unknown key is an error.

use quire::ast::{Ast, ScalarKind, Tag};

use super::error::{ConfigError, Problems};
use super::units;

/// One node of a parsed file, with the key path that led to it.
#[derive(Clone)]
pub struct Value<'a> {
    pub file: &'a str,
    pub ast: &'a Ast,
    pub path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Value<'a> {
    pub fn root(file: &'a str, ast: &'a Ast) -> Value<'a> {
        Value {
            file,
            ast,
            path: String::new(),
        }
    }

    pub fn line(&self) -> usize {
        self.ast.pos().line
    }

    /// An error about this node.
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, message)
            .at(self.line())
            .key(self.path.clone())
    }

    pub fn is_null(&self) -> bool {
        matches!(self.ast, Ast::Null(..))
    }

    /// The local tag (`!Tmpfs` → `Tmpfs`), if any.
    pub fn tag(&self) -> Option<&'a str> {
        match self.ast.tag() {
            Tag::LocalTag(t) => Some(t.as_str()),
            _ => None,
        }
    }

    fn untagged(&self) -> Result<(), ConfigError> {
        match self.tag() {
            Some(t) => Err(self.err(format!("unexpected tag !{t}"))),
            None => Ok(()),
        }
    }

    /// A scalar as text (plain or quoted).
    pub fn str(&self) -> Result<&'a str, ConfigError> {
        self.untagged()?;
        match self.ast {
            Ast::Scalar(_, _, _, s) => Ok(s.as_str()),
            Ast::Null(..) => Err(self.err("a value is expected, found null")),
            Ast::Map(..) => Err(self.err("a scalar is expected, found a mapping")),
            Ast::Seq(..) => Err(self.err("a scalar is expected, found a sequence")),
        }
    }

    /// A scalar as text, where a tag is allowed (variables, volumes).
    pub fn str_any_tag(&self) -> Result<&'a str, ConfigError> {
        match self.ast {
            Ast::Scalar(_, _, _, s) => Ok(s.as_str()),
            _ => Err(self.err("a scalar is expected")),
        }
    }

    pub fn is_quoted(&self) -> bool {
        matches!(self.ast, Ast::Scalar(_, _, ScalarKind::Quoted, _))
    }

    pub fn string(&self) -> Result<String, ConfigError> {
        self.str().map(str::to_string)
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.str()? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(self.err(format!("{other:?} is not a boolean (true or false)"))),
        }
    }

    pub fn u64(&self) -> Result<u64, ConfigError> {
        units::parse_u64(self.str()?).map_err(|e| self.err(e))
    }

    pub fn bounded(&self, max: u64) -> Result<u64, ConfigError> {
        units::parse_bounded(self.str()?, max).map_err(|e| self.err(e))
    }

    /// A user or group id: a plain number below 2^32-1 (which is "no id").
    pub fn id(&self) -> Result<u32, ConfigError> {
        Ok(self.bounded(u64::from(u32::MAX) - 1)? as u32)
    }

    pub fn u32(&self) -> Result<u32, ConfigError> {
        Ok(self.bounded(u64::from(u32::MAX))? as u32)
    }

    pub fn seconds(&self) -> Result<f64, ConfigError> {
        units::parse_seconds(self.str()?).map_err(|e| self.err(e))
    }

    pub fn mode(&self) -> Result<u32, ConfigError> {
        units::parse_mode(self.str()?).map_err(|e| self.err(e))
    }

    /// A sequence (null is an empty one).
    pub fn seq(&self) -> Result<Vec<Value<'a>>, ConfigError> {
        self.untagged()?;
        match self.ast {
            Ast::Seq(_, _, items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, ast)| Value {
                    file: self.file,
                    ast,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            Ast::Null(..) => Ok(Vec::new()),
            _ => Err(self.err("a sequence is expected")),
        }
    }

    /// A mapping with free-form keys (null is an empty one), in key order.
    pub fn map(&self) -> Result<Vec<(&'a str, Value<'a>)>, ConfigError> {
        self.map_tagged_ok()
            .and_then(|m| self.untagged().map(|_| m))
    }

    /// Like `map`, but a tag on the mapping itself is the caller's business.
    pub fn map_tagged_ok(&self) -> Result<Vec<(&'a str, Value<'a>)>, ConfigError> {
        match self.ast {
            Ast::Map(_, _, items) => Ok(items
                .iter()
                .map(|(k, ast)| {
                    (
                        k.as_str(),
                        Value {
                            file: self.file,
                            ast,
                            path: join(&self.path, k),
                        },
                    )
                })
                .collect()),
            Ast::Null(..) => Ok(Vec::new()),
            _ => Err(self.err("a mapping is expected")),
        }
    }

    /// A mapping with a fixed set of keys (a struct).
    pub fn fields(&self) -> Result<Fields<'a>, ConfigError> {
        self.untagged()?;
        self.fields_tagged_ok()
    }

    pub fn fields_tagged_ok(&self) -> Result<Fields<'a>, ConfigError> {
        let entries = self.map_tagged_ok()?;
        Ok(Fields {
            owner: self.clone(),
            entries: entries
                .into_iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.replace('_', "-"), k, v, false))
                .collect(),
        })
    }
}

/// The keys of a struct-like mapping; `finish` reports the unknown ones.
pub struct Fields<'a> {
    owner: Value<'a>,
    /// (normalized key, key as written, value, taken)
    entries: Vec<(String, &'a str, Value<'a>, bool)>,
}

impl<'a> Fields<'a> {
    /// The value of `key` (written with dashes; `_` spelling matches too),
    /// including an explicit null. A key given in both spellings is an
    /// error reported by `finish`.
    pub fn get(&mut self, key: &str) -> Option<Value<'a>> {
        let mut found = None;
        for entry in self.entries.iter_mut() {
            if entry.0 == key {
                entry.3 = true;
                if found.is_none() {
                    found = Some(entry.2.clone());
                }
            }
        }
        found
    }

    /// The value of `key`, where null counts as absent.
    pub fn opt(&mut self, key: &str) -> Option<Value<'a>> {
        self.get(key).filter(|v| !v.is_null())
    }

    /// A required key.
    pub fn req(&mut self, key: &str) -> Result<Value<'a>, ConfigError> {
        self.opt(key).ok_or_else(|| {
            let mut e = self.owner.err(format!("required key {key:?} is missing"));
            e.key = Some(join(&self.owner.path, key)).filter(|s| !s.is_empty());
            e
        })
    }

    pub fn owner(&self) -> &Value<'a> {
        &self.owner
    }

    /// Report keys that were never asked for and keys given twice.
    pub fn finish(self, problems: &mut Problems) {
        for (i, (norm, orig, value, taken)) in self.entries.iter().enumerate() {
            if !taken {
                let _ = orig;
                problems.push(value.err("unknown key"));
            } else if self.entries[..i].iter().any(|e| &e.0 == norm) {
                problems.push(value.err(format!("key {norm:?} is given twice (once as {orig:?})")));
            }
        }
    }
}

/// Run `f` and record its error, if any, in `problems`.
pub fn check<T>(problems: &mut Problems, r: Result<T, ConfigError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(e);
            None
        }
    }
}

/// Finish a map of fields read one value at a time: its first problem
/// (an unknown key), if any.
pub fn finish_one(f: Fields) -> Result<(), ConfigError> {
    let mut p = Problems::new();
    f.finish(&mut p);
    match p.0.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An optional boolean field.
pub fn opt_bool(f: &mut Fields, key: &str) -> Result<Option<bool>, ConfigError> {
    f.opt(key).map(|v| v.bool()).transpose()
}
