//! Errors of the configuration layer.
//!
//! Every problem a user can cause names the file, and where known the line
//! and the key, so `cairn check` can print one actionable line per problem.

use std::fmt;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigError {
    /// The file the problem is in, as the user named it (or as resolved).
    pub file: String,
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// The key path, e.g. `volumes./tmp` or `user-id`.
    pub key: Option<String>,
    /// Lower-case description of what is wrong.
    pub message: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, line: usize) -> ConfigError {
        if line > 0 {
            self.line = Some(line);
        }
        self
    }

    pub fn key(mut self, key: impl Into<String>) -> ConfigError {
        let key = key.into();
        if !key.is_empty() {
            self.key = Some(key);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A list of problems; a config is valid when the list is empty.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problems(pub Vec<ConfigError>);

impl Problems {
    pub fn new() -> Problems {
        Problems(Vec::new())
    }
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    /// `Ok(value)` when no problem was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<ConfigError> for Problems {
    fn from(e: ConfigError) -> Problems {
        Problems(vec![e])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_line_zero() {
        let e = ConfigError::new("/f.yaml", "bad").at(3).key("a.b");
        assert_eq!(e.to_string(), "/f.yaml:3: a.b: bad");
        // Line 0 and an empty key mean "unknown": neither is shown.
        let e = ConfigError::new("/f.yaml", "bad").at(0).key("");
        assert_eq!((e.line, e.key.as_deref()), (None, None));
        assert_eq!(e.to_string(), "/f.yaml: bad");
        assert_eq!(ConfigError::new("/f", "x").at(1).line, Some(1));
    }

    #[test]
    fn problems_count() {
        let mut p = Problems::new();
        assert!(p.is_empty());
        assert_eq!(p.len(), 0);
        p.push(ConfigError::new("/a", "x"));
        p.push(ConfigError::new("/b", "y"));
        assert_eq!(p.len(), 2);
        assert!(!p.is_empty());
    }
}
