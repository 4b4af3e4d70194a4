"""Sandboxed execution of untrusted Python programs (model completions).

Two layers:
  inner  every program runs in its own subprocess with a scrubbed environment, a fresh temporary
         working directory, its own session, rlimits (address space, CPU, file size, processes,
         open files, no core), and, when we are root, an unprivileged uid of its worker slot.
         Slot uids (60000 + k) are leased exclusively, across processes, through an flock on
         LOCK_DIR/<uid>: two graders on one machine (parallel gates, a trainer and an eval) must
         never share a uid, or one's uid sweep SIGKILLs the other's runs, their processes add up
         under one RLIMIT_NPROC (bwrap: "Can't fork"), and remove_uid_files deletes the other's
         working dirs. After each run every process of that uid is killed and reaped before the
         uid takes the next job, so forks that left the process group die too and never count
         against the next run's RLIMIT_NPROC; files the uid left in world-writable dirs are removed.
  outer  where `bwrap` exists (and PGRPO_NO_BWRAP is not set): read-only root, private /tmp,
         hidden /work /root /home /mnt /srv, new namespaces (no network, private pid space),
         die-with-parent, new session; only the working directory is writable.

Results come back on a dedicated pipe, not stdout: the parent sends a random nonce with the job
on stdin, the harness (_pgrpo_harness.py) tags every record with it, and the parent accepts
records only in the expected order (setup, module, test 0..n-1, done), each within its own
deadline; a test without a record counts as a timeout or missing. Expected values are never
sent to the child, so a record forged by the untrusted code (it runs in the reporting process and
can find the nonce by walking frames) cannot make a wrong answer to an `==` test correct. It can
forge the module record, `truth` tests (none in today's data) and the sentinel check's value: a
known limitation of reporting from the process that runs the code.

Two ways to run a job (PGRPO_SANDBOX, default `server`):
  server   one long-lived sandbox server per worker slot (_pgrpo_server.py) inside the outer
           layer, with the harness already imported; each job is a fork of it that takes the
           slot's uid, rlimits, a fresh working directory, its own session and IPC namespace, and
           reports on the same nonce channel. The server reads the job and compiles its trusted
           setup before the fork, and executes a declarative setup (_pgrpo_server.declarative_setup)
           once, handing each job its own copy of the globals (verify_server_setup). After every job the server kills and reaps every
           process of the slot uid and removes its files before it reports the job's exit. A
           server that dies or stops answering is restarted with a log line. Needs root (to give
           jobs the slot uid); without root the process sandbox is used, with a warning.
  process  the reference: every job starts bubblewrap and a fresh interpreter of the harness.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import queue
import secrets
import select
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from projected_grpo.env._pgrpo_harness import remove_sysv
from projected_grpo.env._pgrpo_server import kill_uid, remove_tree, remove_uid_files, set_limits, uid_pids

log = logging.getLogger(__name__)

HARNESS = Path(__file__).with_name("_pgrpo_harness.py")
SERVER = Path(__file__).with_name("_pgrpo_server.py")
SANDBOX_MODES = ("server", "process")
SLOT_UID_BASE = 60000
SLOT_UID_COUNT = 4096           # leasable slot uids: SLOT_UID_BASE .. SLOT_UID_BASE + SLOT_UID_COUNT - 1
LOCK_DIR = "/run/pgrpo-slot-locks" if os.path.isdir("/run") else os.path.join(tempfile.gettempdir(), "pgrpo-slot-locks")
HIDDEN_DIRS = ("/work", "/root", "/home", "/mnt", "/srv", "/var/tmp", "/run")  # outside-ok: folders the sandbox hides from jobs


@dataclass
class Limits:
    per_test_timeout: float = 5.0   # CPU seconds per test (harness timer, load independent)
    module_timeout: float = 10.0    # CPU seconds for the module-level exec of the completion
    wall_factor: float = 3.0        # parent wall deadline = wall_factor * CPU limit + grace
    start_timeout: float = 10.0     # wall seconds for interpreter start + setup_code
    grace: float = 2.0              # parent-side slack on every deadline
    memory_mb: int = 1024           # RLIMIT_AS
    fsize_mb: int = 10              # RLIMIT_FSIZE
    nproc: int = 32                 # RLIMIT_NPROC (per slot uid; bwrap itself uses 2-3)
    nofile: int = 64                # RLIMIT_NOFILE
    output_cap: int = 64 * 1024     # bytes of stdout / stderr kept each
    result_cap: int = 64 << 20      # bytes of result records accepted before the run is killed
    max_timeouts: int = 1           # stop a run after this many timed-out tests (the rest: missing)


@dataclass
class Job:
    """One program: trusted setup, untrusted code, then tests (see _pgrpo_harness.py for kinds)."""
    setup: str
    code: str
    tests: list[tuple[str, str]] = field(default_factory=list)   # (kind, src)
    script: bool = False    # run setup + code + post as a plain script; only the exit status counts
    post: str = ""          # script mode only: appended after the code


@dataclass
class TestRecord:
    status: str                 # ok | error | timeout | missing
    value: object = None        # decoded canonical value (status ok)
    err: str | None = None


@dataclass
class RunResult:
    setup_ok: bool
    module_ok: bool
    module_err: str | None
    tests: list[TestRecord]
    done: bool                  # the harness reported completion
    exit_code: int | None
    stdout: str
    stderr: str
    killed: bool                # a deadline passed and the parent killed the run
    tampered: bool              # an out-of-order / duplicate / oversized record arrived
    wall_s: float


def decode(v):
    """Canonical encoding (see harness) -> plain Python data; unconvertible -> Unconvertible()."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    assert isinstance(v, dict) and len(v) == 1, f"bad canonical value {v!r:.80}"
    (tag, x), = v.items()
    if tag == "f":
        return float(x)
    if tag == "I":
        return int(x)
    if tag == "L":
        return [decode(e) for e in x]
    if tag == "T":
        return tuple(decode(e) for e in x)
    if tag == "D":
        return {decode(k): decode(e) for k, e in x}
    if tag == "S":
        return {decode(e) for e in x}
    if tag == "FS":
        return frozenset(decode(e) for e in x)
    if tag == "X":
        return Unconvertible(str(x))
    raise AssertionError(f"bad canonical tag {tag!r}")


