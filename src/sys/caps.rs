//! Capabilities (capabilities(7)), through the `caps` crate.
//!
//! A workload keeps nothing by default. A sandbox may allow a list that a
//! container asks for; those are kept in every set including ambient, so
//! they survive the exec of an ordinary (non-setcap) binary.

use caps::{CapSet, Capability, CapsHashSet};

use super::Error;

fn err(op: &'static str, e: caps::errors::CapsError) -> Error {
    Error::new(op, "", std::io::Error::other(e.to_string()))
}

fn parse(keep: &[String]) -> Result<CapsHashSet, Error> {
    keep.iter()
        .map(|n| {
            n.parse::<Capability>().map_err(|_| {
                Error::new(
                    "capability",
                    n,
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                )
            })
        })
        .collect()
}

/// Step 1, while still uid 0: drop every capability not in `keep` from the
/// bounding set (needs CAP_SETPCAP, which we still have).
pub fn drop_bounding(keep: &[String]) -> Result<(), Error> {
    let keep = parse(keep)?;
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| err("drop bounding capability", e))?;
        }
    }
    Ok(())
}

/// Step 2, after setuid (with PR_SET_KEEPCAPS if `keep` is not empty):
/// permitted, effective, inheritable and ambient become exactly `keep`.
pub fn set_exactly(keep: &[String]) -> Result<(), Error> {
    let keep = parse(keep)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient capabilities", e))?;
    caps::set(None, CapSet::Inheritable, &keep)
        .map_err(|e| err("set inheritable capabilities", e))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| err("set effective capabilities", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| err("set permitted capabilities", e))?;
    for cap in &keep {
        caps::raise(None, CapSet::Ambient, *cap).map_err(|e| err("raise ambient capability", e))?;
    }
    Ok(())
}

// The parser of untrusted configs drops every capability by number, not
// through the `caps` crate's list: a capability newer than that list (the
// kernel adds some every few releases) would otherwise stay in the bounding
// set. capget(2)/capset(2) with the v3 header cover all 64 bits.

/// `_LINUX_CAPABILITY_VERSION_3` (capget(2)): two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capability sets of this thread, 64 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.effective == 0 && self.permitted == 0 && self.inheritable == 0
    }
}

/// capget(2) of the calling thread.
pub fn held() -> Result<Held, Error> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a valid v3 header and room for the two data words v3 writes.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    super::check(ret, "capget", "")?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok(Held {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

fn prctl2(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong, what: &str) -> Result<i32, Error> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    super::check(ret, "prctl", what)
}

/// Empty the bounding set (needs CAP_SETPCAP): PR_CAPBSET_DROP of every
/// capability number from 0 until the kernel says EINVAL (past the last
/// one it knows). Dropping one that is already gone succeeds.
pub fn drop_whole_bounding_set() -> Result<(), Error> {
    for n in 0..64 {
        match prctl2(libc::PR_CAPBSET_DROP, n, 0, "PR_CAPBSET_DROP") {
            Ok(_) => {}
            Err(e) if n > 0 && e.errno() == Some(libc::EINVAL) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Clear the ambient, inheritable, effective and permitted sets (lowering
/// needs no privilege), then check with capget(2) that they are empty.
/// The ambient set needs no check of its own: the kernel keeps it a subset
/// of permitted and inheritable (capabilities(7)).
pub fn clear_all_sets() -> Result<(), Error> {
    prctl2(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        "PR_CAP_AMBIENT_CLEAR_ALL",
    )?;
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: a valid v3 header and the two data words v3 reads.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    super::check(ret, "capset", "empty sets")?;
    let now = held()?;
    if now.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            "clear capabilities",
            format!("{now:?}"),
            std::io::Error::other("a capability is still held"),
        ))
    }
}
