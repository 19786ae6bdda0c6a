"""Plumbing for benches/run: /proc and cgroup readers, process bookkeeping, stamp logs,
statistics. Standard library only. Nothing here starts a measurement by itself."""

import json
import os
import re
import signal
import statistics
import sys
import time

# ---------------------------------------------------------------------------------------
# output


def say(msg):
    """Progress line on stderr (the final table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# statistics


def mmm(xs):
    """median / min / max / n of a list of numbers (None when empty)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_mmm(s, digits=2):
    if not s:
        return "-"
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}/{fmt(s['max'], digits)})"


# ---------------------------------------------------------------------------------------
# /proc


def _unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and len(s[i + 1:i + 4]) == 3 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo(pid="self"):
    """List of dicts: mount_point, fstype, source, super_options (list)."""
    res = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            a = left.split(" ")
            b = right.split(" ")
            res.append({
                "mount_point": _unescape(a[4]),
                "fstype": b[0],
                "source": _unescape(b[1]) if len(b) > 1 else "",
                "super_options": b[2].split(",") if len(b) > 2 else [],
            })
    return res


def fstype_of(path):
    """fstype of the mount that holds path (longest mount point prefix)."""
    path = os.path.realpath(path)
    best, fs = -1, None
    for m in mountinfo():
        mp = m["mount_point"]
        if path == mp or path.startswith(mp.rstrip("/") + "/") or mp == "/":
            if len(mp) > best:
                best, fs = len(mp), m["fstype"]
    return fs


def mounts_under(path):
    path = os.path.realpath(path).rstrip("/") + "/"
    return [m["mount_point"] for m in mountinfo() if m["mount_point"].startswith(path)]


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_stat(pid):
    """(comm, state, ppid, starttime) from /proc/PID/stat, or None if gone."""
    s = read_text(f"/proc/{pid}/stat")
    if not s:
        return None
    lp, rp = s.find("("), s.rfind(")")
    comm = s[lp + 1:rp]
    rest = s[rp + 2:].split()
    # rest[0] = state (field 3), rest[1] = ppid (4), rest[19] = starttime (22)
    return comm, rest[0], int(rest[1]), int(rest[19])


def alive(pid, starttime=None):
    st = proc_stat(pid)
    if st is None or st[1] in ("Z", "X"):
        return False
    return starttime is None or st[3] == starttime


def status_fields(pid):
    s = read_text(f"/proc/{pid}/status")
    out = {}
    if s:
        for line in s.splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def kb_field(pid, name, file="status"):
    s = read_text(f"/proc/{pid}/{file}")
    if not s:
        return None
    for line in s.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


def rss_kb(pid):
    return kb_field(pid, "VmRSS")


def pss_kb(pid):
    return kb_field(pid, "Pss", "smaps_rollup")


def cpu_and_switches(pid):
    """(on-CPU ns, voluntary, nonvoluntary context switches) summed over all threads."""
    cpu = vol = nvol = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        ss = read_text(f"/proc/{pid}/task/{tid}/schedstat")
        st = read_text(f"/proc/{pid}/task/{tid}/status")
        if ss is None or st is None:
            continue
        cpu += int(ss.split()[0])
        for line in st.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                nvol += int(line.split()[1])
    return cpu, vol, nvol


def process_table():
    """{pid: (comm, ppid, starttime)} for every live process."""
    tab = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(d)
            if st and st[1] not in ("Z", "X"):
                tab[int(d)] = (st[0], st[2], st[3])
    return tab


def descendants(root, tab=None):
    tab = tab if tab is not None else process_table()
    kids = {}
    for pid, (_, ppid, _) in tab.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = int(v.split()[0])
    return out


def kernel_kb(mi):
    return mi["KernelStack"] + mi["PageTables"] + mi["SUnreclaim"]


# ---------------------------------------------------------------------------------------
# processes we started: recorded with their start time, stopped by pid only


class Recorded:
    """A set of (pid, starttime) pairs that this harness started (directly or through a
    supervisor). kill() signals only those whose start time still matches."""

    def __init__(self):
        self.pids = {}

    def add(self, pid):
        st = proc_stat(pid)
        if st and st[1] not in ("Z", "X"):
            self.pids[pid] = st[3]

    def add_many(self, pids):
        for p in pids:
            self.add(p)

    def living(self):
        return [p for p, t in self.pids.items() if alive(p, t)]

    def signal(self, sig):
        for p in self.living():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.living():
                return True
            time.sleep(0.05)
        return not self.living()


def reap(popen, timeout):
    try:
        popen.wait(timeout=timeout)
        return True
    except Exception:  # subprocess.TimeoutExpired
        return False


# ---------------------------------------------------------------------------------------
# cgroups


def _own_cgroups():
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctl, path = line.rstrip("\n").split(":", 2)
            out.append((int(hid), [c for c in ctl.split(",") if c], path))
    return out


