"""What a bare fork of a sandbox server's image costs (issue 28, session 24): the harness and the server's preloaded
modules imported, gc frozen, as _pgrpo_server.main does; then 300 forks whose child exits at once, collects garbage,
or does a little work; per fork the wall time, the child's CPU and its page faults. A one-off script kept beside its
output; run it from the repository's root:

    python3 -I -S docs/results/2026-12-07_grading_bound_s24/forkcost.py
"""
import os, sys, gc, resource, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../src/projected_grpo/env"))
import _pgrpo_harness, _pgrpo_server
for n in _pgrpo_server.PRELOAD: __import__(n)
gc.collect(); gc.freeze()
def measure(label, body, n=300):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN); t0 = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            body(); os._exit(0)
        os.waitpid(pid, 0)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN); dt = time.perf_counter() - t0
    print(f"{label}: {1e3*dt/n:.2f} ms wall a fork, child cpu {1e3*(r1.ru_utime+r1.ru_stime-r0.ru_utime-r0.ru_stime)/n:.2f} ms, {(r1.ru_minflt-r0.ru_minflt)/n:.0f} faults")
measure("fork+_exit", lambda: None)
measure("fork+gc.collect", lambda: gc.collect())
def small():
    x = [i for i in range(100)]; import json; json.dumps({"a": x})
measure("fork+small work", small)
