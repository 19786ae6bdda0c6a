//! User and group ids of a container config, checked against the
//! sandbox's allowed ranges and id maps (lithos's rules), and the choice of
//! user-namespace maps.

use super::container::{ContainerConfig, Volume};
use super::error::{ConfigError, Problems};
use super::range::{IdMap, Ranges, map_to_host};
use super::sandbox::Sandbox;

/// The ids an instance runs with, and the user-namespace maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
}

/// Check one id (as written, inside the container) against the sandbox's
/// allowed ranges and whichever map applies (lithos's rules): without a
/// container map it must be allowed and, with a sandbox map, mapped; with a
/// container map it must be inside that map (whose host ranges are checked
/// separately).
fn check_id(
    id: u32,
    allow: &Ranges,
    allow_key: &str,
    smap: &[IdMap],
    cmap: &[IdMap],
    what: &str,
) -> Result<(), String> {
    if !cmap.is_empty() {
        if !cmap
            .iter()
            .any(|m| id >= m.inside && id - m.inside < m.count)
        {
            return Err(format!("{id} is not inside the container's {what}-map"));
        }
        return Ok(());
    }
    if !allow.contains(id) {
        return Err(format!("{id} is not in the sandbox's {allow_key} {allow}"));
    }
    if !smap.is_empty() && map_to_host(smap, id).is_none() {
        return Err(format!("{id} is not mapped by the sandbox's {what}-map"));
    }
    Ok(())
}

/// Whether a command joined into a running instance (`cairn exec
/// --user`) may run as `uid` and `gid`: the same rule as the container
/// config's `user-id` and `group-id`, under the maps the instance runs
/// with (`uid_map`, `gid_map`: the sandbox's, or else the container's).
/// The error names the sandbox's key or the map.
pub fn check_joined(
    uid: u32,
    gid: u32,
    s: &Sandbox,
    uid_map: &[IdMap],
    gid_map: &[IdMap],
) -> Result<(), String> {
    let sandbox_maps = !s.uid_map.is_empty() || !s.gid_map.is_empty();
    let (su, sg, cu, cg): (&[IdMap], &[IdMap], &[IdMap], &[IdMap]) = if sandbox_maps {
        (uid_map, gid_map, &[], &[])
    } else {
        (&[], &[], uid_map, gid_map)
    };
    check_id(uid, &s.allow_users, "allow-users", su, cu, "uid")?;
    check_id(gid, &s.allow_groups, "allow-groups", sg, cg, "gid")
}

/// Resolve and check user and group ids, and choose the user-namespace
/// maps: the sandbox's pair, or the container's pair, never a mix.
pub fn ids(file: &str, c: &ContainerConfig, s: &Sandbox) -> Result<Ids, Problems> {
    let mut p = Problems::new();
    let err = |key: &str, msg: String| ConfigError::new(file, msg).key(key.to_string());
    let uid = match c.user_id.or(s.default_user) {
        Some(u) => u,
        None => {
            p.push(err(
                "user-id",
                format!(
                    "no user-id given and sandbox {:?} has no default-user",
                    s.name
                ),
            ));
            0
        }
    };
    let gid = c.group_id.unwrap_or(s.default_group);
    let sandbox_maps = !s.uid_map.is_empty() || !s.gid_map.is_empty();
    let container_maps = !c.uid_map.is_empty() || !c.gid_map.is_empty();
    if sandbox_maps && container_maps {
        p.push(err(
            "uid-map",
            "both the sandbox and the container give id maps; only one of them may".into(),
        ));
        return Err(p);
    }
    let (uid_map, gid_map) = if sandbox_maps {
        (s.uid_map.clone(), s.gid_map.clone())
    } else {
        (c.uid_map.clone(), c.gid_map.clone())
    };
    let (su, sg): (&[IdMap], &[IdMap]) = if sandbox_maps {
        (&uid_map, &gid_map)
    } else {
        (&[], &[])
    };
    let (cu, cg): (&[IdMap], &[IdMap]) = if container_maps {
        (&uid_map, &gid_map)
    } else {
        (&[], &[])
    };
    if let Err(m) = check_id(uid, &s.allow_users, "allow-users", su, cu, "uid") {
        p.push(err("user-id", m));
    }
    if let Err(m) = check_id(gid, &s.allow_groups, "allow-groups", sg, cg, "gid") {
        p.push(err("group-id", m));
    }
    for &g in &c.additional_groups {
        if let Err(m) = check_id(g, &s.allow_groups, "allow-groups", sg, cg, "gid") {
            p.push(err("additional-groups", m));
        }
    }
    // Owners of directories we create: an id given for a volume must be one
    // the container could run as (root included: a root-owned directory
    // for a non-root workload is what the sandbox's ids are there to
    // prevent); an id left out is the container's own, checked above.
    for (target, vol) in &c.volumes {
        let (user, group) = match vol {
            Volume::Persistent {
                user,
                group,
                mkdir: true,
                ..
            }
            | Volume::Statedir { user, group, .. } => (*user, *group),
            _ => continue,
        };
        let owner_err = |field: &str, m: String| {
            let key = format!("volumes.{target}.{field}");
            let line = c.lines.get(&key).copied().unwrap_or(0);
            err(&key, m).at(line)
        };
        if let Some(user) = user
            && let Err(m) = check_id(user, &s.allow_users, "allow-users", su, cu, "uid")
        {
            p.push(owner_err("user", m));
        }
        if let Some(group) = group
            && let Err(m) = check_id(group, &s.allow_groups, "allow-groups", sg, cg, "gid")
        {
            p.push(owner_err("group", m));
        }
    }
    for (what, map, allow, allow_key) in [
        ("uid", &c.uid_map, &s.allow_users, "allow-users"),
        ("gid", &c.gid_map, &s.allow_groups, "allow-groups"),
    ] {
        for m in map {
            if !allow.contains_span(m.outside, m.count) {
                p.push(err(
                    &format!("{what}-map"),
                    format!(
                        "host ids {}-{} are not within one range of the sandbox's {allow_key} {allow}",
                        m.outside,
                        u64::from(m.outside) + u64::from(m.count) - 1
                    ),
                ));
            }
        }
    }
    p.into_result(Ids {
        uid,
        gid,
        groups: c.additional_groups.clone(),
        uid_map,
        gid_map,
    })
}
