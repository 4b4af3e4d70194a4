"""Child-side harness: runs one job of untrusted Python and reports on a dedicated pipe.

Executed by path as `python3 -I -S _pgrpo_harness.py FD` inside the per-process sandbox, or
imported once by the sandbox server (_pgrpo_server.py), whose forked jobs call run() (see sandbox.py).
Protocol: the parent writes one JSON job on stdin and closes it; the job carries a random
nonce. The harness reads it, closes stdin, and writes one JSON record per line on fd FD, each
carrying the nonce:

    {"t": "setup", ...}      setup_code executed (before any untrusted code)
    {"t": "module", ok, err} untrusted code executed at module level
    {"t": "test", i, status ("ok" | "error" | "timeout"), value, err}   one per test, in order
    {"t": "done"}

Test values are sent in a canonical plain-data encoding (exact builtin types only); anything
else is encoded as unconvertible and never equals an expected value. The harness never
receives expected values, so the untrusted code cannot learn them from this process.
Test kinds: "value" (expression -> canonical value), "truth" (expression must be `is True`,
evaluated after restoring builtins and re-running setup), "exec" (trusted statements, e.g. swap
in another Solution class), "call" (the completion's own function of that name, module level
or a method of one of its classes, must return without raising).
Script mode (job["script"]) executes setup + code + post as one script and reports nothing:
the parent reads only the exit status.

This file uses only references captured before the untrusted code runs.
"""

import builtins
import json
import os
import signal
import sys
import time
import traceback


class _TestTimeout(BaseException):
    """Raised by the per-test timer; a BaseException so `except Exception` does not swallow it."""


_type, _len, _repr, _str, _isinstance, _sorted = type, len, repr, str, isinstance, sorted
_int, _float, _bool, _list, _tuple, _dict, _set, _frozenset = int, float, bool, list, tuple, dict, set, frozenset
_cputime, _setitimer, _write, _dumps = time.process_time, signal.setitimer, os.write, json.dumps
_exit, _compile, _exec, _eval, _getattr = os._exit, compile, exec, eval, getattr
_format_exc, _BaseException, _SystemExit = traceback.format_exception_only, BaseException, SystemExit


def canonical(x, depth=0):
    """Plain-data encoding of x using exact type checks; non-builtin types -> {"X": typename}."""
    if depth > 200:
        return {"X": "too-deep"}
    t = _type(x)
    if x is None or t is _bool or t is _str:
        return x
    if t is _int:
        return x if -(1 << 53) < x < (1 << 53) else {"I": _repr(x)}
    if t is _float:
        return {"f": _repr(x)}
    if t is _list:
        return {"L": [canonical(v, depth + 1) for v in x]}
    if t is _tuple:
        return {"T": [canonical(v, depth + 1) for v in x]}
    if t is _dict:
        return {"D": [[canonical(k, depth + 1), canonical(v, depth + 1)] for k, v in x.items()]}
    if t is _set:
        return {"S": [canonical(v, depth + 1) for v in x]}
    if t is _frozenset:
        return {"FS": [canonical(v, depth + 1) for v in x]}
    return {"X": t.__name__ if t.__name__.__class__ is _str else "?"}


def _err(e):
    try:
        return "".join(_format_exc(_type(e), e))[-500:]
    except _BaseException:
        return "<unprintable exception>"


_libc = None
_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)  # the keyctl syscall number


def clear_kernel_objects(sysv: bool = True):
    """Remove what earlier jobs of this slot uid left in the kernel beyond their processes and files:
    keys in the uid's user and user-session keyrings (shared by every process of the uid without a
    user namespace) and SysV IPC objects the uid owns (shared without an IPC namespace; sysv=False
    where the job runs in an IPC namespace of its own, created empty for it: a sandbox server's job).
    Runs as the slot uid, before any untrusted code."""
    global _libc
    if _libc is None:  # loaded once (in the server, before the jobs fork)
        import ctypes  # noqa: PLC0415  (loaded once where used: the harness's image stays small)
        _libc = ctypes.CDLL(None, use_errno=True)
    libc = _libc
    if _KEYCTL is not None:
        for ring in (-4, -5):  # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING
            libc.syscall(_KEYCTL, 7, ring)  # KEYCTL_CLEAR
    if sysv:
        remove_sysv(os.getuid(), libc)


