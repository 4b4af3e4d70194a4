"""Trusted sandbox server: one long-lived process per worker slot, each job a fork of it.

Started by sandbox.SandboxServer as `python3 -I -S _pgrpo_server.py SOCK_FD UID MODE` (MODE: pidns
inside bubblewrap, where this process is root of a private pid namespace; plain without
bubblewrap). It runs as root and never executes untrusted code itself. The harness is imported
once, here, so a job costs a fork instead of an interpreter start.

Protocol on the SOCK_SEQPACKET socket SOCK_FD (one JSON message each):
    server -> parent   {"ready": pid}                                   once, after start
    parent -> server   {"op": "run", "seq": k, "limits": {...}}  + 4 fds: job stdin (read end),
                       result pipe, stdout, stderr (write ends)
    parent -> server   {"op": "kill", "seq": k}                  kill job k now (a deadline passed)
    server -> parent   {"exit": code, "seq": k, "clean": bool}   job k's process exited, every
                       process of the slot uid is killed and reaped, its files are removed

A job child: new session (own process group), private IPC namespace, parent-death signal, the
four fds on 0 (job), 1, 2 and 3 (results) and no other fd (the control socket is closed), a
fresh working directory, rlimits, then setgroups/setgid/setuid to the slot uid (capabilities are
dropped with root) and no_new_privs; then the harness runs the job exactly as the per-process
sandbox does, except that script mode's interpreter exit is reproduced in-process. As a different
uid than this server and the parent, the child can neither signal, ptrace, nor write to them.
"""

import ctypes
import gc
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

harness = None  # _pgrpo_harness, imported by main() (the parent imports this file for its cleanup helpers)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
# the standard modules the environment's setup code imports (LeetCode and organism rows): imported
# once here, so a job finds them loaded instead of importing them again (random reseeds at fork)
PRELOAD = ("bisect", "collections", "datetime", "functools", "heapq", "itertools", "math", "operator", "random",
           "re", "string", "typing")
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
CLONE_NEWIPC = 0x08000000


# ----------------------------------------------------------------------------- slot cleanup (shared)

def uid_pids(uid: int) -> list[tuple[int, bool]]:
    """(pid, is_zombie) of every process of `uid` visible in /proc."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as f:
                st = f.read()
            close = st.rindex(b")")
            pids.append((int(name), st[close + 2:close + 3] == b"Z"))
        except (OSError, ValueError):
            continue
    return pids


def remove_tree(path: str):
    """Delete a directory tree a job made; never raises (shutil.rmtree recurses, and a job can nest
    directories deeper than the recursion limit: then `rm -rf` does it)."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        import subprocess  # noqa: PLC0415
        subprocess.run(["rm", "-rf", "--", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)


def kill_uid(uid: int):
    """SIGKILL every live process of `uid`, as root and by pidfd: a job cannot stop the killer (as it
    could a killer running as its own uid), and a pid reused after the scan is never signalled."""
    for pid, zombie in uid_pids(uid):
        if zombie:
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:  # the pidfd holds this process: still the uid's
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


def remove_uid_files(uid: int, dirs=WORLD_WRITABLE):
    """Delete entries `uid` owns in world-writable dirs, and in world-writable dirs one level below."""
    for d in dirs:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid == uid:
                _remove(e)
            elif e.is_dir(follow_symlinks=False) and st.st_mode & 0o002:
                remove_uid_files(uid, (e.path,))


def _remove(entry):
    try:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            os.unlink(entry.path)
    except OSError:
        pass


# ----------------------------------------------------------------------------- the job child

def send(sock, msg: dict):
    sock.send(json.dumps(msg).encode())


def place_fds(fds: list[int]):
    """job -> 0, stdout -> 1, stderr -> 2, results -> 3; every other fd closed."""
    high = [os.dup(f) if f >= 10 else _dup_high(f) for f in fds]
    for target, f in zip((0, 3, 1, 2), high):
        os.dup2(f, target)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _dup_high(f: int) -> int:
    import fcntl  # noqa: PLC0415
    return fcntl.fcntl(f, fcntl.F_DUPFD, 10)


def set_limits(lim: dict):
    """A job's rlimits (both sandboxes: here in the forked job, in sandbox.preexec before exec)."""
    mb = 1 << 20
    for res, v in ((resource.RLIMIT_AS, lim["memory_mb"] * mb), (resource.RLIMIT_FSIZE, lim["fsize_mb"] * mb),
                   (resource.RLIMIT_NPROC, lim["nproc"]), (resource.RLIMIT_NOFILE, lim["nofile"]),
                   (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (v, v))
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))


