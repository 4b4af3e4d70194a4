"""Gate: no state crosses jobs, and jobs cannot touch the sandbox server or the parent.

One worker slot (PGRPO_GRADE_WORKERS=1), so consecutive jobs run on the same slot uid, and in the
server sandbox as forks of the same server. Each polluter job below tries to leave something
behind (files in its cwd, /tmp, /dev/shm and $HOME; module globals, patched builtins, sys.modules
and the harness's own functions; environment variables; a child and a setsid daemon; a key in the
uid's user keyring and a SysV shared-memory segment; lowered
rlimits, a filled process table and a full file-size limit); the probe job that runs right after
it must see a pristine job: no such file, globals, processes of its uid, the configured rlimits,
and a working fork. An attacker job tries to signal (SIGKILL, SIGSTOP), ptrace and write to every
process it can see and looks for any inherited socket or extra fd; every attempt must fail, and
the server must keep serving without a restart. A server killed between two jobs, or during one,
is restarted and the next job graded, the job in flight ending at once. A slot uid whose live process outlives every
kill (simulated: the kills switched off beside a sleeping process of the uid) is not leased, the server's start-up
decision (start_refusal, called in-process) refuses it, and a server restarted on it moves off it (where bubblewrap runs). Runs in both sandboxes, with
bwrap and with the inner layer alone. Prints one PASS line; nonzero exit on failure.
"""

import os
import shutil
import signal
import sys
from pathlib import Path
import threading
import time

os.environ["PGRPO_GRADE_WORKERS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import run_gate  # noqa: E402

from projected_grpo.env import sandbox  # noqa: E402  # noqa: E402

LIMITS = sandbox.Limits(per_test_timeout=2.0, module_timeout=2.0)
MARK = "pgrpo_leak_mark"

# kernel objects that outlive a process: a key in the uid's user keyring, a SysV shared-memory segment
KERNEL = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
SYS_ADD_KEY, SYS_KEYCTL = {'x86_64': (248, 250), 'aarch64': (217, 219)}[os.uname().machine]
def kernel_objects(add):
    found = []
    if add:
        libc.syscall(SYS_ADD_KEY, b'user', b'pgrpo_leak_mark', b'x', 1, -4)
        libc.shmget(0x5047, 4096, 0o1666)
    if libc.syscall(SYS_KEYCTL, 10, -4, b'user', b'pgrpo_leak_mark', 0) > 0:
        found.append('user keyring')
    if libc.shmget(0x5047, 0, 0) >= 0:
        found.append('sysv shm')
    return found
"""

POLLUTERS = {
    "files": f"""
import os
for d in ('.', '/tmp', '/dev/shm', os.environ.get('HOME', '.'), '/var/tmp'):
    try:
        with open(os.path.join(d, '{MARK}'), 'w') as f:
            f.write('x')
    except OSError:
        pass
""",
    "globals": f"""
import builtins, sys, os, json
builtins.{MARK} = 1
builtins.len = lambda x: 42
builtins.sorted = lambda *a, **k: ['patched']
sys.modules['json'] = None
harness = sys.modules.get('_pgrpo_harness') or sys.modules['__main__']   # server: imported; process: __main__
harness.canonical = lambda x, depth=0: 'forged'
os.environ['{MARK}'] = '1'
globals()['{MARK}'] = 1
""",
    "daemons": f"""
import os, time, subprocess
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(0.2)
        open('/tmp/{MARK}_late', 'w').write('x')
        time.sleep(60)
    os._exit(0)
subprocess.Popen(['sleep', '60'], start_new_session=True)
""",
    # leftovers that a check of the server's children must still find: a daemon under a subreaper the job made of
    # itself, a sibling by clone(CLONE_PARENT) (the server's child, not the job's), and, where unprivileged user
    # namespaces are allowed, the init of a pid namespace of the job's own
    "escapes": """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    os._exit(0)
made = ['subreaper daemon']
SYS_CLONE = {'x86_64': 56, 'aarch64': 220}[os.uname().machine]
sibling = libc.syscall(SYS_CLONE, 0x8000 | 17, 0, 0, 0, 0)  # CLONE_PARENT | SIGCHLD
if sibling == 0:
    time.sleep(60)
    os._exit(0)
assert sibling > 0, f'clone(CLONE_PARENT) failed: errno {ctypes.get_errno()}'
made.append('CLONE_PARENT sibling')
r, w = os.pipe()
if os.fork() == 0:
    ok = libc.unshare(0x10000000 | 0x20000000) == 0  # CLONE_NEWUSER | CLONE_NEWPID
    if ok and os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    os.write(w, b'1' if ok else b'0')
    os._exit(0)
if os.read(r, 1) == b'1':
    made.append('pid-namespace init')
time.sleep(0.2)
""",
    "kernel objects": KERNEL + "assert kernel_objects(True) == ['user keyring', 'sysv shm'], kernel_objects(False)\n",
    "rlimits": f"""
import os, resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
n = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    except OSError:
        break
try:
    with open('{MARK}_big', 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20))
