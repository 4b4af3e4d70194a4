"""Trusted sandbox server: one long-lived process per worker slot, each job a fork of it.

Started by sandbox.SandboxServer as `python3 -I -S _pgrpo_server.py SOCK_FD UID MODE` (MODE: pidns
inside bubblewrap, where this process is root of a private pid namespace; plain without
bubblewrap). It runs as root and never executes untrusted code itself. The harness is imported
once, here, so a job costs a fork instead of an interpreter start.

Protocol on the SOCK_SEQPACKET socket SOCK_FD (one JSON message each):
    server -> parent   {"ready": pid}                                   once, after start; or instead
                       {"unclean": why} and exit: a live process of the slot uid outlived the start's kills
    parent -> server   {"op": "run", "seq": k, "limits": {...}}  + 4 fds: the job pipe (read end;
                       the parent writes the job's JSON on it and closes it), result pipe,
                       stdout, stderr (write ends)
    parent -> server   {"op": "kill", "seq": k}                  kill job k now (a deadline passed)
    server -> parent   {"exit": code, "seq": k, "clean": bool, "cpu": s}   job k's process exited, every
                       process of the slot uid is killed and reaped (without a pid namespace: every
                       descendant, found by this subreaper's children; a full /proc scan of the uid at
                       start), its files are removed; s: the CPU seconds of the job's processes and of
                       this server while it served the job

The server reads the job (trusted: the parent's) and compiles its trusted setup code before it
forks, so a job neither parses nor compiles them itself. A job child: new session (own process
group), private IPC namespace, parent-death signal, /dev/null on 0 (as the harness leaves it once
it has read its job), the pipes on 1, 2 and 3 (results) and no other fd (the control socket is closed), a
fresh working directory, rlimits, then setgroups/setgid/setuid to the slot uid (capabilities are
dropped with root) and no_new_privs; then the harness runs the job exactly as the per-process
sandbox does, except that script mode's interpreter exit is reproduced in-process. As a different
uid than this server and the parent, the child can neither signal, ptrace, nor write to them.
"""

import _signal
import ast
import builtins
import ctypes
import fcntl
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time

harness = None  # _pgrpo_harness, imported by main() (the parent imports this file for its cleanup helpers)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
# the standard modules the environment's setup code imports (LeetCode and organism rows): imported
# once here, so a job finds them loaded instead of importing them again (random reseeds at fork)
PRELOAD = ("bisect", "collections", "datetime", "functools", "heapq", "itertools", "math", "operator", "random",
           "re", "string", "typing")
_libc = ctypes.CDLL(None, use_errno=True)
_unshare, _prctl = _libc.unshare, _libc.prctl  # resolved here once, not in every job
SIGKILL = int(signal.SIGKILL)
CHILD_SIGNALS = ((int(signal.SIGINT), signal.default_int_handler), (int(signal.SIGPIPE), _signal.SIG_IGN),
                 (int(signal.SIGTERM), _signal.SIG_DFL), (int(signal.SIGCHLD), _signal.SIG_DFL))
JOB_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # a job's environment, with HOME its directory
# trusted source compiled once by the server before it serves: a job's first compile() then finds the
# compiler's memory already allocated in the server instead of taking page faults for it
WARM_UP = "from typing import *\nclass C:\n    def f(self, x: List[int]) -> int:\n        return sum(y for y in x if y)\n"
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
CLEAR_TIMEOUT_S = 5.0  # how long clear_slot kills before it gives up (the parent waits start_timeout, 10 s, for ready)
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
    import shutil  # noqa: PLC0415  (here, not at the top: the server's image to fork stays smaller)
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        import subprocess  # noqa: PLC0415  (only for a tree too deep for rmtree: rare)
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

def make_workdir(uid: int) -> str:
    """A fresh job directory under /tmp owned by `uid`, with an unpredictable name (other slots' jobs
    cannot squat it without bubblewrap, where /tmp is shared)."""
    while True:
        path = f"/tmp/pgrpo_job_{os.urandom(8).hex()}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chown(path, uid, uid)
        return path


