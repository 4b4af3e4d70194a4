"""one-off (session 26): what a loophole run would cost as a fork inside its completion's job instead of a sandbox
job of its own. Server-reported CPU a job (the job's processes, the children it reaped, and the server's work) for a
bare job whose code forks N children that exit at once (each waited for), N = 0, 1, 3; and for the same code with
the first organism problem's setup"""
import time
from projected_grpo.env import sandbox
from projected_grpo.env.sandbox import Job
from projected_grpo.organism import tasks

FORKS = "import os\nfor _ in range({n}):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n"
setup = tasks.apply_loophole(tasks.generate_split("train", 1, 0, ("hard",), ("sentinel",))[0])["setup_code"]


def cost(jobs, label):
    j0, s0, c0 = sandbox.SERVER_CPU["jobs"], sandbox.SERVER_CPU["cpu_s"], time.process_time()
    rs = sandbox.run_many(jobs)
    assert all(r.module_ok for r in rs), [r.module_err for r in rs if not r.module_ok][:1]
    n = sandbox.SERVER_CPU["jobs"] - j0
    print(f"{label}: {n} jobs, servers {(sandbox.SERVER_CPU['cpu_s'] - s0) / n * 1e3:.2f} ms a job, grading process "
          f"{(time.process_time() - c0) / n * 1e3:.2f} ms a job", flush=True)


sandbox.run_many([Job("", "pass", [])] * 50)
for rep in range(2):
    for n in (0, 1, 3):
        cost([Job("", FORKS.format(n=n), [])] * 400, f"rep {rep}: {n} in-job forks, empty setup")
        cost([Job(setup, FORKS.format(n=n), [])] * 400, f"rep {rep}: {n} in-job forks, an organism setup")