except OSError:
    pass
""",
}

PROBE = f"""
import os, sys, resource, builtins
def probe():
    seen = {{}}
    seen['files'] = sorted(p for p in ('.', '/tmp', '/dev/shm', os.environ.get('HOME', '.'), '/var/tmp')
                           if os.path.isdir(p) and any(n.startswith('{MARK}') for n in os.listdir(p)))
    seen['cwd_empty'] = os.listdir('.') == []
    seen['builtins'] = hasattr(builtins, '{MARK}') or len([1, 2]) != 2 or sorted([2, 1]) != [1, 2]
    seen['modules'] = sys.modules.get('json', 0) is None
    seen['environ'] = '{MARK}' in os.environ
    seen['global'] = '{MARK}' in globals()
    me = os.getuid()
    mine = [os.getpid()]  # this job and its ancestors (bwrap's own init in the per-process sandbox)
    while mine[-1] > 1:
        with open(f'/proc/{{mine[-1]}}/stat') as f:
            mine.append(int(f.read().rsplit(')', 1)[1].split()[1]))
    others = []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) not in mine:
            try:
                if os.stat('/proc/' + name).st_uid == me:
                    others.append(int(name))
            except OSError:
                pass
    seen['processes'] = others
    seen['rlimits'] = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC,
                                                           resource.RLIMIT_FSIZE, resource.RLIMIT_AS)]
    pids = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    seen['forked'] = len(pids)
    seen['kernel'] = kernel_objects(False)
    return seen
""" + KERNEL

ATTACK = """
import os, signal, stat, ctypes
def attack():
    libc = ctypes.CDLL(None, use_errno=True)
    me = os.getpid()
    own = [me]  # this job and the ancestors of its own uid (bwrap's init in the per-process sandbox)
    while own[-1] > 1:
        with open(f'/proc/{own[-1]}/stat') as f:
            parent = int(f.read().rsplit(')', 1)[1].split()[1])
        if os.stat(f'/proc/{parent}').st_uid != os.getuid():
            break
        own.append(parent)
    hits = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) in own:
            continue
        pid = int(name)
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            try:
                os.kill(pid, sig)
                hits.append(('signal', pid, int(sig)))
            except OSError:
                pass
        if libc.ptrace(16, pid, 0, 0) == 0:   # PTRACE_ATTACH
            hits.append(('ptrace', pid))
        try:
            with open(f'/proc/{pid}/mem', 'r+b'):
                hits.append(('mem', pid))
        except OSError:
            pass
    for pgid in (0, 1, 2):
        try:
            os.killpg(pgid, signal.SIGKILL) if pgid else None
        except OSError:
            pass
    sockets = 0
    for fd in range(3, 1024):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                sockets += 1
                os.write(fd, b'{"op": "run"}')
                hits.append(('socket-write', fd))
        except OSError:
            pass
    return [len(hits), sockets, hits[:3]]