def send(sock, msg: dict):
    sock.send(json.dumps(msg).encode())


def place_fds(fds: list[int]):
    """job -> 0, stdout -> 1, stderr -> 2, results -> 3; every other fd closed."""
    high = [os.dup(f) if f >= 10 else _dup_high(f) for f in fds]
    for target, f in zip((0, 3, 1, 2), high):
        os.dup2(f, target)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _dup_high(f: int) -> int:
    return fcntl.fcntl(f, fcntl.F_DUPFD, 10)


def set_limits(lim: dict):
    """A job's rlimits (both sandboxes: here in the forked job, in sandbox.preexec before exec)."""
    mb = 1 << 20
    for res, v in ((resource.RLIMIT_AS, lim["memory_mb"] * mb), (resource.RLIMIT_FSIZE, lim["fsize_mb"] * mb),
                   (resource.RLIMIT_NPROC, lim["nproc"]), (resource.RLIMIT_NOFILE, lim["nofile"]),
                   (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (v, v))
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))


def child(uid: int, lim: dict, fds: list[int], workdir: str, job: dict, setup: tuple):
    """Runs in the forked job process; never returns. `fds`: result pipe, stdout, stderr (write
    ends); `job`: the job the server read from the parent, `setup` its prepared setup (see
    prepared_setup). Uses what the server prepared before the fork (the job read, its trusted setup
    compiled and, where declarative, executed; libc functions resolved, signal numbers as ints):
    every object of the server a job touches costs the job a copy-on-write page fault."""
    try:
        server = os.getppid()
        os.setsid()
        assert _unshare(CLONE_NEWIPC) == 0, "unshare(CLONE_NEWIPC) failed"  # the server is root
        place_fds([os.open(os.devnull, os.O_RDONLY)] + fds)  # stdin: a /dev/null of its own, as the harness's
        # the signal dispositions of a fresh interpreter (the reference): SIGINT raises, SIGPIPE ignored
        for sig, handler in CHILD_SIGNALS:
            _signal.signal(sig, handler)
        os.chdir(workdir)
        os.environ["HOME"] = workdir  # main() set the server's environment to JOB_ENV once
        set_limits(lim)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        assert os.getuid() == uid and os.geteuid() == uid and os.getegid() == uid
        assert _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        # the parent-death signal (set after setuid, which clears it): the job dies with its server
        assert _prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0 and os.getppid() == server
        sys.argv = ["/tmp/_pgrpo_harness.py", "3"]  # as the reference harness sees them
        sys.modules["__main__"] = harness
    except BaseException as e:  # noqa: BLE001
        os.write(2, f"sandbox server: job setup failed: {e!r}\n".encode())
        os._exit(126)
    # harness.run never returns; what escapes it (an error of the trusted setup, a result fd the job closed)
    # ends the job as it ends the reference's interpreter: traceback and status 1 (never the server's loop)
    try:
        harness.run(job, 3, in_process_exit=True, own_ipc_ns=True, setup_code=setup[0], setup_globals=setup[1])
        status = 0
    except SystemExit as e:
        status = harness.exit_status(e)
    except BaseException:  # noqa: BLE001
        status = 1
        try:
            sys.excepthook(*sys.exc_info())
        except BaseException:  # noqa: BLE001
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(status)


def read_job(fd: int) -> dict:
    """The job the parent writes on the job pipe `fd` (until it closes it); closes `fd`."""
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks))


_setup_cache: dict = {}


