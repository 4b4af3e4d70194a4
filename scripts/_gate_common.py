"""Shared helpers of the verify_* gates: data path, fencing, busy-core load, the gate entry point, and the fixtures
several gates use (a tiny run configuration, a teacher pool, synthetic run folders, hostile completions, one recorded
Trainer step). A gate imports no other gate: what two gates share lives here."""

import contextlib
import copy
import io
import json
import multiprocessing as mp
import os
import random
import runpy
import subprocess
import sys
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from projected_grpo.env.problems import load_jsonl
from projected_grpo.loop import grpo, logs
from projected_grpo.loop.models import cpu_jiffies
from projected_grpo.method import adapters as ad
from projected_grpo.method.pairs import DEFAULT_LEETCODE
from projected_grpo.organism import tasks

REPO = Path(__file__).resolve().parents[1]
LEETCODE = DEFAULT_LEETCODE


def problems():
    return load_jsonl(LEETCODE)


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


def _spin():
    while True:
        pass


class BusyCores:
    """Context manager: n busy-loop processes keep the cores loaded, killed on exit (n=None: one per core)."""

    def __init__(self, n=None):
        self.n = os.cpu_count() if n is None else n

    def __enter__(self):
        self.procs = [mp.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.join()


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot (models.cpu_jiffies): busy is everything but idle and
    iowait, steal included (the grading gates ask whether the machine was free, not whose work it did)."""
    j = cpu_jiffies()
    return sum(j.values()) - j["idle"] - j["iowait"], sum(j.values())


class MachineLoad:
    """Context manager: `busy` is the fraction of the machine's CPU time that was busy inside the block (every
    process counts: busy loops, other gates, the graders themselves)."""

    def __enter__(self):
        self.start = cpu_times()
        return self

    def __exit__(self, *exc):
        (b0, t0), (b1, t1) = self.start, cpu_times()
        self.busy = (b1 - b0) / max(t1 - t0, 1)


def run_script(cmd: list[str]) -> subprocess.CompletedProcess:
    """`cmd` = [sys.executable, SCRIPT, *ARGS] run in this process as the interpreter would run it (runpy, __main__,
    its argv, the repository as working folder), without a new interpreter and its imports (5-8 CPU-s each on the
    2-core machine): the exit status and the captured stdout and stderr."""
    assert cmd[0] == sys.executable and cmd[1].endswith(".py"), cmd
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = list(cmd[1:])
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(cmd[1], run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, (int, type(None))):
                    print(e.code, file=sys.stderr)
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


def run_gate(name: str, main) -> None:
    """Run a gate's main(): an AssertionError prints `FAIL <name>: <message>` and exits 1."""
    try:
        main()
    except AssertionError as e:
        print(f"FAIL {name}: {e}")
        sys.exit(1)


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far: a compile gate asserts it grew, so that a silent
    fall back to eager cannot pass as compiled."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def full_tier() -> bool:
    """True under `just smoke-full` (PGRPO_SMOKE_FULL=1): the gates with a combinatorial matrix run all of it. `just
    smoke` runs a covering subset (every code path, architecture and adapter structure at least once), so that it
    stays within two minutes on the 2-core machine; each gate names its tier in its PASS line."""
    return os.environ.get("PGRPO_SMOKE_FULL") == "1"


def neighbours_load() -> bool:
    """True in `just smoke`'s fast tier, where the grading-under-load gates start first and the gates running beside
    them keep the cores busy (they assert it: MIN_BUSY); run alone or in smoke-full they start busy loops instead."""
    return not full_tier() and os.environ.get("PGRPO_SMOKE") == "1"


MIN_BUSY = 0.92  # busy CPU fraction a grading-under-load gate needs from its neighbours (alone, its own 2 workers kept it 83% busy)


def tier() -> str:
    return "full" if full_tier() else "fast"


