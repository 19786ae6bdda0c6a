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
        self.seq_tagged_ok()
    }

    /// Like `seq`, but a tag on the sequence itself is the caller's
    /// business (`!Exec [...]`).
    pub fn seq_tagged_ok(&self) -> Result<Vec<Value<'a>>, ConfigError> {
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
            asked: Vec::new(),
        })
    }
}

/// The keys of a struct-like mapping; `finish` reports the unknown ones.
pub struct Fields<'a> {
    owner: Value<'a>,
    /// (normalized key, key as written, value, taken)
    entries: Vec<(String, &'a str, Value<'a>, bool)>,
    /// Every key asked for: the keys this mapping knows (for "did you
    /// mean" on an unknown one).
    asked: Vec<String>,
}

impl<'a> Fields<'a> {
    /// The value of `key` (written with dashes; `_` spelling matches too),
    /// including an explicit null. A key given in both spellings is an
    /// error reported by `finish`.
    pub fn get(&mut self, key: &str) -> Option<Value<'a>> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
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

    /// The value of `key`, where an untagged null counts as absent (a
    /// bare tag such as `!Notify` is a tagged null, and a value).
    pub fn opt_tagged(&mut self, key: &str) -> Option<Value<'a>> {
        self.get(key).filter(|v| !v.is_null() || v.tag().is_some())
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
                let hint = closest(norm, self.asked.iter().map(String::as_str))
                    .map(|k| format!("; did you mean {k:?}?"))
                    .unwrap_or_default();
                problems.push(value.err(format!("unknown key{hint}")));
            } else if self.entries[..i].iter().any(|e| &e.0 == norm) {
                problems.push(value.err(format!("key {norm:?} is given twice (once as {orig:?})")));
            }
        }
    }
}

/// Edit distance (Levenshtein) of two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The known key closest to `key`, if one is close enough to be a typo
/// (at most a third of its length, and 3, edits away).
pub fn closest<'k>(key: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let most = (key.chars().count() / 3).clamp(1, 3);
    known
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= most)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn ast(text: &str) -> Ast {
        yaml::parse("/t.yaml", text.as_bytes(), &yaml::TRUSTED).unwrap()
    }

    #[test]
    fn typos_get_the_closest_known_key() {
        assert_eq!(distance("restart-timout", "restart-timeout"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        let known = ["restart-timeout", "kill-timeout", "executable", "user-id"];
        assert_eq!(
            closest("restart-timout", known.iter().copied()),
            Some("restart-timeout")
        );
        assert_eq!(
            closest("executabel", known.iter().copied()),
            Some("executable")
        );
        assert_eq!(closest("uid", known.iter().copied()), None);
        assert_eq!(closest("colour", known.iter().copied()), None);
        let a = ast("{kill-timout: 1, user-id: 2}");
        let v = Value::root("/t.yaml", &a);
        let mut f = v.fields().unwrap();
        for k in known {
            let _ = f.opt(k);
        }
        let mut p = Problems::new();
        f.finish(&mut p);
        let e = p.iter().next().expect("a problem").to_string();
        assert!(
            e.contains("unknown key; did you mean \"kill-timeout\"?"),
            "{e}"
        );
    }

    #[test]
    fn tags_are_refused_where_none_is_expected() {
        let a = ast("!Foo x");
        let v = Value::root("/t.yaml", &a);
        assert_eq!(v.tag(), Some("Foo"));
        let e = v.str().unwrap_err();
        assert!(e.message.contains("unexpected tag !Foo"), "{e}");
        assert_eq!(v.str_any_tag().unwrap(), "x");
        let a = ast("!Foo [a]");
        let e = Value::root("/t.yaml", &a).seq().err().expect("an error");
        assert!(e.message.contains("unexpected tag !Foo"), "{e}");
    }

    #[test]
    fn quoted_scalars() {
        let a = ast("{a: 'x', b: \"y\", c: z}");
        let mut f = Value::root("/t.yaml", &a).fields().unwrap();
        let quoted: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|k| f.req(k).unwrap().is_quoted())
            .collect();
        assert_eq!(quoted, [true, true, false]);
    }

    #[test]
    fn null_is_an_empty_sequence() {
        let a = ast("{a: null, b: [x, y], c: x}");
        let mut f = Value::root("/t.yaml", &a).fields().unwrap();
        let a_seq = f.get("a").unwrap().seq().unwrap();
        assert!(a_seq.is_empty());
        let b: Vec<String> = f
            .get("b")
            .unwrap()
            .seq()
            .unwrap()
            .iter()
            .map(|v| v.string().unwrap())
            .collect();
        assert_eq!(b, ["x", "y"]);
        assert!(f.get("c").unwrap().seq().is_err());
    }

    /// A missing required key is reported with its key path, at the top
    /// level as in a nested mapping.
    #[test]
    fn missing_required_keys_name_their_key() {
        let a = ast("{a: 1, n: {b: 2}}");
        let root = Value::root("/t.yaml", &a);
        let mut f = root.fields().unwrap();
        let e = f.req("z").err().expect("an error");
        assert_eq!(e.key.as_deref(), Some("z"));
        assert!(e.message.contains("required key \"z\" is missing"), "{e}");
        // Null counts as missing.
        let a2 = ast("{z: null}");
        let mut f2 = Value::root("/t.yaml", &a2).fields().unwrap();
        assert!(f2.req("z").is_err());
        let mut n = f.req("n").unwrap().fields().unwrap();
        let e = n.req("y").err().expect("an error");
        assert_eq!(e.key.as_deref(), Some("n.y"));
        assert_eq!(n.req("b").unwrap().u64(), Ok(2));
    }
}