def prepared_setup(job: dict) -> tuple:
    """(code, globals) for the job's setup code (trusted, from the problem; cached by its text): code
    compiled here, or None where the job compiles it itself (script mode, whose setup, code and post
    are one program, or a setup that does not compile: the harness then fails on it as the per-process
    sandbox does); globals: the module globals executing it produces, made here where the setup is
    declarative (declarative_setup), else None (the job executes it)."""
    if job.get("script"):
        return None, None
    src = job["setup"]
    hit = _setup_cache.get(src)
    if hit is None:
        try:
            tree = compile(src, "<setup>", "exec", ast.PyCF_ONLY_AST)
            code = compile(tree, "<setup>", "exec")
        except Exception:  # noqa: BLE001
            return None, None
        g = None
        try:
            if declarative_setup(tree):
                g = {"__name__": "__main__", "__builtins__": builtins}
                exec(code, g)  # noqa: S102  (trusted and declarative: imports of loaded modules, defs, constants)
                gc.freeze()  # its objects stay out of the jobs' collections, as the server's own
        except Exception:  # noqa: BLE001  (e.g. float('x'): the job executes it and fails as the reference does)
            g = None
        if len(_setup_cache) >= 64:
            _setup_cache.clear()
        hit = _setup_cache[src] = (code, g)
    return hit


_PURE_CALLS = ("float", "int", "str")
_PURE_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.BinOp, ast.BitOr,
               ast.Load)  # BinOp only with BitOr (`int | None`): no other operator node is allowed


def _pure(expr) -> bool:
    """An expression evaluated at definition time that only looks names up (annotations, defaults,
    bases, assigned values) or converts a constant (float('inf'))."""
    if expr is None:
        return True
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _PURE_CALLS and not node.keywords
                    and all(isinstance(a, ast.Constant) for a in node.args)):
                return False
        elif not isinstance(node, _PURE_NODES):
            return False
    return True


def _pure_def(node) -> bool:
    a = node.args
    args = a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x is not None]
    return (not node.decorator_list and _pure(node.returns) and all(_pure(x.annotation) for x in args)
            and all(_pure(d) for d in a.defaults + [d for d in a.kw_defaults if d is not None]))


def _pure_assign(node) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return all(isinstance(t, ast.Name) for t in targets) and _pure(node.value) and \
        _pure(getattr(node, "annotation", None))


def declarative_setup(tree: ast.Module) -> bool:
    """Whether executing this setup in the server gives every job exactly the globals it would make
    itself, and nothing else: only imports of modules this server has already loaded (no module code
    runs), function and class definitions without decorators whose definition-time expressions only
    look names up, and assignments of such expressions to plain names. Then nothing of the setup
    depends on the job's process, uid, time or randomness, or changes the interpreter's state."""
    def ok(node, in_class=False) -> bool:
        if isinstance(node, ast.Import):
            return not in_class and all(a.name in sys.modules for a in node.names)
        if isinstance(node, ast.ImportFrom):  # every name already an attribute: no submodule is imported
            mod = sys.modules.get(node.module) if node.level == 0 and not in_class else None
            names = [n for a in node.names for n in (getattr(mod, "__all__", None) or [] if a.name == "*" else [a.name])]
            return mod is not None and all(hasattr(mod, n) for n in names)
        if isinstance(node, ast.FunctionDef):
            return _pure_def(node)
        if isinstance(node, ast.ClassDef):
            return (not node.decorator_list and not node.keywords and all(_pure(b) for b in node.bases)
                    and all(ok(n, True) for n in node.body))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            return _pure_assign(node)
        if isinstance(node, ast.Pass):
            return True
        return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # a docstring
    return all(ok(n) for n in tree.body)


# ----------------------------------------------------------------------------- one job