def cgroup_dirs(name):
    """For every cgroup hierarchy this process is in: <mount><own path>/<name>."""
    mounts = mountinfo()
    res = []
    for hid, ctls, path in _own_cgroups():
        mnt = None
        if hid == 0 and not ctls:
            mnt = next((m for m in mounts if m["fstype"] == "cgroup2"), None)
        else:
            for m in mounts:
                if m["fstype"] == "cgroup" and all(c in m["super_options"] for c in ctls):
                    mnt = m
                    break
        if mnt is None:
            continue
        res.append(os.path.join(mnt["mount_point"], path.lstrip("/"), name))
    return sorted(set(res))


def cgroup_pids(name):
    pids = set()
    for d in cgroup_dirs(name):
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                s = read_text(os.path.join(root, "cgroup.procs")) or ""
                pids.update(int(x) for x in s.split())
    return sorted(pids)


def remove_cgroups(name):
    """Kill (by pid) anything left in our own cgroup subtree `name`, then rmdir it
    bottom-up. Returns the list of dirs that could not be removed."""
    left = []
    pids = cgroup_pids(name)
    if pids:
        say(f"WARNING: {len(pids)} processes still in cgroup {name}; SIGKILL by pid")
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while cgroup_pids(name) and time.monotonic() < deadline:
            time.sleep(0.05)
    for d in cgroup_dirs(name):
        if not os.path.isdir(d):
            continue
        for _ in range(50):
            failed = []
            for root, _dirs, _files in os.walk(d, topdown=False):
                try:
                    os.rmdir(root)
                except FileNotFoundError:
                    pass
                except OSError:
                    failed.append(root)
            if not failed:
                break
            time.sleep(0.1)  # a cgroup whose last task just died can stay busy briefly
        else:
            left.extend(failed)
    return left


def hybrid_unified():
    """The cgroup2 mount point of a v1/v2 hybrid host (v1 controllers elsewhere), or None."""
    ms = mountinfo()
    has_v1 = any(m["fstype"] == "cgroup" for m in ms)
    v2 = [m["mount_point"] for m in ms if m["fstype"] == "cgroup2"]
    if has_v1 and v2:
        return v2[0]
    return None


# ---------------------------------------------------------------------------------------
# stamp logs: "S <ns> <pid>", "E <ns> <pid>", "L <ns>" (other lines ignored)


_STAMP = re.compile(rb"([SEL]) ([0-9]+)(?: [0-9]+)?\n")


class StampLog:
    """Reads stamps from a log that other writers may share (cairn's sandbox stdio log gets
    whatever a workload or knot prints). Each stamp is one O_APPEND write, so it is
    contiguous and ends with a newline, but a foreign partial write may sit in front of it
    on the same line; stamps are therefore found anywhere, not only at line starts."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.buf = b""
        self.entries = []  # (tag, ns)
        self.counts = {}

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return
        self.off += len(data)
        self.buf += data
        cut = self.buf.rfind(b"\n") + 1
        done, self.buf = self.buf[:cut], self.buf[cut:]
        for m in _STAMP.finditer(done):
            tag = m.group(1).decode()
            self.entries.append((tag, int(m.group(2))))
            self.counts[tag] = self.counts.get(tag, 0) + 1

    def count(self, tag):
        self.poll()
        return self.counts.get(tag, 0)

    def times(self, tag):
        self.poll()
        return [t for g, t in self.entries if g == tag]


def wait_for(pred, timeout, what, proc=None, interval=0.05, progress=None, stall=None):
    """Poll pred() until true. Raises RuntimeError on timeout, when proc exited, or when
    progress() (a counter) has not changed for `stall` seconds. The poll interval only
    decides when to stop waiting; it never sets a measured time."""
    start = time.monotonic()
    deadline = start + timeout
    last, last_t = (progress() if progress else None), start
    while True:
        if pred():
            return
        now = time.monotonic()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with status {proc.returncode}")
        if now > deadline:
            raise RuntimeError(f"{what}: timed out after {timeout:.0f} s")
        if progress is not None:
            cur = progress()
            if cur != last:
                last, last_t = cur, now
            elif stall is not None and now - last_t > stall:
                raise RuntimeError(f"{what}: no progress for {stall:.0f} s")
        time.sleep(interval)


def restart_deltas_ms(log):
    """S(next) - E(previous) in file order, ms."""
    log.poll()
    out, e = [], None
    for tag, t in log.entries:
        if tag == "E":
            e = t
        elif tag == "S" and e is not None:
            out.append((t - e) / 1e6)
            e = None
    return out


# ---------------------------------------------------------------------------------------
# ELF: is a binary static (no PT_INTERP)?


def is_static_elf(path):
    import struct
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if hdr[:4] != b"\x7fELF":
                return False
            is64 = hdr[4] == 2
            end = "<" if hdr[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack(end + "Q", hdr[32:40])
                phentsize, phnum = struct.unpack(end + "HH", hdr[54:58])
            else:
                phoff, = struct.unpack(end + "I", hdr[28:32])
                phentsize, phnum = struct.unpack(end + "HH", hdr[42:46])
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ptype, = struct.unpack(end + "I", f.read(4))
                if ptype == 3:  # PT_INTERP
                    return False
            return True
    except OSError:
        return False


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
