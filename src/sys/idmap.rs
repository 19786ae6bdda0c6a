//! User-namespace id maps (user_namespaces(7), "User and group ID
//! mappings"): written by a privileged parent into /proc/PID/{uid,gid}_map.

use std::io::Write;

use super::Error;

/// One map line: `count` ids from `inside` are `outside` on the host.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

fn render(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count))
        .collect()
}

/// Write both maps of `pid` (which has just unshared its user namespace).
/// An empty map is written as the identity of the one id given, so the
/// process is never left with "nobody" ids.
pub fn write_maps(pid: i32, uid_map: &[Line], gid_map: &[Line]) -> Result<(), Error> {
    for (file, lines) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{file}");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::new("open", &path, e))?;
        // The kernel wants the whole map in a single write(2).
        f.write_all(render(lines).as_bytes())
            .map_err(|e| Error::new("write", &path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn render() {
        let l = [super::Line {
            inside: 0,
            outside: 10000,
            count: 2,
        }];
        assert_eq!(super::render(&l), "0 10000 2\n");
    }
}