class Unconvertible:
    """A value of a non-builtin type: equal to nothing, itself included."""
    __slots__ = ("typename",)

    def __init__(self, typename):
        self.typename = typename

    def __eq__(self, other):
        return False

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return f"<unconvertible {self.typename}>"


# ----------------------------------------------------------------------------- process setup

def python_exe() -> str:
    """Interpreter for the child: PGRPO_PYTHON, else a system python3 (readable by the slot uids)."""
    exe = os.environ.get("PGRPO_PYTHON") or shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return exe or sys.executable


_warned_no_bwrap = False


def bwrap_exe() -> str | None:
    """bubblewrap's path on this process's PATH (a server's spawn gets a scrubbed environment, so it is started by
    this path; a bwrap carried to a machine off /usr/bin works), or None."""
    return shutil.which("bwrap")


def use_bwrap() -> bool:
    global _warned_no_bwrap
    if os.environ.get("PGRPO_NO_BWRAP") == "1":
        return False
    if bwrap_exe() is None:
        if not _warned_no_bwrap:
            log.warning("bwrap not found: running with the inner sandbox layer only")
            _warned_no_bwrap = True
        return False
    return True


_used_uids: set[int] = set()


def used_uids() -> set[int]:
    """Every slot uid this process has leased so far (for leftover checks)."""
    return set(_used_uids)


