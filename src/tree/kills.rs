//! The tree's kills that the lifecycle table asks for with a reason (a
//! setup that outlived its deadline, a workload not ready in time or
//! failing its health check), and the stop of a rollout whose replacement
//! failed: each says why in `ps`, the log and the metrics.

use std::time::SystemTime;

use super::lifecycle::State;
use super::supervisor::Tree;

impl Tree {
    /// The knot's setup outlived setup-timeout: kill it (its pid namespace,
    /// and so whatever it started, dies with it) and say why. Its exit is
    /// then a failed start with this reason (`knot_exited`).
    pub(super) fn kill_setup(&mut self, name: &str) {
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let why = format!(
            "setup took longer than {} s; killed",
            self.master.setup_timeout.as_secs_f64()
        );
        i.error = Some(why.clone());
        self.dirty = true;
        let msg = format!("{name}: {why}");
        log::warn!("{msg}");
        self.sandbox_log(name, &msg);
        self.signal(name, libc::SIGKILL);
    }

    /// The health check failed `health-failures` times in a row: kill the
    /// knot and say why; its exit is a failure (back-off).
    pub(super) fn kill_unhealthy(&mut self, name: &str) {
        self.stop_probe(name);
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let n = i.spec.service.health.as_ref().map_or(0, |h| h.failures);
        let why = format!("health check failed {n} times in a row; killed");
        self.counters.entry(i.key.clone()).or_default().health_kills += 1;
        i.error = Some(why.clone());
        self.dirty = true;
        let msg = format!("{name}: {why}");
        log::warn!("{msg}");
        self.sandbox_log(name, &msg);
        self.signal(name, libc::SIGKILL);
    }

    /// Stop the rollout whose replacement `name` failed (it was `before`):
    /// the instances not yet replaced keep their config; say why.
    pub(super) fn halt_rollout(&mut self, name: &str, before: State) {
        let Some(i) = self.instances.get(name) else {
            return;
        };
        let how = match (&i.error, &i.last_exit) {
            // Killed by the tree (not ready in time, unhealthy): why.
            (Some(e), _) => e.clone(),
            (_, Some(x)) => match (x.signal, &x.error) {
                (_, Some(e)) => format!("could not start: {}", e.trim()),
                (Some(sig), None) => format!("killed by signal {sig}"),
                (None, None) => format!("exited with status {}", x.status),
            },
            _ => "failed".to_string(),
        };
        let when = if before == State::Starting {
            "before it was ready"
        } else {
            "within min-ready"
        };
        let reason = format!("{name} {how} {when}");
        let key = i.key.clone();
        // Its crash loop does not stop the rollout again and again.
        if self
            .halted
            .get(&key)
            .is_some_and(|h| h.instance == name && h.hash == i.hash && h.generation == i.generation)
        {
            return;
        }
        let at = SystemTime::now();
        let halt = super::rollout::Halt::new(name, (&i.hash, i.generation), reason.clone(), at);
        self.counters
            .entry(key.clone())
            .or_default()
            .rollouts_stopped += 1;
        let msg = format!(
            "{}/{}: rollout stopped: {reason}; the instances not yet replaced keep their \
             config until the next config change",
            key.0, key.1
        );
        log::warn!("{msg}");
        self.sandbox_log(name, &msg);
        self.halted.insert(key, halt);
        self.dirty = true;
    }

    /// The workload was not ready within ready-timeout: kill its knot and
    /// say why; its exit is then a failed start (back-off).
    pub(super) fn kill_unready(&mut self, name: &str) {
        self.stop_probe(name);
        let Some(i) = self.instances.get_mut(name) else {
            return;
        };
        let why = format!(
            "not ready within ready-timeout ({} s); killed",
            i.spec.service.ready_timeout_ms as f64 / 1000.0
        );
        i.error = Some(why.clone());
        self.dirty = true;
        let msg = format!("{name}: {why}");
        log::warn!("{msg}");
        self.sandbox_log(name, &msg);
        self.signal(name, libc::SIGKILL);
    }
}