"""


def expected_rlimits():
    return [LIMITS.nofile, LIMITS.nproc, LIMITS.fsize_mb << 20, LIMITS.memory_mb << 20]


def run(code: str, test: str) -> sandbox.RunResult:
    return sandbox.run_job(sandbox.Job("", code, [("value", test)]), 0, LIMITS)


def check_probe(after: str):
    r = run(PROBE, "probe()")
    assert r.done and r.tests[0].status == "ok", f"probe after {after}: {r.tests[0]} {r.stderr[-300:]}"
    seen = r.tests[0].value
    clean = {"files": [], "cwd_empty": True, "builtins": False, "modules": False, "environ": False,
             "global": False, "processes": [], "rlimits": expected_rlimits(), "forked": 5,
             "kernel": []}
    diff = {k: (seen[k], v) for k, v in clean.items() if seen[k] != v}
    assert not diff, f"{os.environ['PGRPO_SANDBOX']}: state crossed jobs after '{after}': {diff}"


def server_pid() -> int | None:
    servers = sandbox.SERVERS.all
    return servers[0].proc.pid if servers else None


def run_config(mode: str, no_bwrap: bool) -> str:
    os.environ["PGRPO_SANDBOX"], os.environ["PGRPO_NO_BWRAP"] = mode, "1" if no_bwrap else "0"
    check_probe("nothing")
    pid0 = server_pid()
    for name, code in POLLUTERS.items():
        r = run(code, "made" if name == "escapes" else "1")
        assert r.module_ok or name == "rlimits", f"{mode}: polluter {name} did not run: {r.module_err} {r.stderr[-300:]}"
        if name == "escapes":  # the sibling always; the namespace where the kernel lets an unprivileged user make one
            made = r.tests[0].value
        check_probe(name)
        if mode == "process":  # the polluter again on a slot uid held through the probe, which runs on the next one:
            with sandbox.UidLease(1) as lease:  # only the polluter's own teardown can clear what it left for a neighbour
                sandbox.run_job_as(sandbox.Job("", code, [("value", "1")]), lease.uids[0], LIMITS)
                check_probe(f"{name}, from another slot")
    r = run(ATTACK, "attack()")
    assert r.done and r.tests[0].status == "ok", f"attack job: {r.tests[0]} {r.stderr[-300:]}"
    n_hits, n_sockets, hits = r.tests[0].value
    assert n_hits == 0, f"{mode}: the job reached another process or the server: {hits}"
    assert n_sockets == 0, f"{mode}: the job holds {n_sockets} socket fds"
    check_probe("attack")
    if mode == "server":
        assert server_pid() == pid0 and sandbox.SERVERS.all[0].restarts == 0, "the server was restarted"
        cpu = check_cpu_report()
        check_restart()
        sandbox.SERVERS.close()
        return (f"server/{'inner-only' if no_bwrap else 'bwrap'} (escapes made: {', '.join(made)}; 3 jobs of 0.2 CPU-s "
                f"each reported as {cpu:.2f})")
    return f"{mode}/{'inner-only' if no_bwrap else 'bwrap'} (escapes made: {', '.join(made)})"


BURN = """
import os, time
def burn(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass
pid = os.fork()
if pid == 0:
    burn(0.1)
    os._exit(0)
burn(0.1)
os.waitpid(pid, 0)
"""


def check_cpu_report():
    """The CPU-seconds a server reports for a job (sandbox.SERVER_CPU) hold the job's own and its child's, once: three
    jobs that each burn 0.1 s in the job process and 0.1 s in a child report at least 0.6 s, and at most 1.0 s."""
    jobs0, cpu0 = sandbox.SERVER_CPU["jobs"], sandbox.SERVER_CPU["cpu_s"]
    for _ in range(3):
        r = run(BURN, "1")
        assert r.module_ok, f"burn job: {r.module_err} {r.stderr[-300:]}"
    jobs, cpu = sandbox.SERVER_CPU["jobs"] - jobs0, sandbox.SERVER_CPU["cpu_s"] - cpu0
    assert jobs == 3 and 0.6 <= cpu <= 1.0, f"3 jobs of 0.2 CPU-s each reported as {jobs} jobs, {cpu:.3f} CPU-s"
    return cpu


def check_restart():
    """A server killed between jobs, or during a job, is restarted; the job in flight ends at once
    (not at its deadline) and the next job is graded normally."""
    server = sandbox.SERVERS.all[0]
    os.killpg(server.proc.pid, signal.SIGKILL)
    time.sleep(0.1)
    r = run("x = 41\n", "x + 1")
    assert r.tests[0].value == 42 and server.restarts == 1, f"after a dead server: {r.tests[0]}, {server.restarts}"
    threading.Timer(0.5, lambda: os.killpg(server.proc.pid, signal.SIGKILL)).start()
    t = time.time()
    r = run("import time\ntime.sleep(30)\n", "1")
    assert time.time() - t < 5 and not r.done and server.restarts == 2, f"killed mid-job: {time.time() - t:.1f}s, {r}"
    r = run("x = 41\n", "x + 1")
    assert r.tests[0].value == 42, f"after a server killed mid-job: {r.tests[0]}"


SLEEPER = """
import ctypes, os, sys, time
uid = int(sys.argv[1])
os.setgid(uid)
os.setuid(uid)
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG (set after the uid change, which clears it): dies with the gate
print("up", flush=True)
time.sleep(60)
"""


def check_unclearable_slot() -> str:
    """A slot uid whose live process outlives every kill is never used. The kills are switched off for the check
    (sandbox.sweep_uid, the server's kill_all), and a process of the uid sleeps: clear_uid says the slot is not clean;
    a lease skips the uid (leasing from a private lock directory whose only uid is this one, so no other gate's lease
    takes part); a server restarted on it moves to another uid and grades there; and the server's start-up decision
    (_pgrpo_server.start_refusal, without a pid namespace) refuses. Afterwards, kills on, the uid clears."""
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from projected_grpo.env import _pgrpo_server  # noqa: PLC0415

    probe = sandbox.UidLease(1)  # held throughout: no other gate leases the uid while its process lives
    uid = probe.uids[0]
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER, str(uid)], stdout=subprocess.PIPE, text=True)
    saved = sandbox.LOCK_DIR, sandbox.SLOT_UID_BASE, sandbox.SLOT_UID_COUNT, sandbox.CLEAR_TIMEOUT_S, sandbox.sweep_uid
    done, retired = [], []
    try:
        assert sleeper.stdout.readline().strip() == "up", "the slot uid's process did not start"
        sandbox.sweep_uid, sandbox.CLEAR_TIMEOUT_S = (lambda _uid: None), 0.2
        assert not sandbox.clear_uid(uid), f"slot uid {uid}: clear_uid reported clean beside a live process"
        with tempfile.TemporaryDirectory() as private:
            sandbox.LOCK_DIR, sandbox.SLOT_UID_BASE, sandbox.SLOT_UID_COUNT = private, uid, 1
            try:
                sandbox.UidLease(1).release()
                raise AssertionError(f"a lease beside a live process of slot uid {uid} was given it")
            except RuntimeError as e:
                assert f"skipped [{uid}]" in str(e), f"a lease beside a live process of slot uid {uid}: {e}"
            finally:
                sandbox.LOCK_DIR, sandbox.SLOT_UID_BASE, sandbox.SLOT_UID_COUNT = saved[:3]
        done.append("a lease skipped it")
        ours, theirs = socket.socketpair()  # the server's control socket (unused by the decision)
        with ours, theirs:
            server = _pgrpo_server.Server(theirs, uid, pidns=False)
            server.kill_all = lambda: None
            why = _pgrpo_server.start_refusal(server, timeout=0.2)
        assert why and "outlived" in why, f"the server's start-up decision beside a live process of slot uid {uid}: {why}"
        done.append("a server's start refused it")
        if sandbox.use_bwrap():  # a server there starts (its namespace cannot see the process); its restart moves
            server = sandbox.SandboxServer(uid, lease=probe)
            probe = None  # the server's lease now (kept until its close)
            try:
                server.restart("a restart of the gate")
                r = server.run(sandbox.Job("", "x = 41\n", [("value", "x + 1")]), LIMITS)
                moved = server.uid
            finally:
                sandbox.CLEAR_TIMEOUT_S, sandbox.sweep_uid = saved[3:]  # kills on before the moved server stops
                if server.retired:  # moved: the new uid's lease goes now; the retired one holds `uid` until the cleanup
                    retired = list(server.retired)
                    server.lease.release()
                else:
                    retired = [server.lease]
                server.lease = None
                server.stop()
            assert moved != uid and r.tests[0].value == 42, f"a restart beside a live process of slot uid {uid} " \
                                                            f"served on {moved}: {r.tests[0]}"
            done.append(f"a restarted server moved to slot uid {moved}")
    finally:
        sandbox.LOCK_DIR, sandbox.SLOT_UID_BASE, sandbox.SLOT_UID_COUNT, sandbox.CLEAR_TIMEOUT_S, sandbox.sweep_uid = saved
        sleeper.kill()
        sleeper.wait()
        clean = sandbox.clear_uid(uid)  # while the uid is still held (the probe's lease, or the moved server's retired one)
        for lease in [probe, *retired]:
            if lease is not None:
                lease.release()
    assert clean, f"slot uid {uid} did not clear once its process was killed"
    return f"beside a live process of slot uid {uid} that outlived the kills: " + ", ".join(done)


def main():
    assert os.geteuid() == 0, "this gate needs root (slot uids)"
    unclearable = check_unclearable_slot()
    configs = [run_config(mode, nb) for mode in sandbox.SANDBOX_MODES for nb in (False, True)
               if nb or shutil.which("bwrap")]
    print(f"PASS verify_sandbox_isolation: {len(POLLUTERS)} polluters (files, globals/builtins/sys.modules/harness, "
          f"daemons, subreaper/CLONE_PARENT/pid-namespace escapes, keyring/SysV shm, rlimits/process table/file size) left nothing for the next job, 1 attacker reached no process "
          f"or socket and the server kept serving without restart; a server killed between jobs and mid-job was restarted and the next job graded; a server's CPU report holds a job's processes; {unclearable}; {', '.join(configs)}")


if __name__ == "__main__":
    run_gate("verify_sandbox_isolation", main)