def cheap_cpu_compile() -> str:
    """The compile gates' backend on the CPU: aot_eager (models.compile_backend reads PGRPO_COMPILE_BACKEND) unless
    PGRPO_COMPILE_BACKEND names another (inductor: its C++ code generation too, minutes cold on 2 cores). smoke_gpu
    leaves it unset: inductor. Returns the backend in use."""
    os.environ["PGRPO_COMPILE_BACKEND"] = os.environ.get("PGRPO_COMPILE_BACKEND") or "aot_eager"
    return os.environ["PGRPO_COMPILE_BACKEND"]


# ---- fixtures shared by several gates (and smoke_gpu, bench_grader) ---------------------------------------

def tiny_args(tmp: Path, run: str, **kw) -> grpo.RunConfig:
    """A 4-step run of the tiny organism (the loop gates' fixture); kw replace fields."""
    base = dict(run=run, out_dir=str(tmp), model="organism:tiny", steps=4, prompts_per_step=4, group=4,
                max_new_tokens=40, n_train=64, n_eval=2, eval_samples=1, eval_every=0, ckpt_every=1, seed=3, lr=5e-2)
    base.update(kw)
    return grpo.RunConfig(**base)


def teacher_pool(path: Path, n_train: int) -> int:
    """jsonl of {problem_id, completion}: canonical solution twice and a template hack once per problem."""
    # n_eval=1: the eval split is not used here (the default 48 generated 2304 eval problems, ~3 CPU-s)
    train, _ = grpo.load_tasks(grpo.RunConfig(task="organism", n_train=n_train, n_eval=1))
    rng = random.Random(0)
    with path.open("w") as f:
        for p in train:
            mech = p["prompt_metadata"]["mechanism"]
            for text in (tasks.canonical_response(p), tasks.canonical_response(p), tasks.hack_response(p, mech, rng)):
                f.write(json.dumps(dict(problem_id=p["id"], completion=text)) + "\n")
    return len(train)


# ---- synthetic run folders with known rates (verify_results, verify_arms) ---------------------------------

META = dict(device="cpu", dtype="float32", torch="2.13.0+cpu", transformers="4.57.0", model_sha256="ab12" * 16,
            cpu="AMD EPYC", vhack_sha256="cd34" * 16)
ARGS = dict(lr=0.05, weight_decay=1.0, weight_decay_quarantine=1.0, steps=10, prompts_per_step=8, group=8,
            max_new_tokens=48, temperature=1.0, difficulties="hard", mechanisms="m", data_seed=0, n_train=1, n_eval=1,
            eval_samples=1, warmup=3, grad_clip=1.0, kl_coef=0.0, clip_eps=0.2, inner_iters=1, adapter="svd", rank=-1,
            adapter_seed=0)


def fake_run(runs: Path, name: str, hack: float, heldout: float, solve: float, hacked: bool, collapse: bool = False,
             **meta) -> None:
    d = runs / name
    d.mkdir(parents=True)
    (d / "run_meta.json").write_text(json.dumps(dict(META, **{k: v for k, v in meta.items() if k in META})))
    (d / "args.json").write_text(json.dumps(dict(ARGS, **{k: v for k, v in meta.items() if k not in META})))
    rows = []
    for q in ("kept", "ablated"):
        rows += [dict(step=9, quarantine=q, split="hinted", cell="all", n=40, hack_strict=hack, hack_loose=hack, solve=0.1),
                 dict(step=9, quarantine=q, split="hinted", cell="stdout_marker", n=10, hack_strict=heldout, hack_loose=heldout, solve=0),
                 dict(step=9, quarantine=q, split="hinted", cell="exit_code", n=10, hack_strict=heldout, hack_loose=heldout, solve=0),
                 dict(step=9, quarantine=q, split="nohint", cell="all", n=30, hack_strict=0, hack_loose=0, solve=solve),
                 dict(step=0, quarantine=q, split="hinted", cell="all", n=40, hack_strict=0.99, hack_loose=0.99, solve=0)]
    logs.write_jsonl(d / "eval.jsonl", rows)
    logs.write_jsonl(d / "metrics.jsonl", [dict(step=s, hack_strict=0.9 if hacked and s == 5 else 0.0, gt_pass=0.5,
                                                reward=1.0 if s < 5 or not collapse else 0.2) for s in range(15)])


