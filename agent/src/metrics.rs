//! The agent's metrics, in the Prometheus textfile format, written to
//! `RUNTIME/cairn-agent.prom` next to the tree's `metrics.prom` (so the
//! same textfile collector serves both). Pure rendering.

use std::collections::BTreeMap;

use crate::outcome::Outcome;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics {
    pub connected: bool,
    pub applied_revision: i64,
    /// Results by word (every word written, 0 rather than missing).
    pub applies: BTreeMap<&'static str, u64>,
    pub full_resyncs: u64,
    pub reconnects: u64,
    pub status_writes: u64,
    pub start_time: u64,
}

impl Metrics {
    pub fn count(&mut self, o: &Outcome) {
        *self.applies.entry(o.word()).or_insert(0) += 1;
    }

    pub fn render(&self, host: &str) -> String {
        let h = host.replace('\\', "\\\\").replace('"', "\\\"");
        let mut s = String::new();
        let mut fam = |name: &str, kind: &str, help: &str| {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        };
        fam(
            "cairn_agent_etcd_connected",
            "gauge",
            "1 while the agent has a session with etcd (its lease is alive).",
        );
        fam(
            "cairn_agent_applied_revision",
            "gauge",
            "The etcd revision the agent has applied up to.",
        );
        fam(
            "cairn_agent_applies_total",
            "counter",
            "Changes applied to a sandbox, by result.",
        );
        fam(
            "cairn_agent_full_resyncs_total",
            "counter",
            "Full reads of the host's keys (first start, or the revision was compacted).",
        );
        fam(
            "cairn_agent_reconnects_total",
            "counter",
            "Sessions with etcd started again after one ended.",
        );
        fam(
            "cairn_agent_status_writes_total",
            "counter",
            "Writes of the host's status key.",
        );
        fam(
            "cairn_agent_start_time_seconds",
            "gauge",
            "When the agent started (Unix time).",
        );
        // The HELP/TYPE lines above come first; the samples follow in the
        // same order (the format allows the families' lines grouped so).
        let mut out = String::new();
        let mut lines = s.lines();
        let mut push_family = |samples: Vec<String>| {
            for _ in 0..2 {
                if let Some(l) = lines.next() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            for l in samples {
                out.push_str(&l);
                out.push('\n');
            }
        };
        push_family(vec![format!(
            "cairn_agent_etcd_connected{{host=\"{h}\"}} {}",
            u8::from(self.connected)
        )]);
        push_family(vec![format!(
            "cairn_agent_applied_revision{{host=\"{h}\"}} {}",
            self.applied_revision
        )]);
        push_family(
            Outcome::WORDS
                .iter()
                .map(|w| {
                    format!(
                        "cairn_agent_applies_total{{host=\"{h}\",result=\"{w}\"}} {}",
                        self.applies.get(w).copied().unwrap_or(0)
                    )
                })
                .collect(),
        );
        push_family(vec![format!(
            "cairn_agent_full_resyncs_total{{host=\"{h}\"}} {}",
            self.full_resyncs
        )]);
        push_family(vec![format!(
            "cairn_agent_reconnects_total{{host=\"{h}\"}} {}",
            self.reconnects
        )]);
        push_family(vec![format!(
            "cairn_agent_status_writes_total{{host=\"{h}\"}} {}",
            self.status_writes
        )]);
        push_family(vec![format!(
            "cairn_agent_start_time_seconds{{host=\"{h}\"}} {}",
            self.start_time
        )]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_with_help_type_and_every_result() {
        let mut m = Metrics {
            connected: true,
            applied_revision: 42,
            ..Metrics::default()
        };
        m.count(&Outcome::Applied);
        m.count(&Outcome::Refused("x".into()));
        m.count(&Outcome::Applied);
        let t = m.render("h1");
        assert!(t.contains("cairn_agent_etcd_connected{host=\"h1\"} 1\n"));
        assert!(t.contains("cairn_agent_applied_revision{host=\"h1\"} 42\n"));
        assert!(t.contains("cairn_agent_applies_total{host=\"h1\",result=\"applied\"} 2\n"));
        assert!(t.contains("cairn_agent_applies_total{host=\"h1\",result=\"refused\"} 1\n"));
        assert!(t.contains("cairn_agent_applies_total{host=\"h1\",result=\"timed-out\"} 0\n"));
        // Each family's HELP and TYPE come right before its samples.
        let lines: Vec<&str> = t.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or("");
                assert!(lines[i - 1].starts_with(&format!("# HELP {name} ")));
                assert!(lines[i + 1].starts_with(name), "{}", lines[i + 1]);
            }
        }
    }
}
