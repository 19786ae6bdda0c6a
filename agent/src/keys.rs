//! The key layout in etcd (the stable API of docs/fleet.md) and what a key
//! may name. Pure.

/// Every key of the fleet starts with this.
pub const ROOT: &str = "/cairn/v1/hosts/";

/// Largest process config the agent takes from etcd (bytes). `cairn
/// switch` bounds what it reads too; this refuses before writing anything.
pub const MAX_VALUE: usize = 256 * 1024;

/// The keys of one host.
#[derive(Debug, Clone)]
pub struct HostKeys {
    pub host: String,
}

impl HostKeys {
    pub fn new(host: &str) -> HostKeys {
        HostKeys {
            host: host.to_string(),
        }
    }
    /// `/cairn/v1/hosts/HOST/processes/`: one key per sandbox below it.
    pub fn processes_prefix(&self) -> String {
        format!("{ROOT}{}/processes/", self.host)
    }
    /// `/cairn/v1/hosts/HOST/status`, under the agent's lease.
    pub fn status(&self) -> String {
        format!("{ROOT}{}/status", self.host)
    }
    /// `/cairn/v1/hosts/HOST/agent`: which agent serves the host, under
    /// its lease (a second agent for the host refuses to start).
    pub fn agent(&self) -> String {
        format!("{ROOT}{}/agent", self.host)
    }
    /// The sandbox a key below `processes/` names, or why it names none.
    pub fn sandbox_of<'a>(&self, key: &'a str) -> Result<&'a str, String> {
        let prefix = self.processes_prefix();
        let name = key
            .strip_prefix(prefix.as_str())
            .ok_or_else(|| format!("{key}: not below {prefix}"))?;
        check_name(name).map_err(|why| format!("{key}: sandbox name {why}"))?;
        Ok(name)
    }
}

/// A host or sandbox name: 1 to 64 of ASCII letters, digits, `_`, `-`,
/// `.`, not starting with `.` (so never `.`, `..` or a hidden file, and no
/// `/`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?}: must be 1 to 64 characters"));
    }
    if name.starts_with('.') {
        return Err(format!("{name:?}: must not start with '.'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "{:?}: {c:?} is not allowed (letters, digits, '_', '-', '.')",
            name.escape_debug().to_string()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = HostKeys::new("h1");
        assert_eq!(k.processes_prefix(), "/cairn/v1/hosts/h1/processes/");
        assert_eq!(k.status(), "/cairn/v1/hosts/h1/status");
        assert_eq!(k.agent(), "/cairn/v1/hosts/h1/agent");
    }

    #[test]
    fn only_plain_sandbox_names_below_the_hosts_prefix() {
        let k = HostKeys::new("h1");
        assert_eq!(k.sandbox_of("/cairn/v1/hosts/h1/processes/web"), Ok("web"));
        for bad in [
            "/cairn/v1/hosts/h1/processes/",
            "/cairn/v1/hosts/h1/processes/..",
            "/cairn/v1/hosts/h1/processes/.hidden",
            "/cairn/v1/hosts/h1/processes/a/b",
            "/cairn/v1/hosts/h1/processes/a b",
            "/cairn/v1/hosts/h2/processes/web",
            "/cairn/v1/hosts/h1/processesweb",
        ] {
            assert!(k.sandbox_of(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("web-1.prod_x").is_ok());
    }
}
