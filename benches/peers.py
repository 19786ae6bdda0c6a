"""Adapters for the peer supervisors that benches/run compares cairn with, when they are
installed: s6 (s6-svscan + one s6-supervise per service), runit (runsvdir + one runsv per
service) and supervisord (one Python process). Each service's command is a static helper
from benches/helpers.c itself (the run file is a symlink to it; no shell in the path).

Nothing is installed: detect() only looks the programs up in PATH."""

import os
import shutil
import signal
import subprocess
import time

import benchlib as bl


class Supervisor:
    name = "?"
    programs = ()
    side_comms = ()  # comm of the per-service supervisor processes (children of the root)

    @classmethod
    def detect(cls):
        missing = [p for p in cls.programs if shutil.which(p) is None]
        if missing:
            return False, "not installed (no " + ", ".join(f"`{m}`" for m in missing) + " in PATH)"
        return True, "found " + ", ".join(shutil.which(p) for p in cls.programs)

    def __init__(self, directory, stampexec, n, workload, profile="default"):
        self.dir = directory
        self.stampexec = stampexec
        self.n = n
        self.workload = workload
        self.profile = profile
        self.proc = None
        self.recorded = bl.Recorded()
        os.makedirs(self.dir, exist_ok=True)
        self.prepare()

    def prepare(self):
        raise NotImplementedError

    def argv(self):
        raise NotImplementedError

    def start(self, log, env):
        env = dict(env)
        env["BH_LOG"] = log
        out = open(os.path.join(self.dir, "supervisor.out"), "ab")
        self.proc = subprocess.Popen(
            [self.stampexec] + self.argv(), env=env, cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=out, stderr=out, start_new_session=True)
        out.close()
        self.recorded.add(self.proc.pid)
        return self.proc

    def side_pids(self):
        """Supervisor-side processes: the root first, then its per-service supervisors."""
        if self.proc is None:
            return []
        tab = bl.process_table()
        kids = [p for p, (comm, ppid, _) in tab.items()
                if ppid == self.proc.pid and comm in self.side_comms]
        return [self.proc.pid] + sorted(kids)

    def record_tree(self):
        if self.proc is not None:
            self.recorded.add(self.proc.pid)
            self.recorded.add_many(bl.descendants(self.proc.pid))

    def ask_to_stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self):
        if self.proc is None:
            return
        self.record_tree()
        try:
            self.ask_to_stop()
        except ProcessLookupError:
            pass
        if not self.recorded.wait_gone(60):
            bl.say(f"WARNING: {self.name}: not stopped after 60 s; SIGKILL by pid")
            self.recorded.signal(signal.SIGKILL)
            self.recorded.wait_gone(10)
        bl.reap(self.proc, 10)
        self.sweep()
        self.proc = None

    def sweep(self):
        """Anything still running with its cwd inside our directory is ours (a service
        supervisor forked just as the root was stopped): stop it by pid."""
        stray = bl.Recorded()
        prefix = os.path.realpath(self.dir) + "/"
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{d}/cwd")
            except OSError:
                continue
            if (cwd + "/").startswith(prefix):
                stray.add(int(d))
        if stray.living():
            bl.say(f"WARNING: {self.name}: stray processes {stray.living()}; SIGTERM, then SIGKILL")
            stray.signal(signal.SIGTERM)
            if not stray.wait_gone(5):
                stray.signal(signal.SIGKILL)
                stray.wait_gone(5)


def _service_dirs(scan, n, workload):
    os.makedirs(scan, exist_ok=True)
    dirs = []
    for i in range(n):
        d = os.path.join(scan, f"svc{i:04d}")
        os.mkdir(d)
        os.symlink(workload, os.path.join(d, "run"))
        dirs.append(d)
    return dirs


class S6(Supervisor):
    name = "s6"
    programs = ("s6-svscan", "s6-supervise")
    side_comms = ("s6-supervise",)

    def prepare(self):
        self.scan = os.path.join(self.dir, "scan")
        for d in _service_dirs(self.scan, self.n, self.workload):
            if self.profile == "tuned":
                # s6-supervise restarts at once only a service that was *ready* for 1 s;
                # readiness needs notification-fd (the helper writes "\n" to $BH_NOTIFY_FD).
                with open(os.path.join(d, "notification-fd"), "w") as f:
                    f.write("3\n")

    def argv(self):
        # s6-svscan supervises at most 500 services unless -c says more
        return ["s6-svscan", "-c", str(self.n + 16), self.scan]


class Runit(Supervisor):
    name = "runit"
    programs = ("runsvdir", "runsv")
    side_comms = ("runsv",)

    def prepare(self):
        self.scan = os.path.join(self.dir, "scan")
        self.services = _service_dirs(self.scan, self.n, self.workload)

    def argv(self):
        return ["runsvdir", self.scan]

    def ask_to_stop(self):
        # runsvdir exits on TERM without touching its runsv children; each runsv is told
        # "d" (down: TERM the service) and "x" (exit) through its control fifo.
        os.kill(self.proc.pid, signal.SIGTERM)
        for d in self.services:
            ctl = os.path.join(d, "supervise", "control")
            try:
                fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                os.write(fd, b"dx")
            except OSError:
                pass
            finally:
                os.close(fd)


class Supervisord(Supervisor):
    name = "supervisord"
    programs = ("supervisord",)
    side_comms = ()

    def prepare(self):
        tuned = self.profile == "tuned"
        self.conf = os.path.join(self.dir, "supervisord.conf")
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid",
            f"childlogdir={self.dir}",
            f"minfds={4 * self.n + 256}",
            f"minprocs={2 * self.n + 200}",
        ]
        for i in range(self.n):
            lines += [
                f"[program:svc{i:04d}]",
                f"command={self.workload}",
                f"directory={self.dir}",
                "autostart=true",
                "autorestart=" + ("true" if tuned else "unexpected"),
                "startsecs=" + ("0" if tuned else "1"),
                "startretries=" + ("1000000" if tuned else "3"),
                "stdout_logfile=NONE",
                "stderr_logfile=NONE",
            ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def argv(self):
        return [shutil.which("supervisord") or "supervisord", "-n", "-c", self.conf]


FLEET_PEERS = (S6, Runit, Supervisord)


def detect_all():
    """{name: (class, ok, reason)} for every supervisor peer."""
    return {c.name: (c, *c.detect()) for c in FLEET_PEERS}


def age_dirs():
    """runsvdir ignores a scan dir whose mtime is the current second and looks again one
    second later; every tool's fresh config is therefore left to age 1.1 s before its
    supervisor starts (the same pause for every tool, cairn included)."""
    time.sleep(1.1)
