//! What `cairn ps --json` says, as the upgrade tests read it: the tree's
//! pid, version and counters, and every instance's state, pids, restarts
//! and config hash.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct Inst {
    pub(crate) state: String,
    /// The knot's host pid.
    pub(crate) pid: Option<i32>,
    pub(crate) workload: Option<i32>,
    pub(crate) restarts: u64,
    pub(crate) hash: String,
    pub(crate) last_exit: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Ps {
    pub(crate) tree_pid: i32,
    pub(crate) version: String,
    pub(crate) upgrades: u64,
    pub(crate) reloads: u64,
    pub(crate) last_upgrade_ms: Option<f64>,
    pub(crate) inst: BTreeMap<String, Inst>,
}

impl Ps {
    pub(crate) fn parse(v: &Value) -> Option<Ps> {
        let t = &v["tree"];
        let mut inst = BTreeMap::new();
        for i in v["instances"].as_array()? {
            let pid = |k: &str| i[k].as_i64().map(|p| p as i32);
            inst.insert(
                i["name"].as_str()?.to_string(),
                Inst {
                    state: i["state"].as_str().unwrap_or("").to_string(),
                    pid: pid("pid"),
                    workload: pid("workload_pid"),
                    restarts: i["restarts"].as_u64().unwrap_or(u64::MAX),
                    hash: i["config_hash"].as_str().unwrap_or("").to_string(),
                    last_exit: i["last_exit"].clone(),
                },
            );
        }
        Some(Ps {
            tree_pid: t["pid"].as_i64()? as i32,
            version: t["version"].as_str()?.to_string(),
            upgrades: t["upgrades"].as_u64()?,
            reloads: t["reloads"].as_u64()?,
            last_upgrade_ms: t["last_upgrade_ms"].as_f64(),
            inst,
        })
    }

    /// name → (knot pid, workload pid) of every instance.
    pub(crate) fn pids(&self) -> BTreeMap<String, (Option<i32>, Option<i32>)> {
        self.inst
            .iter()
            .map(|(n, i)| (n.clone(), (i.pid, i.workload)))
            .collect()
    }

    pub(crate) fn all_running(&self, n: usize) -> bool {
        self.inst.len() == n
            && self
                .inst
                .values()
                .all(|i| i.state == "running" && i.pid.is_some() && i.workload.is_some())
    }
}