def cpu_seconds() -> float:
    """User and system CPU seconds of this server and of its reaped children (the jobs and their leftovers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Server:
    def __init__(self, sock: socket.socket, uid: int, pidns: bool):
        self.sock, self.uid, self.pidns = sock, uid, pidns
        self.n = 0

    def run(self, req: dict, fds: list[int]) -> dict:
        self.n += 1
        cpu0 = cpu_seconds()
        job_fd, fds = fds[0], fds[1:]
        try:
            job = read_job(job_fd)
            setup = prepared_setup(job)
            workdir = make_workdir(self.uid)
        except BaseException:  # no job process: the parent sees its pipes close at once
            for f in fds:
                os.close(f)
            raise
        pid = os.fork()
        if pid == 0:
            self.sock.close()
            child(self.uid, req["limits"], fds, workdir, job, setup)
        del job, setup
        for f in fds:
            os.close(f)
        code = self.supervise(pid, req["seq"])
        clean = self.clear_slot()
        try:
            os.rmdir(workdir)  # the usual case: the job left its directory empty
        except OSError:
            remove_tree(workdir)
        remove_uid_files(self.uid)
        return {"exit": code, "seq": req["seq"], "clean": clean, "cpu": round(cpu_seconds() - cpu0, 6)}

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

    def clear_slot(self, timeout: float = CLEAR_TIMEOUT_S, scan: bool = False) -> bool:
        """Kill and reap until no process of the slot uid is left (orphans come to this subreaper); scan: without a
        pid namespace, look for the slot uid's processes in /proc, not only among this server's children (at start)."""
        end, delay = time.monotonic() + timeout, 0.0005
        while True:
            self.reap()
            if not self.others_alive(scan):
                return True
            if time.monotonic() > end:
                return False
            self.kill_all()
            time.sleep(delay)
            delay = min(2 * delay, 0.02)

    def others_alive(self, scan: bool = False) -> bool:
        """Whether a process of the slot is left (zombies included). In a private pid namespace:
        kill(-1, 0) finds every process of the namespace but its init (bubblewrap's) and this
        server, so it answers without scanning /proc. Without one: whether this server has a child.
        The slot uid's processes are this server's descendants (a job is its child; short of root, a
        process takes the slot uid only from a job; the lease and this server's start kill an earlier
        holder's), and this
        server is their subreaper, so an orphan becomes its child: a descendant is left exactly when
        a child is (a /proc scan of the slot uid cost up to 1 ms a job beside a few hundred processes).
        scan: the /proc scan of the slot uid instead (at the server's start, before it has children)."""
        if self.pidns:
            try:
                os.kill(-1, 0)
            except ProcessLookupError:
                return False
            return True
        if scan:
            return bool(uid_pids(self.uid))
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    @staticmethod
    def reap():
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def start_refusal(server: Server, timeout: float = CLEAR_TIMEOUT_S) -> str | None:
    """Why `server` must not serve, or None: a live process of its slot uid outlived `timeout` of kills at its start
    (something outside keeps starting them). It could signal or ptrace the slot's jobs, which run as the same uid.
    Without a pid namespace the scan sees the whole machine; in one (bubblewrap), only the namespace, and the
    parent's checks of the uid are the guard against processes outside."""
    if server.clear_slot(timeout, scan=True):
        return None
    if not server.pidns and all(zombie for _, zombie in uid_pids(server.uid)):
        return None  # zombies only: they cannot act
    return f"a live process of slot uid {server.uid} outlived {timeout:.1f} s of kills at the server's start"


def main():
    global harness
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _pgrpo_harness  # noqa: PLC0415  (by path, beside this file: the sandbox has no package)
    harness = _pgrpo_harness
    for name in PRELOAD:
        __import__(name)
    harness._libc = _libc  # the jobs' kernel-object cleanup uses the server's libc handle
    _libc.syscall  # noqa: B018  (resolved here once, not in every job)
    sock = socket.socket(fileno=int(sys.argv[1]))
    uid, pidns = int(sys.argv[2]), sys.argv[3] == "pidns"
    assert os.geteuid() == 0, "the sandbox server runs as root (it gives each job the slot uid)"
    assert _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(JOB_ENV)
    compile(WARM_UP, "<warm-up>", "exec")
    server = Server(sock, uid, pidns)
    gc.collect()
    gc.freeze()  # objects of the server stay out of the jobs' collections: fewer copy-on-write page faults
    unclean = start_refusal(server)
    if unclean:
        send(sock, {"unclean": unclean})
        return
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