def child(uid: int, lim: dict, fds: list[int], workdir: str):
    """Runs in the forked job process; never returns."""
    try:
        server = os.getppid()
        os.setsid()
        assert _libc.unshare(CLONE_NEWIPC) == 0 or os.getuid() != 0, "unshare(CLONE_NEWIPC) failed"
        place_fds(fds)
        # the signal dispositions of a fresh interpreter (the reference): SIGINT raises, SIGPIPE ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir})
        set_limits(lim)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        assert os.getuid() == uid and os.geteuid() == uid and os.getegid() == uid
        assert _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        # the parent-death signal (set after setuid, which clears it): the job dies with its server
        assert _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0 and os.getppid() == server
        sys.argv = ["/tmp/_pgrpo_harness.py", "3"]  # as the reference harness sees them
        sys.modules["__main__"] = harness
    except BaseException as e:  # noqa: BLE001
        os.write(2, f"sandbox server: job setup failed: {e!r}\n".encode())
        os._exit(126)
    harness.run(harness.read_job(), 3, in_process_exit=True)
    os._exit(0)


# ----------------------------------------------------------------------------- one job

class Server:
    def __init__(self, sock: socket.socket, uid: int, pidns: bool):
        self.sock, self.uid, self.pidns = sock, uid, pidns
        self.n = 0

    def run(self, req: dict, fds: list[int]) -> dict:
        self.n += 1
        workdir = tempfile.mkdtemp(prefix="pgrpo_job_")  # unpredictable: other slots' jobs cannot squat it
        os.chown(workdir, self.uid, self.uid)
        pid = os.fork()
        if pid == 0:
            self.sock.close()
            child(self.uid, req["limits"], fds, workdir)
        for f in fds:
            os.close(f)
        code = self.supervise(pid, req["seq"])
        clean = self.clear_slot()
        remove_tree(workdir)
        remove_uid_files(self.uid)
        return {"exit": code, "seq": req["seq"], "clean": clean}

    def supervise(self, pid: int, seq: int) -> int:
        """Wait for the job's process to exit; a kill request kills every process of the slot."""
        pidfd = os.pidfd_open(pid)
        try:
            while True:
                ready, _, _ = select.select([self.sock, pidfd], [], [])
                if pidfd in ready:
                    _, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status)
                msg = self.sock.recv(1 << 16)
                if not msg:  # the parent is gone
                    self.kill_all()
                    sys.exit(0)
                req = json.loads(msg)
                if req.get("op") == "kill" and req.get("seq") == seq:
                    self.kill_all()
        finally:
            os.close(pidfd)

    def kill_all(self):
        """SIGKILL every process of the slot uid (never this server, which is root)."""
        if self.pidns:  # root of a private pid namespace: kill(-1) reaches exactly its processes
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        kill_uid(self.uid)  # without a pid namespace: every process of the slot uid, by pidfd

    def clear_slot(self, timeout: float = 5.0) -> bool:
        """Kill and reap until no process of the slot uid is left (orphans come to this subreaper)."""
        end, delay = time.monotonic() + timeout, 0.0005
        while True:
            self.reap()
            alive = uid_pids(self.uid)
            if not alive:
                return True
            if time.monotonic() > end:
                return False
            self.kill_all()
            time.sleep(delay)
            delay = min(2 * delay, 0.02)

    @staticmethod
    def reap():
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def main():
    global harness
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _pgrpo_harness  # noqa: PLC0415
    harness = _pgrpo_harness
    for name in PRELOAD:
        __import__(name)
    harness._libc = _libc  # the jobs' kernel-object cleanup uses the server's libc handle
    sock = socket.socket(fileno=int(sys.argv[1]))
    uid, pidns = int(sys.argv[2]), sys.argv[3] == "pidns"
    assert os.geteuid() == 0, "the sandbox server runs as root (it gives each job the slot uid)"
    assert _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    server = Server(sock, uid, pidns)
    gc.collect()
    gc.freeze()  # objects of the server stay out of the jobs' collections: fewer copy-on-write page faults
    server.clear_slot()
    remove_uid_files(uid)
    send(sock, {"ready": os.getpid()})
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
        except OSError:
            return
        if not msg:
            return
        req = json.loads(msg)
        if req.get("op") != "run":  # a kill that arrived after its job had ended
            for f in fds:
                os.close(f)
            continue
        assert len(fds) == 4, f"run request with {len(fds)} fds"
        try:
            report = server.run(req, fds)
        except Exception as e:  # noqa: BLE001  (the parent restarts a server whose slot is not clean)
            report = {"exit": None, "seq": req["seq"], "clean": False, "error": repr(e)[:300]}
        send(sock, report)


if __name__ == "__main__":
    main()