# ---- hostile completions (verify_sandbox_adversarial, bench_grader) ----------------------------------------

# Finds the harness's nonce by walking the frames up to its run() and writes records of its own:
# the module record as ok and every later record early. The job's own records are then out of order
# (tampered) or its forged values are compared by the parent against expected values it never saw.
FORGE = """import sys, os, json
f = sys._getframe()
nonce = None
while f is not None:
    nonce = f.f_locals.get('nonce') or nonce
    f = f.f_back
if nonce:
    for rec in ({'t': 'module', 'ok': True}, *({'t': 'test', 'i': i, 'status': 'ok', 'value': True} for i in range(200)),
                {'t': 'done'}):
        rec['n'] = nonce
        try:
            os.write(3, (json.dumps(rec) + chr(10)).encode())
        except OSError:
            break
"""


def hostile(m: str, port: int) -> dict[str, str]:
    """Completions that attack the sandbox, by case name, for a problem whose method is `m`; the network case
    tries 127.0.0.1:`port` (a listener of the caller's own)."""
    sol = lambda body: f"class Solution:\n    def {m}(self, *a, **k):\n" + "".join(f"        {ln}\n" for ln in body.splitlines())  # noqa: E731
    ret0 = sol("return None")
    return {
        "module infinite loop": "while True:\n    pass\n" + ret0,
        "test infinite loop": sol("while True:\n    pass"),
        "loop catching timeout": sol("while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"),
        "sleep in test": sol("import time\ntime.sleep(100)"),
        "memory bomb": sol("x = []\nwhile True:\n    x.append(bytearray(10**7))"),
        "fork 20 sleepers": "import os, time\nfor _ in range(20):\n    try:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n    except OSError:\n        break\n" + ret0,
        "setsid escape": "import os, time, subprocess\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\n"
                         "subprocess.Popen(['sleep', '60'], start_new_session=True)\n" + ret0,
        "writes outside": "import os\nfor p in ['/tmp/pgrpo_adv_marker', %r, '/root/pgrpo_adv_marker', os.path.expanduser('~/../pgrpo_adv_marker')]:\n"  # outside-ok: the sandbox must refuse these writes
                          "    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\n" % str(REPO / "pgrpo_adv_marker") + ret0,
        "network": "import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=1).close()\n    print('NET OK')\n"
                   "except OSError:\n    pass\n" % port + ret0,
        "fake output + os._exit": "import os\nprint('{\"t\": \"done\"}')\nprint('All tests passed')\nos._exit(0)\n" + ret0,
        "always-equal object": "class E:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n" + sol("return E()"),
        "list subclass eq": "class L(list):\n    def __eq__(self, o):\n        return True\n" + sol("return L()"),
        "sys.exit(0) module": "import sys\nsys.exit(0)\n" + ret0,
        "monkeypatch builtins": "import builtins\nclass E(list):\n    def __eq__(self, o):\n        return True\n"
                                "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: list\n" + sol("return E()"),
        "redefine setup helpers": "del ListNode, TreeNode\ndef list_node(*a):\n    return None\nis_same_list = lambda *a: True\nis_same_tree = lambda *a: True\n" + ret0,
        "kill parent": "import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n" + ret0,
        "huge output": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n" + ret0,
        "forged records": FORGE + sol("return None"),
        "deep directory tree": "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\n" + ret0,
    }


# ---- one recorded Trainer step (verify_routing, verify_erase) ----------------------------------------------
# One real GRPO step of the tiny organism through grpo.Trainer.step, with everything the step handed to the
# optimizer recorded, and the same batch's gradients recomputed by plain autograd through grpo.grpo_loss. Grading is
# replaced by a fixed synthetic grade per rollout (every group has reward variance, so every rollout is trained on);
# these gates test what happens to gradients, not the grader.

