//! The value of `/cairn/v1/hosts/HOST/status` (docs/fleet.md), built from
//! what the agent applied and the tree's `state.json`. Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::outcome::Outcome;

/// What the agent knows of one sandbox's last change.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The key's mod revision that was applied (or refused).
    pub revision: i64,
    pub outcome: Outcome,
}

/// The instances of the tree, from `state.json` (`None`: no state file,
/// the tree is not running): name, state, ready, restarts, last exit.
pub fn instances(state: Option<&Value>) -> Value {
    let Some(state) = state else {
        return Value::Null;
    };
    let list = state
        .get("instances")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|i| {
                    let running = i.get("state").and_then(Value::as_str) == Some("running");
                    let ready = running && i.get("ready_since").is_some_and(|r| !r.is_null());
                    json!({
                        "name": i.get("name").cloned().unwrap_or(Value::Null),
                        "sandbox": i.get("sandbox").cloned().unwrap_or(Value::Null),
                        "process": i.get("process").cloned().unwrap_or(Value::Null),
                        "state": i.get("state").cloned().unwrap_or(Value::Null),
                        "ready": ready,
                        "restarts": i.get("restarts").cloned().unwrap_or(Value::Null),
                        "config_hash": i.get("config_hash").cloned().unwrap_or(Value::Null),
                        "last_exit": i.get("last_exit").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Value::Array(list)
}

/// The whole status value. `tree_pid`: the pid in state.json, when the
/// tree runs.
pub fn render(
    host: &str,
    agent_pid: u32,
    revision: i64,
    sandboxes: &BTreeMap<String, Applied>,
    state: Option<&Value>,
) -> String {
    let sb: serde_json::Map<String, Value> = sandboxes
        .iter()
        .map(|(name, a)| (name.clone(), a.outcome.to_json(a.revision)))
        .collect();
    let tree = state.and_then(|s| s.get("tree")).map(|t| {
        json!({
            "pid": t.get("pid").cloned().unwrap_or(Value::Null),
            "version": t.get("version").cloned().unwrap_or(Value::Null),
            "reloads": t.get("reloads").cloned().unwrap_or(Value::Null),
        })
    });
    json!({
        "format": 1,
        "host": host,
        "agent": {"pid": agent_pid, "version": env!("CARGO_PKG_VERSION")},
        "revision": revision,
        "sandboxes": sb,
        "tree": tree,
        "instances": instances(state),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_results_and_instances() {
        let state: Value = serde_json::from_str(
            r#"{"tree":{"pid":7,"version":"0.1.0","reloads":2},
                "instances":[
                 {"name":"box/a.0","sandbox":"box","process":"a","state":"running",
                  "ready_since":"2026-01-01T00:00:00Z","restarts":1,"config_hash":"ab",
                  "last_exit":{"status":3}},
                 {"name":"box/b.0","sandbox":"box","process":"b","state":"starting",
                  "ready_since":null,"restarts":0,"config_hash":"cd","last_exit":null}]}"#,
        )
        .expect("json");
        let mut sb = BTreeMap::new();
        sb.insert(
            "box".to_string(),
            Applied {
                revision: 5,
                outcome: Outcome::Refused("bad key".into()),
            },
        );
        let v: Value = serde_json::from_str(&render("h1", 9, 6, &sb, Some(&state))).expect("json");
        assert_eq!(v["host"], "h1");
        assert_eq!(v["revision"], 6);
        assert_eq!(v["sandboxes"]["box"]["result"], "refused");
        assert_eq!(v["sandboxes"]["box"]["message"], "bad key");
        assert_eq!(v["sandboxes"]["box"]["revision"], 5);
        assert_eq!(v["tree"]["pid"], 7);
        assert_eq!(v["instances"][0]["ready"], true);
        assert_eq!(v["instances"][0]["restarts"], 1);
        assert_eq!(v["instances"][0]["last_exit"]["status"], 3);
        assert_eq!(v["instances"][1]["ready"], false);
        let none: Value = serde_json::from_str(&render("h1", 9, 6, &sb, None)).expect("json");
        assert!(none["instances"].is_null() && none["tree"].is_null());
    }
}
