//! What the tree itself needs of the host's limits: open files. Started
//! from a shell (soft limit 1024), a tree of a few hundred instances ran
//! out of fds and the starts that failed showed no error. The tree raises
//! its soft limit to the hard one at start (`run.rs`), says at every
//! reload when the configured instances need more than that, and a start
//! that fails for lack of fds shows its error on the instance.

use crate::spec::InstanceSpec;

use super::supervisor::Tree;

/// Open files the tree needs for `specs`: per instance its ready pipe and
/// a pidfd (adopted knots), its own sockets, three more while an `!Exec`
/// probe runs (its pidfd and two pipes), plus every shared socket once
/// and a margin for what a start, a reload and the tree itself hold
/// briefly (pipes to a knot or a config reader, the state files, the log,
/// epoll, the signalfd).
pub fn fds_needed<'a>(specs: impl IntoIterator<Item = &'a InstanceSpec>) -> u64 {
    const PER_INSTANCE: u64 = 2;
    const MARGIN: u64 = 64;
    let mut shared = std::collections::BTreeSet::new();
    let mut n = MARGIN;
    for spec in specs {
        n += PER_INSTANCE;
        let exec = |r: Option<&crate::spec::Ready>| matches!(r, Some(crate::spec::Ready::Exec(_)));
        if exec(spec.service.ready.as_ref()) || exec(spec.service.health.as_ref().map(|h| &h.probe))
        {
            n += 3;
        }
        for (key, _, _) in super::sockets::keys(spec) {
            if key.owner.is_some() {
                n += 1;
            } else {
                shared.insert(key);
            }
        }
    }
    n + shared.len() as u64
}

impl Tree {
    /// The error to report when the wanted instances need more open files
    /// than the tree may have.
    pub fn fd_shortfall(&self) -> Option<String> {
        let need = fds_needed(self.specs.values().map(|s| &**s));
        (need > self.io.fd_limit).then(|| {
            format!(
                "the {} configured instances need about {need} open files in the tree, \
                 which may have {} (its hard RLIMIT_NOFILE): some will fail to start; \
                 raise LimitNOFILE= in the unit, or `ulimit -Hn` before starting the tree",
                self.specs.len(),
                self.io.fd_limit
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_per_instance_plus_a_margin() {
        let spec = InstanceSpec::placeholder("s", "p", 0);
        let specs = vec![spec.clone(), spec.clone(), spec];
        assert_eq!(fds_needed(&specs), 64 + 3 * 2);
        let mut probed = InstanceSpec::placeholder("s", "p", 1);
        probed.service.ready = Some(crate::spec::Ready::Exec(vec!["true".into()]));
        assert_eq!(fds_needed([&probed]), 64 + 2 + 3);
        assert_eq!(fds_needed(Vec::<InstanceSpec>::new().iter()), 64);
    }
}