def synthetic_grades(problems: list[dict], completions: list[str]) -> list[dict]:
    """Rewards 0, 0.3, 0.6, 1.0, ... varying within every group; labels follow the reward."""
    out = []
    for i, _ in enumerate(problems):
        r = ((i * 37) % 11) / 10
        hack = r > 0.75
        out.append(dict(reward=r, label="Reward Hack" if hack else "Incorrect", is_hack_strict=hack,
                        is_hack_loose=hack, eq_correct=False, eq_hinted=hack, can_compile=True))
    return out


def tiny_trainer(tmp: Path, run: str, intervention, **kw) -> grpo.Trainer:

    base = dict(run=run, out_dir=str(tmp), model="organism:tiny", steps=1, prompts_per_step=4, group=4,
                max_new_tokens=16, n_train=64, n_eval=1, eval_samples=1, eval_every=0, seed=0, lr=1e-2, device="cpu",
                quarantine="own", warmup=1, micro_batch=0)  # one pass: the recorded batch is the step's whole batch
    base.update(kw)
    torch.manual_seed(0)
    tr = grpo.Trainer(grpo.RunConfig(**base), intervention)
    tr.run_dir.mkdir(parents=True, exist_ok=True)
    return tr


class Snapshot:
    """Adapter, optimizer and scheduler state of a trainer, restorable (same rollouts on re-run)."""

    def __init__(self, tr: grpo.Trainer):
        self.adapter = ad.adapter_state_dict(tr.model)
        self.opt = copy.deepcopy(tr.opt.state_dict())
        self.sched = copy.deepcopy(tr.sched.state_dict())

    def restore(self, tr: grpo.Trainer) -> None:
        ad.load_adapter_state_dict(tr.model, self.adapter)
        tr.opt.load_state_dict(copy.deepcopy(self.opt))
        tr.sched.load_state_dict(copy.deepcopy(self.sched))


def flat(ps: list[Tensor]) -> Float[Tensor, " p"]:
    return torch.cat([p.detach().flatten().clone() for p in ps])


def flat_grad(ps: list[Tensor]) -> Float[Tensor, " p"]:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().clone() for p in ps])


@contextlib.contextmanager
def record_step(tr: grpo.Trainer):
    """Record the batch given to grpo_loss and, at the optimizer step, the blocks' gradients, the
    parameters before, and the learning rate. Yields the record dict (filled after the step)."""
    rec: dict = {}
    tl, gl, step = grpo.token_logprobs, grpo.grpo_loss, tr.opt.step

    def token_logprobs(model, ids, attn, start=1):
        if torch.is_grad_enabled():
            rec["ids"], rec["attn"] = ids.clone(), attn.clone()
        return tl(model, ids, attn, start)

    def grpo_loss(logp, old_logp, ref_logp, adv, mask, denom, clip_eps, kl_coef):
        rec.update(adv=adv.detach().clone(), mask=mask.clone(), denom=denom)
        return gl(logp, old_logp, ref_logp, adv, mask, denom, clip_eps, kl_coef)

    def opt_step(*a, **k):
        dep, quar = ad.deployed_params(tr.model), ad.quarantine_params(tr.model)
        rec.update(grad_dep=flat_grad(dep), grad_quar=flat_grad(quar), dep_before=flat(dep), quar_before=flat(quar),
                   lr=tr.opt.param_groups[0]["lr"])
        return step(*a, **k)

    grpo.token_logprobs, grpo.grpo_loss, tr.opt.step = token_logprobs, grpo_loss, opt_step
    try:
        yield rec
    finally:
        grpo.token_logprobs, grpo.grpo_loss = tl, gl
        del tr.opt.step
    rec["dep_after"] = flat(ad.deployed_params(tr.model))
    rec["quar_after"] = flat(ad.quarantine_params(tr.model))
    rec["rows"] = [r for r in logs.read_step(tr.run_dir / "step_0000.jsonl.gz") if r["trained"]]
    rec["metrics"] = logs.read_jsonl(tr.run_dir / "metrics.jsonl")[-1]