def uid_leased(uid: int) -> bool:
    """Whether some UidLease (of any process, this one included) holds `uid` right now."""
    try:
        fd = os.open(os.path.join(LOCK_DIR, str(uid)), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _lock_dir() -> str:
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    st = os.lstat(LOCK_DIR)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077, \
        f"{LOCK_DIR} must be a directory private to uid {os.geteuid()}"
    return LOCK_DIR


class UidLease:
    """n slot uids held exclusively (flock, so also against other processes) until release().
    Without root: n slots of uid None (no uid drop, nothing to lease)."""

    def __init__(self, n: int):
        self.fds: list[int] = []
        self.uids: list[int | None] = []
        self.skipped: list[int] = []  # free uids not leased: a live process of the uid outlived clear_uid
        if os.geteuid() != 0:
            self.uids = [None] * n
            return
        d = _lock_dir()
        become_subreaper()
        for uid in range(SLOT_UID_BASE, SLOT_UID_BASE + SLOT_UID_COUNT):
            if len(self.uids) == n:
                break
            fd = os.open(os.path.join(d, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if not clear_uid(uid):      # leftovers of a previous holder that died without cleaning up
                log.warning("slot uid %d: a live process of it outlived clearing; the lease skips it", uid)
                self.skipped.append(uid)  # not used: its process could signal or ptrace the slot's jobs
                os.close(fd)
                continue
            self.fds.append(fd)
            self.uids.append(uid)
            _used_uids.add(uid)
            remove_uid_files(uid)
            remove_sysv(uid, _LIBC)
        if len(self.uids) < n:
            self.release()
            why = f"; skipped {self.skipped}: a live process of each outlived clearing" if self.skipped else ""
            raise RuntimeError(f"no free slot uid of {SLOT_UID_COUNT}{why}")

    def release(self):
        for fd in self.fds:
            os.close(fd)                # closing the last fd drops the flock
        self.fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def sandbox_mode() -> str:
    """PGRPO_SANDBOX: `server` (default; needs root, else `process` with a warning) or `process`."""
    mode = os.environ.get("PGRPO_SANDBOX", "server")
    assert mode in SANDBOX_MODES, f"PGRPO_SANDBOX={mode!r}: choose one of {SANDBOX_MODES}"
    if mode == "server" and os.geteuid() != 0:
        _warn_once("the sandbox server needs root to give jobs the slot uid: using the process sandbox")
        return "process"
    return mode


_warned: set[str] = set()


def _warn_once(msg: str):
    if msg not in _warned:
        _warned.add(msg)
        log.warning(msg)


def outer_layer(exe: str, binds: list[tuple[str, str]], user_ns: bool) -> list[str]:
    """bubblewrap arguments of the outer layer: read-only root, private /tmp, hidden data dirs,
    no network, private pid space, die-with-parent, new session. `binds`: (file, path inside),
    read-only. user_ns=False (the server, root): no user namespace, so jobs can take slot uids."""
    real_exe = os.path.realpath(exe)
    bwrap = bwrap_exe()
    assert bwrap is not None, "bwrap not found on PATH"
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    for d in HIDDEN_DIRS:  # hide data / repo / home dirs unless the interpreter lives there
        if os.path.isdir(d) and not real_exe.startswith(d + "/"):
            cmd += ["--tmpfs", d]
    for src, dst in binds:
        cmd += ["--ro-bind", src, dst]
    ns = ["--unshare-all"] if user_ns else ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                                             "--unshare-cgroup-try"]
    return cmd + ns + ["--die-with-parent", "--new-session"]


def command(workdir: str, result_fd: int) -> list[str]:
    """Per-process sandbox: bubblewrap (if present) around a fresh interpreter of the harness."""
    exe = python_exe()
    if not use_bwrap():
        return [exe, "-I", "-S", str(HARNESS), str(result_fd)]
    inner_harness = "/tmp/_pgrpo_harness.py"
    return (outer_layer(exe, [(str(HARNESS), inner_harness)], user_ns=True)
            + ["--bind", workdir, workdir, "--chdir", workdir, "--", exe, "-I", "-S", inner_harness, str(result_fd)])


def server_command(sock_fd: int, uid: int) -> list[str]:
    """The sandbox server of slot `uid`: bubblewrap (if present) around the server script."""
    exe = python_exe()
    if not use_bwrap():
        return [exe, "-I", "-S", str(SERVER), str(sock_fd), str(uid), "plain"]
    inner = "/tmp/.pgrpo"
    binds = [(str(HARNESS), f"{inner}/_pgrpo_harness.py"), (str(SERVER), f"{inner}/_pgrpo_server.py")]
    return outer_layer(exe, binds, user_ns=False) + ["--", exe, "-I", "-S", f"{inner}/_pgrpo_server.py",
                                                      str(sock_fd), str(uid), "pidns"]


def job_limits(job: Job, limits: Limits) -> dict:
    """rlimits of one job (RLIMIT_CPU covers start, module and every test with slack)."""
    cpu_s = int(limits.start_timeout + limits.module_timeout + len(job.tests) * limits.per_test_timeout) + 5
    return {"memory_mb": limits.memory_mb, "fsize_mb": limits.fsize_mb, "nproc": limits.nproc,
            "nofile": limits.nofile, "cpu_s": cpu_s}


def job_payload(job: Job, limits: Limits, nonce: str) -> bytes:
    return json.dumps({"nonce": nonce, "setup": job.setup, "code": job.code, "script": job.script,
                       "post": job.post, "tests": [{"kind": k, "src": s} for k, s in job.tests],
                       "per_test_timeout": limits.per_test_timeout,
                       "module_timeout": limits.module_timeout}).encode()


def preexec(lim: dict):
    """rlimits for the per-process child (runs after the uid drop, before exec): the server's set_limits."""
    return lambda: set_limits(lim)


_LIBC = ctypes.CDLL(None, use_errno=True)  # the C library, for remove_sysv after a per-process job


def sweep_uid(uid: int | None):
    """Kill every process of `uid` (as root, by pidfd: _pgrpo_server.kill_uid)."""
    if uid is not None:
        kill_uid(uid)


_subreaper = False


def become_subreaper():
    """Orphans of sandbox runs (bwrap's pid-namespace init once the outer bwrap is gone) are
    re-parented to this process instead of the container's init, which may reap them only
    seconds later: until then they count against the slot uid's RLIMIT_NPROC. clear_uid reaps them."""
    global _subreaper
    if _subreaper:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(36, 1, 0, 0, 0) == 0   # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _subreaper = False
    if not _subreaper:
        log.warning("could not become a child subreaper: zombies of slot uids are left to init")


CLEAR_TIMEOUT_S = 5.0
"""how long clear_uid keeps killing before it gives up on a slot uid"""


def clear_uid(uid: int | None, timeout: float | None = None) -> bool:
    """Sweep and reap `uid` until none of its processes is left (SIGKILL is asynchronous, and a
    process forking during a sweep can escape it), so the next job of the slot starts from zero.
    Zombies that are not this process's children (no subreaper) are left to their parent. Returns
    whether no live process of `uid` is left (a zombie cannot act); False only after `timeout`
    (CLEAR_TIMEOUT_S) of kills, e.g. while something outside the sandbox keeps starting processes as the uid."""
    if uid is None:
        return True
    timeout = CLEAR_TIMEOUT_S if timeout is None else timeout
    end = time.monotonic() + timeout
    delay = 0.001
    while True:
        procs = uid_pids(uid)
        for pid, zombie in procs:
            if zombie:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except (ChildProcessError, OSError):
                    pass
        procs = uid_pids(uid)
        if not procs or (not _subreaper and all(z for _, z in procs)):
            return True
        if time.monotonic() > end:
            if not all(z for _, z in procs):  # one last sweep, and a moment for killed processes to finish exiting
                sweep_uid(uid)
                time.sleep(0.05)
                procs = uid_pids(uid)
            if procs:
                log.warning("slot uid %d: processes still there after %.1f s: %s", uid, timeout, procs[:5])
            return all(z for _, z in procs)
        if not all(z for _, z in procs):
            sweep_uid(uid)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ----------------------------------------------------------------------------- one run

def run_job(job: Job, slot: int = 0, limits: Limits = Limits()) -> RunResult:
    """Run one job (`slot` is kept for compatibility; slot uids are leased, never derived from it);
    always returns (never raises for child behaviour)."""
    if sandbox_mode() == "server":
        with SERVERS.slot() as server:
            return server.run(job, limits)
    with UidLease(1) as lease:
        return run_job_as(job, lease.uids[0], limits)


class ProcessHandle:
    """A per-process sandbox run, as collect() sees it."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.stdout_fd, self.stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout: float):
        return self.proc.wait(timeout=timeout)

    def kill(self):
        kill_group(self.proc)


def run_job_as(job: Job, uid: int | None, limits: Limits = Limits()) -> RunResult:
    """Per-process sandbox: run one job as slot uid `uid` (leased by the caller: UidLease), or
    without a uid drop (None)."""
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="pgrpo_")
    os.chmod(workdir, 0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)
    res_r, res_w = os.pipe()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir}
    proc = None
    try:
        proc = subprocess.Popen(
            command(workdir, res_w), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=workdir, env=env, pass_fds=(res_w,), start_new_session=True, close_fds=True,
            user=uid, group=uid, extra_groups=[] if uid is not None else None,
            preexec_fn=preexec(job_limits(job, limits)))
        os.close(res_w)
        res_w = -1
        nonce = secrets.token_hex(16)
        try:
            proc.stdin.write(job_payload(job, limits, nonce))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        return collect(ProcessHandle(proc), res_r, nonce, job, limits, t0)
    finally:
        if proc is not None:
            # once the leader is reaped its pid (= pgid) may belong to another run: the uid sweep
            # below covers its group then; without a slot uid the group kill is all there is
            kill_group(proc, group=proc.returncode is None or uid is None)
        if res_w >= 0:
            os.close(res_w)
        os.close(res_r)
        if uid is not None and any(not z for _, z in uid_pids(uid)):
            sweep_uid(uid)  # something of the run is still alive (clear_uid below makes sure)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        clear_uid(uid)
        remove_tree(workdir)
        if uid is not None and not use_bwrap():
            remove_uid_files(uid)
        if uid is not None:  # its SysV objects, which another slot's next job could otherwise see
            remove_sysv(uid, _LIBC)


def kill_group(proc, group: bool = True):
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for f in (proc.stdout, proc.stderr):
        try:
            f.close()
        except OSError:
            pass


def collect(proc, res_r, nonce, job: Job, limits: Limits, t0) -> RunResult:
    """Read records/stdout/stderr incrementally, enforcing one deadline per expected record.
    `proc`: a ProcessHandle or a ServerJob (stdout_fd, stderr_fd, poll, wait, kill)."""
    n = len(job.tests)
    tests = [TestRecord("missing") for _ in range(n)]
    out = {proc.stdout_fd: bytearray(), proc.stderr_fd: bytearray()}
    sel = selectors.PollSelector()  # no epoll fd to create per job
    sel.register(res_r, selectors.EVENT_READ)
    for fd in out:
        sel.register(fd, selectors.EVENT_READ)
    state = {"setup_ok": False, "module_ok": False, "module_err": None, "done": False, "tampered": False,
             "n_timeouts": 0}
    # expected record sequence and its deadlines
    expect = ["setup", "module"] + [f"test{i}" for i in range(n)] + ["done"]
    budget = {"setup": limits.start_timeout, "module": limits.wall_factor * limits.module_timeout + limits.grace,
              "done": limits.grace}
    pos = 0
    deadline = time.monotonic() + (limits.start_timeout + limits.module_timeout if job.script else limits.start_timeout)
    buf = bytearray()
    received = 0
    killed = False
    res_open = True

    def accept(rec):
        nonlocal pos, deadline
        want = expect[pos] if pos < len(expect) else None
        got = rec.get("t") if rec.get("t") != "test" else f"test{rec.get('i')}"
        if got != want:
            state["tampered"] = True
            return
        if got == "setup":
            state["setup_ok"] = True
        elif got == "module":
            state["module_ok"], state["module_err"] = bool(rec.get("ok")), rec.get("err")
        elif got == "done":
            state["done"] = True
        else:
            i = rec["i"]
            status = rec.get("status")
            assert status in ("ok", "error", "timeout"), status
            try:
                value = decode(rec["value"]) if status == "ok" else None
            except (AssertionError, ValueError, TypeError, KeyError, RecursionError):
                status, value = "error", None
            tests[i] = TestRecord(status, value, rec.get("err"))
            state["n_timeouts"] += status == "timeout"
        pos += 1
        if pos < len(expect):
            nxt = expect[pos]
            deadline = time.monotonic() + budget.get(nxt, limits.wall_factor * limits.per_test_timeout + limits.grace)

    while True:
        if job.script and proc.poll() is not None:
            break
        if not job.script and (state["done"] or state["tampered"] or not res_open):
            break
        if state["n_timeouts"] >= limits.max_timeouts:
            killed = True  # the remaining tests stay "missing"
            break
        left = deadline - time.monotonic()
        if left <= 0:
            killed = True
            break
        if job.script and not sel.get_map():  # every pipe closed: only the exit status is missing
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                pass
            continue
        for key, _ in sel.select(min(left, 0.1) if job.script else left):
            fd = key.fd
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                sel.unregister(fd)
                if fd == res_r:
                    res_open = False
                continue
            if fd in out:
                keep = limits.output_cap - len(out[fd])
                if keep > 0:
                    out[fd] += data[:keep]
                continue
            received += len(data)
            if received > limits.result_cap:
                state["tampered"] = True
                break
            buf += data
            *lines, rest = buf.split(b"\n")
            buf = bytearray(rest)
            for line in lines:
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(rec, dict) and rec.get("n") == nonce:
                    accept(rec)
    # timeout attribution: the record the parent was waiting for when the deadline passed
    if killed and not job.script and 2 <= pos < 2 + n and state["n_timeouts"] < limits.max_timeouts:
        tests[pos - 2] = TestRecord("timeout", None, "killed at parent deadline")
    if killed or state["tampered"]:
        proc.kill()
    else:  # drain what is left of stdout for a short while (stdout_marker programs)
        end = time.monotonic() + 0.5
        while sel.get_map() and time.monotonic() < end:
            for key, _ in sel.select(0.05):
                try:
                    data = os.read(key.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                elif key.fd in out:
                    out[key.fd] += data[: max(0, limits.output_cap - len(out[key.fd]))]
    sel.close()
    try:
        exit_code = proc.wait(1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        exit_code = None
    if state["tampered"]:
        tests = [t if t.status != "ok" else TestRecord("error", None, "tampered") for t in tests]
    fds = list(out)
    return RunResult(
        setup_ok=state["setup_ok"], module_ok=state["module_ok"] and not state["tampered"],
        module_err=state["module_err"], tests=tests, done=state["done"] and not state["tampered"],
        exit_code=None if killed else exit_code, stdout=out[fds[0]].decode(errors="replace"),
        stderr=out[fds[1]].decode(errors="replace"), killed=killed, tampered=state["tampered"],
        wall_s=time.monotonic() - t0)


# ----------------------------------------------------------------------------- the sandbox server

class ServerDied(Exception):
    """The sandbox server's control socket closed or failed."""


_STARTER = ThreadPoolExecutor(1, thread_name_prefix="pgrpo-sandbox-starter")
# Servers are started from this one long-lived thread: bubblewrap's --die-with-parent (and the
# parent-death signal without it) fires when the *thread* that started it exits, and the grading
# pool's worker threads end with every run_many call.


class SandboxServer:
    """The sandbox server of one slot uid (held by this process while the server serves on it)."""

    def __init__(self, uid: int, limits: Limits = Limits(), lease: UidLease | None = None):
        """`lease`: the lease that holds `uid` (ServerPool's); with it, a restart whose stop leaves a live process of
        the uid moves the server to a freshly leased uid; without it, such a restart raises."""
        self.uid, self.start_timeout, self.lease = uid, limits.start_timeout, lease
        self.retired: list[UidLease] = []  # leases of uids this server moved off (a live process outlived a stop)
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.seq = 0
        self.restarts = 0
        self.start()

    def start(self):
        _STARTER.submit(self._spawn).result()
        msg = self.recv(self.start_timeout)
        if msg and "unclean" in msg:  # the server found a live process of its slot uid it could not kill
            self.stop()
            raise RuntimeError(f"sandbox server for slot uid {self.uid} refused to serve: {msg['unclean']}")
        if not msg or "ready" not in msg:
            self.stop()
            raise RuntimeError(f"sandbox server for slot uid {self.uid} did not start within "
                               f"{self.start_timeout:.0f} s (got {msg!r}); try PGRPO_SANDBOX=process")

    def _spawn(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pre = None if use_bwrap() else _die_with_parent
        self.proc = subprocess.Popen(
            server_command(theirs.fileno(), self.uid), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), start_new_session=True, close_fds=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, preexec_fn=pre)
        theirs.close()
        self.sock = ours

    def stop(self) -> bool:
        """Kill the server and clear its slot; returns whether no live process of the slot uid is left."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.sock is not None:
            self.sock.close()
        self.proc, self.sock = None, None
        clean = clear_uid(self.uid)  # from outside: whatever of the slot may have outlived the server
        if not use_bwrap():
            remove_uid_files(self.uid)
        return clean

    def restart(self, why: str):
        self.restarts += 1
        log.warning("sandbox server of slot uid %d: %s; restarting it (restart %d)", self.uid, why, self.restarts)
        if not self.stop():
            self.move_to_fresh_uid(why)
        self.start()

    def move_to_fresh_uid(self, why: str):
        """A live process of the slot uid outlived the server's stop: stop serving on that uid (the process could
        signal or ptrace the next jobs) and lease another one. The old lease is kept until close(), so no lease of this
        process or another takes the uid meanwhile (a later lease, once it is released, checks it again)."""
        if self.lease is None:
            raise RuntimeError(f"sandbox server of slot uid {self.uid}: a live process of the slot outlived the "
                               f"server's stop ({why}); not restarting on that uid")
        old, self.lease = self.lease, UidLease(1)
        log.warning("slot uid %d: a live process outlived the server's stop (%s); moving to slot uid %d",
                    self.uid, why, self.lease.uids[0])
        self.uid = self.lease.uids[0]
        self.retired.append(old)

    def close(self):
        """Stop the server and release its leases (its uid's and those of uids it moved off)."""
        self.stop()
        for lease in [self.lease, *self.retired]:
            if lease is not None:
                lease.release()
        self.retired = []

    def send(self, msg: dict, fds: list[int] | None = None):
        try:
            if fds:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], fds)
            else:
                self.sock.send(json.dumps(msg).encode())
        except OSError as e:
            raise ServerDied(str(e)) from e

    def recv(self, timeout: float | None) -> dict | None:
        """The next message, or None when none came within `timeout`; ServerDied on EOF."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(1 << 16)
        except OSError as e:
            raise ServerDied(str(e)) from e
        if not data:
            raise ServerDied("control socket closed")
        return json.loads(data)

    def run(self, job: Job, limits: Limits) -> RunResult:
        """Run one job as a fork of this server; the slot is clean again when this returns."""
        if self.proc is None or self.proc.poll() is not None:
            self.restart(f"found dead (exit {None if self.proc is None else self.proc.returncode})")
        t0 = time.monotonic()
        self.seq += 1
        nonce = secrets.token_hex(16)
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            try:
                self.send({"op": "run", "seq": self.seq, "limits": job_limits(job, limits)}, [job_r, res_w, out_w, err_w])
            except ServerDied as e:
                self.restart(f"refused a job ({e})")
                self.send({"op": "run", "seq": self.seq, "limits": job_limits(job, limits)}, [job_r, res_w, out_w, err_w])
        except BaseException:  # no job started: the parent's ends too
            for f in (job_w, res_r, out_r, err_r):
                os.close(f)
            raise
        finally:
            for f in (job_r, res_w, out_w, err_w):
                os.close(f)
        handle = ServerJob(self, self.seq, out_r, err_r)
        try:
            try:
                write_all(job_w, job_payload(job, limits, nonce), time.monotonic() + limits.start_timeout)
            finally:
                os.close(job_w)  # the harness reads the job until EOF
            return collect(handle, res_r, nonce, job, limits, t0)
        finally:
            for f in (res_r, out_r, err_r):
                os.close(f)
            handle.finish(limits.grace + 5.0)


def _die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def write_all(fd: int, data: bytes, deadline: float):
    """Write `data` to a pipe without blocking past `deadline` (a child that never reads)."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        _, ready, _ = select.select([], [fd], [], left)
        if ready:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                return


