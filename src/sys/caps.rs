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