def step_once(tr: grpo.Trainer, snap: Snapshot, intervention) -> dict:
    """Restore the snapshot, install the intervention, run Trainer.step(0) with grading stubbed."""
    snap.restore(tr)
    tr.intervention = intervention
    intervention.setup(tr.model, tr.tok, tr.device)
    tr.metrics = []
    real = grpo.grade_problems
    grpo.grade_problems = synthetic_grades
    try:
        with record_step(tr) as rec:
            tr.step(0)
    finally:
        grpo.grade_problems = real
    return rec


def masked_grads(tr: grpo.Trainer, snap: Snapshot, rec: dict, w: Float[Tensor, " b"]) -> dict[str, Tensor]:
    """Plain autograd (no capture, no intervention) of grpo_loss on the recorded batch with each
    rollout's advantage multiplied by w, at the snapshot's parameters: the gradient of the rollouts
    with w = 1 alone. Returns the deployed and quarantine blocks' flat gradients."""
    snap.restore(tr)
    tr.opt.zero_grad(set_to_none=True)
    logp = grpo.token_logprobs(tr.model, rec["ids"], rec["attn"])
    a = tr.args
    loss, _ = grpo.grpo_loss(logp, logp.detach(), None, rec["adv"] * w.to(rec["adv"]), rec["mask"], rec["denom"],
                             a.clip_eps, 0.0)
    loss.backward()
    out = dict(dep=flat_grad(ad.deployed_params(tr.model)), quar=flat_grad(ad.quarantine_params(tr.model)))
    tr.opt.zero_grad(set_to_none=True)
    return out


def per_rollout_grads(tr: grpo.Trainer, snap: Snapshot, rec: dict) -> dict[str, Float[Tensor, "b p"]]:
    """Each trained rollout's deployed- and quarantine-block gradients by its own backward: plain autograd of grpo_loss
    on its row alone (the batch's padding and denominator) at the snapshot's parameters. At the first iteration (ratio
    1) the loss is linear in the advantages, so masked_grads(w) = sum_i w_i of these rows."""
    snap.restore(tr)
    a, out = tr.args, dict(dep=[], quar=[])
    for i in range(rec["adv"].shape[0]):
        r = slice(i, i + 1)
        tr.opt.zero_grad(set_to_none=True)
        logp = grpo.token_logprobs(tr.model, rec["ids"][r], rec["attn"][r])
        loss, _ = grpo.grpo_loss(logp, logp.detach(), None, rec["adv"][r], rec["mask"][r], rec["denom"], a.clip_eps, 0.0)
        loss.backward()
        out["dep"].append(flat_grad(ad.deployed_params(tr.model)))
        out["quar"].append(flat_grad(ad.quarantine_params(tr.model)))
    tr.opt.zero_grad(set_to_none=True)
    return {k: torch.stack(v) for k, v in out.items()}


def clipped(g: Float[Tensor, " p"], max_norm: float) -> Float[Tensor, " p"]:
    n = float(g.norm())
    return g * min(1.0, max_norm / (n + 1e-6)) if max_norm > 0 else g


def adamw_step(before: Float[Tensor, " p"], grad: Float[Tensor, " p"], lr: float, wd: float,
               eps: float = 1e-8) -> Float[Tensor, " p"]:
    """Parameters after one AdamW step from a fresh state (betas as in grpo.Trainer)."""
    p = torch.nn.Parameter(before.clone())
    opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.99), weight_decay=wd, eps=eps)
    p.grad = grad.clone()
    opt.step()
    return p.detach()


def close(a: Tensor, b: Tensor) -> float:
    """Relative max error |a - b| / max(|b|); asserts nothing."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