SERVER_CPU = {"jobs": 0, "cpu_s": 0.0}
"""this process's jobs run in sandbox servers and the CPU seconds their servers reported for them (the job's
processes, the children they reaped, the leftovers the server reaped, and the server's own work for it; not this
process's share of grading). A measurement, not a limit: a job that has its children reaped by the kernel (SIGCHLD
ignored) keeps their CPU out of it. A forked child keeps its parent's counts, as rollouts.STATS does."""
_SERVER_CPU_LOCK = threading.Lock()


class ServerJob:
    """One job running in a sandbox server, as collect() sees it."""

    def __init__(self, server: SandboxServer, seq: int, out_r: int, err_r: int):
        self.server, self.seq = server, seq
        self.stdout_fd, self.stderr_fd = out_r, err_r
        self.report: dict | None = None
        self.dead: str | None = None
        self.killed = False

    def _take(self, timeout: float | None) -> bool:
        """Read the server's messages until this job's exit report (True) or `timeout` (False)."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.report is None and self.dead is None:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                msg = self.server.recv(left)
            except ServerDied as e:
                self.dead = str(e)
                return False
            if msg is None:
                return False
            if msg.get("seq") == self.seq and "exit" in msg:
                self.report = msg
                with _SERVER_CPU_LOCK:
                    SERVER_CPU["jobs"] += 1
                    SERVER_CPU["cpu_s"] += msg.get("cpu", 0.0)
        return self.report is not None

    def poll(self):
        if self._take(0.0):
            return self.report["exit"]
        return -signal.SIGKILL if self.dead else None

    def wait(self, timeout: float):
        if self._take(timeout):
            return self.report["exit"]
        if self.dead:
            return -signal.SIGKILL
        raise subprocess.TimeoutExpired("sandbox server job", timeout)

    def kill(self):
        if not self.killed and self.dead is None and self.report is None:
            self.killed = True
            try:
                self.server.send({"op": "kill", "seq": self.seq})
            except ServerDied as e:
                self.dead = str(e)

    def finish(self, timeout: float):
        """Make sure the slot is clean before it takes the next job; restart a server that is not."""
        if self.report is None and self.dead is None and not self._take(timeout):
            self.kill()
            self._take(timeout)
        if self.dead is not None:
            self.server.restart(f"died during job {self.seq} ({self.dead})")
        elif self.report is None:
            self.server.restart(f"no exit report for job {self.seq} within {2 * timeout:.0f} s")
        elif not self.report.get("clean", False):
            self.server.restart(f"could not clear the slot after job {self.seq}")


class ServerPool:
    """Sandbox servers of this process, at most n_workers() of them, each used by one thread at a time."""

    def __init__(self):
        self.cv = threading.Condition()
        self.idle: list[SandboxServer] = []
        self.all: list[SandboxServer] = []

    def uids(self) -> set[int]:
        return {s.uid for s in self.all}

    def acquire(self) -> SandboxServer:
        with self.cv:
            while not self.idle and len(self.all) >= n_workers():
                self.cv.wait()
            if self.idle:
                return self.idle.pop()
            lease = UidLease(1)
            try:
                server = SandboxServer(lease.uids[0], lease=lease)
            except BaseException:
                lease.release()
                raise
            self.all.append(server)
            return server

    def release(self, server: SandboxServer):
        with self.cv:
            self.idle.append(server)
            self.cv.notify()

    def close(self):
        """Stop every server and release its slot uid (e.g. before switching PGRPO_NO_BWRAP)."""
        with self.cv:
            assert len(self.idle) == len(self.all), "close() while jobs are running"
            for server in self.all:
                server.close()
            self.idle, self.all = [], []

    @contextlib.contextmanager
    def slot(self):
        server = self.acquire()
        try:
            yield server
        finally:
            self.release(server)


SERVERS = ServerPool()


def _fresh_pool_in_child():
    """A forked child (a worker of torch.multiprocessing, a smoke gate) starts with no servers of its
    own: the parent's sockets stay the parent's, and the starter thread does not survive a fork."""
    global SERVERS, _STARTER, _SERVER_CPU_LOCK
    for server in SERVERS.all:
        if server.sock is not None:
            server.sock.close()
    SERVERS = ServerPool()
    _STARTER = ThreadPoolExecutor(1, thread_name_prefix="pgrpo-sandbox-starter")
    _SERVER_CPU_LOCK = threading.Lock()  # a thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_fresh_pool_in_child)


def held_uids() -> set[int]:
    """Slot uids this process holds now (its sandbox servers')."""
    return SERVERS.uids()


# ----------------------------------------------------------------------------- pool

def n_workers() -> int:
    """Sandbox workers per process: PGRPO_GRADE_WORKERS, else one per core (on the idle 2-core
    machine 2, 3 and 4 server workers graded organism completions at the same rate)."""
    return max(1, int(os.environ.get("PGRPO_GRADE_WORKERS", 0)) or os.cpu_count() or 1)


def run_many(jobs: list[Job], progress: bool = False, limits: Limits = Limits(), desc: str = "sandbox") -> list[RunResult]:
    """Run jobs on a pool of n_workers() threads, each owning one slot uid (a sandbox server's,
    or one leased for this call); results in job order."""
    server = sandbox_mode() == "server"
    lease = UidLease(0 if server else n_workers())
    slots: queue.Queue[int | None] = queue.Queue()
    for uid in lease.uids:
        slots.put(uid)

    def one(job):
        if server:
            with SERVERS.slot() as s:
                return s.run(job, limits)
        uid = slots.get()
        try:
            return run_job_as(job, uid, limits)
        finally:
            slots.put(uid)

    bar = None
    if progress:
        bar = tqdm(total=len(jobs), desc=desc, file=sys.stderr)
    try:
        with ThreadPoolExecutor(n_workers()) as ex:
            futs = [ex.submit(one, j) for j in jobs]
            results = []
            for f in futs:
                results.append(f.result())
                if bar:
                    bar.update(1)
    finally:
        lease.release()
    if bar:
        bar.close()
    return results
