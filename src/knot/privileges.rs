//! The workload's ids and capabilities, in the order that keeps them
//! safe: the bounding set is emptied while the child is still root (it
//! needs CAP_SETPCAP), then the groups, gid and uid are set, then what
//! capabilities remain are cleared (or set to exactly the allowed ones,
//! which needs PR_SET_KEEPCAPS across the setuid), and last no_new_privs.
//! Each step goes through the `seam::Privileges`.

use crate::spec::InstanceSpec;
use crate::sys::Result;

use super::seam::Privileges;

/// The configured ids and capabilities (all dropped unless the sandbox
/// allows some and the container asks), then no_new_privs. The first
/// step that fails stops the rest.
pub(super) fn drop_privileges<P: Privileges>(p: &P, spec: &InstanceSpec) -> Result<()> {
    if spec.capabilities.is_empty() {
        // The common case, by number (every capability the kernel knows,
        // also those newer than the `caps` crate), in a few system calls.
        p.drop_whole_bounding_set()?;
        p.set_ids(spec.uid, spec.gid, &spec.groups)?;
        p.clear_all_sets()?;
    } else {
        p.drop_bounding(&spec.capabilities)?;
        p.set_keepcaps(true)?;
        p.set_ids(spec.uid, spec.gid, &spec.groups)?;
        p.set_exactly(&spec.capabilities)?;
    }
    p.set_no_new_privs()?;
    Ok(())
}

/// The ids of a command joined into a running container (`cairn exec`,
/// an `!Exec` probe), and no capability at all, in an order that leaves
/// no moment in which a process of the container could trace it or read
/// its /proc files:
///
/// - it is not dumpable from its fork on, but changing the effective ids
///   resets that flag to the host's `fs.suid_dumpable`, which may be 1
///   (dumpable: then a process of the same uid could ptrace it);
/// - so the permitted capabilities are kept across the setuid
///   (`PR_SET_KEEPCAPS`): as long as it holds capabilities the workload
///   lacks, the kernel refuses the workload's ptrace and /proc access
///   whatever the flag says (`cap_ptrace_access_check`);
/// - then it is made non-dumpable again, and only then are the
///   capabilities cleared (lowering them does not reset the flag);
/// - last no_new_privs.
pub(super) fn drop_for_join<P: Privileges>(
    p: &P,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<()> {
    p.drop_whole_bounding_set()?;
    p.set_keepcaps(true)?;
    p.set_ids(uid, gid, groups)?;
    p.set_dumpable(false)?;
    p.clear_all_sets()?;
    p.set_keepcaps(false)?;
    p.set_no_new_privs()?;
    Ok(())
}

#[cfg(test)]
#[path = "privileges_tests.rs"]
mod tests;