def remove_sysv(uid: int, libc) -> None:
    """Remove (IPC_RMID) the SysV shared memory, semaphores and message queues `uid` owns: as that uid before a
    job (clear_kernel_objects), and as root after every per-process job (sandbox.run_job_as), since another slot's
    job could otherwise see an object (permissions 0666) until this slot runs again."""
    for kind, uid_col, remove in (("shm", 7, lambda i: libc.shmctl(i, 0, None)),
                                  ("sem", 4, lambda i: libc.semctl(i, 0, 0)),
                                  ("msg", 7, lambda i: libc.msgctl(i, 0, None))):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = [ln.split() for ln in f.read().splitlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if len(row) > uid_col and row[uid_col] == _str(uid):
                remove(_int(row[1]))  # IPC_RMID


def read_job() -> dict:
    """The job from stdin (fd 0), which is then replaced by /dev/null."""
    data = b""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        data += chunk
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return json.loads(data)


def exit_status(e) -> int:
    """The status the interpreter exits with for an uncaught SystemExit (CPython's
    handle_system_exit and Py_Exit): None -> 0; an int (subclasses by their raw value) -> its low
    byte, 255 when it does not fit a C long; anything else is printed to stderr -> 1."""
    code = e.code
    if code is None:
        return 0
    if _isinstance(code, _int):
        v = _int.__index__(code)
        return 255 if not -(1 << 63) <= v < (1 << 63) else v & 0xFF
    try:
        sys.stderr.write(_str(code) + "\n")
    except _BaseException:
        pass
    return 1


def run_script_in_process(src: str) -> int:
    """Script mode for a forked job: the exit status the per-process harness gets from the
    interpreter (on SystemExit or an uncaught exception: excepthook, which may itself exit,
    non-daemon threads joined, atexit handlers, the script's objects collected, streams flushed,
    120 when flushing fails)."""
    g = {"__name__": "__main__", "__builtins__": builtins}
    try:
        _exec(_compile(src, "<program>", "exec"), g)
        sys.stdout.flush()
        return 0  # as the per-process harness: _exit(0) right after the script, no finalization
    except _SystemExit as e:
        status = exit_status(e)
    except _BaseException:  # noqa: BLE001
        try:
            sys.excepthook(*sys.exc_info())
            status = 1
        except _SystemExit as e:
            status = exit_status(e)
        except _BaseException:
            status = 1
    del g  # from here the script's globals live only in its own reference cycles, as at a real exit
    return finalize(status)


def finalize(status: int) -> int:
    """What Py_FinalizeEx does that a script can observe, in its order."""
    for step in ("threads", "atexit", "collect"):
        try:
            if step == "threads":
                import threading  # noqa: PLC0415  (as the interpreter's finalisation: only at the end)
                threading._shutdown()
            elif step == "atexit":
                import atexit  # noqa: PLC0415  (as above)
                atexit._run_exitfuncs()  # errors in handlers are printed and the status kept
            else:  # the script's objects are collected: __del__ methods run with their globals intact
                import gc  # noqa: PLC0415  (as above)
                gc.collect()
        except _BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except _BaseException:
            status = 120
    return status


def main():
    """Per-process sandbox entry point: `python3 -I -S _pgrpo_harness.py FD`."""
    fd = _int(sys.argv[1])
    run(read_job(), fd)


def run(job: dict, fd: int, in_process_exit: bool = False, own_ipc_ns: bool = False, setup_code=None,
        setup_globals=None):
    """Run one job and report on `fd`; never returns. in_process_exit: script mode computes the
    exit status itself (a forked job of the sandbox server) instead of leaving it to the interpreter.
    own_ipc_ns: the job runs in a new IPC namespace of its own (a sandbox server's job), so no SysV
    object of an earlier job is visible to it and only the keyrings need clearing. setup_code: the
    job's (trusted) setup already compiled by the sandbox server, else compiled here. setup_globals:
    the module globals that executing setup_code produces, made by the sandbox server where the
    setup is declarative (_pgrpo_server.declarative_setup) and used here as the job's own globals
    (the job is a fork: its copy is its own); else setup_code is executed here."""
    clear_kernel_objects(sysv=not own_ipc_ns)
    nonce = job.pop("nonce")

    def send(rec):
        rec["n"] = nonce
        data = (_dumps(rec, allow_nan=True) + "\n").encode()
        while data:
            data = data[_write(fd, data):]

    if job.get("script"):
        os.close(fd)
        src = job["setup"] + "\n" + job["code"] + "\n" + job.get("post", "")
        g = {"__name__": "__main__", "__builtins__": builtins}
        del nonce, send, job
        if in_process_exit:
            del g
            _exit(run_script_in_process(src))
        _exec(_compile(src, "<program>", "exec"), g)  # SystemExit and exceptions propagate
        sys.stdout.flush()
        _exit(0)

    def on_alarm(signum, frame):
        raise _TestTimeout()

    signal.signal(signal.SIGPROF, on_alarm)

    if setup_code is None:
        setup_code = _compile(job["setup"], "<setup>", "exec")
    if setup_globals is not None:
        g = setup_globals
    else:
        g = {"__name__": "__main__", "__builtins__": builtins}
        _exec(setup_code, g)
    tests = [(t["kind"], t["src"]) for t in job["tests"]]
    # the builtins as setup left them, for `truth` tests (taken only when there are some: copying them
    # writes to every builtin object, which costs a forked job of the sandbox server page faults)
    builtins_snapshot = _dict(builtins.__dict__) if any(k == "truth" for k, _ in tests) else None
    per_test, module_timeout = _float(job["per_test_timeout"]), _float(job["module_timeout"])
    send({"t": "setup"})

    def run_timed(fn, limit):
        """fn() under a re-firing CPU-time timer (load independent); returns (status, value, err).
        Code that blocks without using CPU (sleep) is stopped by the parent's wall deadline."""
        t0 = _cputime()
        try:
            _setitimer(signal.ITIMER_PROF, limit, 0.25)
            try:
                v = fn()
            finally:
                _setitimer(signal.ITIMER_PROF, 0, 0)
            status, err = "ok", None
        except _TestTimeout:
            return "timeout", None, "timeout"
        except _BaseException as e:  # noqa: BLE001  (untrusted code may raise anything, SystemExit included)
            _setitimer(signal.ITIMER_PROF, 0, 0)
            return "error", None, _err(e)
        if _cputime() - t0 > limit:  # the timeout fired but was swallowed by untrusted code
            return "timeout", None, "timeout (exception swallowed)"
        return status, v, err

    code = job["code"]
    del job

    def exec_code():
        _exec(_compile(code, "<completion>", "exec"), g)

    status, _, err = run_timed(exec_code, module_timeout)
    send({"t": "module", "ok": status == "ok", "status": status, "err": err})
    for i, (kind, src) in enumerate(tests):
        if kind == "value":
            fn = lambda src=src: canonical(_eval(_compile(src, "<test>", "eval"), g))  # noqa: E731
        elif kind == "truth":
            def fn(src=src):
                builtins.__dict__.clear()
                builtins.__dict__.update(builtins_snapshot)
                _exec(setup_code, g)
                return _eval(_compile(src, "<test>", "eval"), g) is True
        elif kind == "exec":  # trusted statements (e.g. swap in another Solution), then value True
            def fn(src=src):
                _exec(_compile(src, "<post>", "exec"), g)
                return True
        elif kind == "call":  # the completion's own function `src`: module level or a method of its class
            def fn(name=src):
                f = g.get(name)
                if f is not None and _type(f).__name__ == "function":
                    f()
                    return True
                for v in _list(g.values()):
                    if _type(v) is _type and name in _getattr(v, "__dict__", {}):
                        _getattr(v(), name)()
                        return True
                raise NameError(f"no function {name}")
        else:
            raise ValueError(kind)
        status, v, err = run_timed(fn, per_test)
        rec = {"t": "test", "i": i, "status": status, "err": err}
        if status == "ok":
            rec["value"] = v
        try:
            send(rec)
        except (ValueError, OverflowError, RecursionError) as e:
            send({"t": "test", "i": i, "status": "error", "err": "unencodable value: " + _err(e)})
    send({"t": "done"})
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except _BaseException:
        pass
    _exit(0)


if __name__ == "__main__":
    main()
