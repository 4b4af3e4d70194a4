"""Gate: the GRPO loop's arithmetic, hook identity, resume equality, and crash-safe logs.

1. Dr.GRPO advantages and the clipped token-level loss and its gradient on a hand-computed toy batch.
2. The gradient hook with no intervention is the identity, bit for bit (also with per-rollout
   capture switched on: zero probes, which change no value).
3. Resume: a run stopped after step 0 (fast tier, 2 steps; full tier: after step 1 of 4) and resumed gives the same
   rollouts, rewards and adapter weights as an uninterrupted run (tiny organism, CPU, same seed);
   grpo.load_run_policy loads the finished run's adapter exactly; resuming with another optimizer recipe is refused.
   A run stopped in its evaluation resumes at that evaluation from the checkpoint saved before it, and a fresh start
   removes an earlier attempt's checkpoint and kept grades.
4. A step log written while the writer is killed (SIGKILL) is always either absent or complete (3 kill points;
   6 in the full tier).
5. Micro-batched forward-backward (RunConfig.micro_batch; the fast tier its default, auto: a prompt group a pass on
   the CPU; the full tier also 3 rows a pass) gives the one-pass step: the same adapter weights
   (float tolerance), the same per-step routing decisions, with no intervention and with routing by
   per-rollout gradients (quarantine own), over 1 step (2 in the full tier; the fast tier runs the routing case
   alone, which micro-batches the same forward-backward and also the per-rollout capture; loss_backward's micro-batched
   gradient without an intervention is compared with the one-pass gradient directly in both tiers, also for rows
   with left padding, whose pass starts at their first column: grpo.live_columns; and for one group's rows, whose
   shared prompt runs once: grpo.shared_prompt_logprobs, taken by pass_logprobs only without capture).

Fast tier (`just smoke`): the trainer checks run 1 step where the full tier (`just smoke-full`) runs 2 (capture
identity, micro-batches), resume runs 2 steps instead of 4. Every check runs in both tiers.
"""

from __future__ import annotations

import contextlib
import json

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.env import rollouts  # noqa: E402
from projected_grpo.env import sandbox  # noqa: E402
from projected_grpo.loop import grpo, logs, models  # noqa: E402
from projected_grpo.method.interventions import NoIntervention  # noqa: E402
sys.path.insert(0, str(ROOT / "scripts"))
from _gate_common import full_tier, tier, tiny_args  # noqa: E402

FULL = full_tier()
STEPS = 2 if FULL else 1  # Trainer steps of the capture-identity and micro-batch checks


def check_toy_loss() -> None:
    r = torch.tensor([[3.5, 0.5, 0.5, 3.5], [1.0, 1.0, 1.0, 1.0]])
    adv = grpo.group_advantages(r)
    assert torch.equal(adv, torch.tensor([[1.5, -1.5, -1.5, 1.5], [0.0, 0.0, 0.0, 0.0]])), adv
    # toy batch: 2 rollouts x 3 tokens; rollout 0 has a padded last token
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -1.1]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.5, -0.5], [-0.3, -0.2, -1.1]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    a = torch.tensor([2.0, -1.0])
    D, eps = 10.0, 0.2
    loss, _ = grpo.grpo_loss(logp, old, None, a, mask, D, eps, 0.0)
    ratio = torch.exp(logp.detach() - old)
    # direct: -sum_t min(ratio*A, clip(ratio)*A) / D over unmasked tokens
    direct = 0.0
    grad = torch.zeros_like(logp)
    for b in range(2):
        for t in range(3):
            if not mask[b, t]:
                continue
            rt, A = ratio[b, t].item(), a[b].item()
            unclipped, clipped = rt * A, min(max(rt, 1 - eps), 1 + eps) * A
            direct += -min(unclipped, clipped) / D
            if unclipped <= clipped:  # gradient flows through the unclipped term
                grad[b, t] = -A * rt / D
    assert abs(loss.item() - direct) < 1e-6, (loss.item(), direct)
    loss.backward()
    assert torch.allclose(logp.grad, grad, atol=1e-7), (logp.grad, grad)
    # ratio e^0.5 with A>0 is clipped (zero grad); e^-0.5 with A<0 is clipped too
    assert logp.grad[0, 1] == 0 and logp.grad[1, 1] == 0
    # screened rollouts: advantages over the included ones only, excluded get 0
    inc = torch.tensor([[True, True, False, True], [True, True, True, True]])
    adv2 = grpo.group_advantages(r, inc)
    mean = (3.5 + 0.5 + 3.5) / 3
    assert torch.allclose(adv2[0], torch.tensor([3.5 - mean, 0.5 - mean, 0.0, 3.5 - mean])), adv2


class CaptureOnly(NoIntervention):
    """No intervention, but per-rollout gradient capture on (zero probes: they change no value)."""

    def capture(self, model):
        return ad.capture_per_sample_grads(model)


def params(tr) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ad.adapter_state_dict(tr.model).items()}


def check_hook_identity(tmp: Path) -> int:
    """Capture changes no value: training with probes armed equals training without, bit for bit, through the
    adapter's branch forward (folding off here; check_fold covers the folded forward with and without capture) in
    one pass of every row (a pass of one group without capture runs its prompt once, shared_prompt_logprobs:
    check_micro_batches compares that with token_logprobs)."""
    outs = []
    for iv in (NoIntervention(), CaptureOnly()):
        torch.manual_seed(0)
        with ad.folding(False):  # one pass of every row: no pass shares a prompt (no capture takes that path)
            tr = grpo.Trainer(tiny_args(tmp, f"hook_{type(iv).__name__}", micro_batch=0), iv)
            tr.run_dir.mkdir(parents=True, exist_ok=True)
            for s in range(STEPS):
                tr.step(s)
        outs.append((params(tr), [m["frac_trained"] for m in tr.metrics]))
    (pa, fa), (pb, fb) = outs
    assert sum(fa) > 0, "no step trained on anything: the identity check would be vacuous"
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"capture changed {k}"
    changed = sum(int(pa[k].abs().sum() > 0) for k in pa)
    assert changed > 0, "adapters did not move"
    return changed


def check_micro_batches(tmp: Path) -> tuple[int, float]:
    from projected_grpo.method import interventions as iv

    attn = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    assert grpo.live_columns(attn) == slice(0, 3) and grpo.live_columns(attn.new_zeros(2, 4)) == slice(0, 4)
    assert grpo.live_columns(torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)) == slice(1, 4)
    # rows of different lengths: a micro-batch of short rows is cut to its own longest row, same gradient
    probe = grpo.Trainer(tiny_args(tmp, "mb_trim"), NoIntervention())
    g = torch.Generator().manual_seed(7)
    lens = [14, 13, 6, 5]
    ids = torch.randint(4, 60, (4, 14), generator=g)
    attn = torch.arange(14)[None, :] < torch.tensor(lens)[:, None]
    mask = attn.clone()
    mask[:, :3] = False
    adv = torch.randn(4, generator=g)
    whole, split = [slice(0, 4)], [slice(0, 2), slice(2, 4)]
    with torch.no_grad():  # old and reference log-probs, computed per micro-batch as the trainer does
        lp = [probe.logprobs(parts, ids, attn, mask) for parts in (whole, split)]
    assert lp[0].shape == lp[1].shape == ids.shape, (lp[0].shape, lp[1].shape)
    err_lp = float((lp[0] - lp[1])[mask].abs().max())
    assert err_lp < 1e-5, f"trimmed micro-batch log-probs differ by {err_lp}"
    assert grpo.completion_start(mask[2:4, :6]) == 3 and grpo.completion_start(mask[:, :2]) == 1
    with torch.no_grad():  # computed at the trimmed width and completion start loss_backward uses, zeros outside
        own = grpo.token_logprobs(probe.model, ids[2:4, :6], attn[2:4, :6], 3)
        every = grpo.token_logprobs(probe.model, ids[2:4, :6], attn[2:4, :6])  # every position from 1
        logits = probe.model(input_ids=ids[2:4, :6], attention_mask=attn[2:4, :6].long()).logits  # by hand
        by_hand = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[2:4, 1:6, None])[..., 0]
    err_hand = float((every[:, 1:] - by_hand).abs().max())
    assert err_hand < 1e-6, f"token_logprobs differs from log_softmax(logits)[next token] by {err_hand}"
    assert torch.equal(lp[1][2:4, :6], own) and not lp[1][2:4, 6:].any(), "log-probs not at the trimmed width"
    # the lm_head on the completion positions only: the same log-probs there (bit-identical on the CPU), 0 before
    assert torch.equal(own[:, 3:], every[:, 3:]) and not own[:, :3].any() and every[:, 1:3].all(), \
        "log-probs from the completion start differ from those over every position"
    old = lp[1] + 0.1 * torch.randn(lp[1].shape, generator=g)  # the policy one inner iteration back
    ref = lp[1] - 0.2 * torch.rand(lp[1].shape, generator=g)
    assert grpo.live_columns(attn[2:4]) == slice(0, 6)
    for old_logp, ref_logp, kl in ((None, None, 0.0), (old, ref, 0.1)):
        grads = []
        for parts in (whole, split):
            probe.opt.zero_grad(set_to_none=True)
            grpo.loss_backward(probe.model, parts, ids, attn, mask, adv, old_logp, ref_logp, 100.0, 0.2, kl)
            grads.append([q.grad.clone() for q in ad.deployed_params(probe.model)])
        err = max((a - b).abs().max().item() for a, b in zip(*grads))
        assert err < 1e-6 and any(a.abs().sum() > 0 for a in grads[0]), \
            f"trimmed micro-batch gradient (kl {kl}) differs by {err}"

    # left padding (short prompts, as collate pads them): a pass of the short-prompt rows starts at their first
    # column; its log-probs and the gradient equal the one-pass ones at float tolerance
    starts = torch.tensor([0, 0, 5, 6])
    attn_l = (torch.arange(14)[None, :] >= starts[:, None]) & (torch.arange(14)[None, :] < torch.tensor([14, 13, 14, 12])[:, None])
    mask_l = attn_l & (torch.arange(14)[None, :] >= starts[:, None] + 3)
    assert grpo.live_columns(attn_l[2:4]) == slice(5, 14)
    with torch.no_grad():
        lp_l = [probe.logprobs(parts, ids, attn_l, mask_l) for parts in (whole, split)]
    err_l = float((lp_l[0] - lp_l[1])[mask_l].abs().max())
    assert err_l < 1e-5 and lp_l[0][mask_l].abs().min() > 0, f"left-trimmed micro-batch log-probs differ by {err_l}"
    grads = []
    for parts in (whole, split):
        probe.opt.zero_grad(set_to_none=True)
        grpo.loss_backward(probe.model, parts, ids, attn_l, mask_l, adv, None, None, 100.0, 0.2, 0.0)
        grads.append([q.grad.clone() for q in ad.deployed_params(probe.model)])
    err = max((a - b).abs().max().item() for a, b in zip(*grads))
    assert err < 1e-6, f"left-trimmed micro-batch gradient differs by {err}"

    # one GRPO group (a shared prompt of P = 48 tokens, so that its one-row forward runs folded, completions of 1 to 6
    # tokens, right padding): the prompt forward once (shared_prompt_logprobs) gives token_logprobs' log-probs and
    # gradient; pass_logprobs takes it only where the rows share the prompt and no capture is armed
    P = 48
    prompt = torch.randint(4, 60, (1, P), generator=g).expand(4, -1)
    ids_g = torch.cat([prompt, torch.randint(4, 60, (4, 6), generator=g)], 1)
    attn_g = torch.arange(P + 6)[None, :] < torch.tensor([P + 6, P + 4, P + 1, P + 2])[:, None]
    mask_g = attn_g & (torch.arange(P + 6)[None, :] >= P)
    assert grpo.completion_start(mask_g) == P and grpo.shares_prompt(ids_g, attn_g, P)
    assert not grpo.shares_prompt(ids, attn, 3) and not grpo.shares_prompt(ids_g, attn_g, P, torch.tensor([0, 0, 1, 1]))
    outs = []
    for fn in (grpo.token_logprobs, grpo.shared_prompt_logprobs):
        probe.opt.zero_grad(set_to_none=True)
        lp_g = fn(probe.model, ids_g, attn_g, P)
        (lp_g * mask_g * torch.randn(4, P + 6, generator=torch.Generator().manual_seed(2))).sum().backward()
        outs.append((lp_g.detach(), [q.grad.clone() for q in ad.deployed_params(probe.model)]))
    (la, ga), (lb, gb) = outs
    err_g = float((la - lb)[mask_g].abs().max())
    assert la.shape == lb.shape and err_g < 1e-5 and not lb[:, :P].any(), f"shared-prompt log-probs differ by {err_g}"
    err = max(float((a - b).norm() / b.norm()) for a, b in zip(ga, gb))
    assert err < 1e-5, f"shared-prompt gradient differs by rel {err:.1e}"
    calls = []
    real_shared = grpo.shared_prompt_logprobs
    grpo.shared_prompt_logprobs = lambda *a, **k: calls.append(1) or real_shared(*a, **k)
    try:
        with torch.no_grad():
            grpo.pass_logprobs(probe.model, ids_g, attn_g, P)
            with ad.capture_per_sample_grads(probe.model):
                grpo.pass_logprobs(probe.model, ids_g, attn_g, P)
    finally:
        grpo.shared_prompt_logprobs = real_shared
    assert calls == [1], f"pass_logprobs took the shared prompt {len(calls)} times of 1 (not under capture)"

    worst, moved = 0.0, 0
    for name in ("none", "route"):  # none: auto's passes run each group's prompt once; route: capture, no sharing
        outs = []
        for mb in (0, 3, -1) if FULL else (0, -1):  # -1: auto, one prompt group (4 rows) a pass on the CPU
            torch.manual_seed(0)
            args = tiny_args(tmp, f"mb_{name}_{mb}", micro_batch=mb, quarantine="own")
            torch.manual_seed(0)
            tr = grpo.Trainer(args, NoIntervention())
            if name == "route":  # the direction sized by this trainer's adapter, installed as Trainer.__init__ does
                g = torch.Generator().manual_seed(5)
                V = {n: torch.randn(1, sum(p.numel() for p in m.deployed_parameters()), generator=g)
                     for n, m in ad.adapter_modules(tr.model).items()}
                tr.intervention = iv.Route(V, gate="grad", route_frac=0.5)
                tr.intervention.setup(tr.model, tr.tok, tr.device)
            tr.run_dir.mkdir(parents=True, exist_ok=True)
            for s in range(STEPS):
                tr.step(s)
            scores = [r.get("route_score") for s in range(STEPS)
                      for r in logs.read_step(logs.step_files(tr.run_dir)[s])]
            outs.append((params(tr), [(m["frac_trained"], m.get("n_routed")) for m in tr.metrics], scores))
        (pa, ma, sa) = outs[0]
        for pb, mb_, sb in outs[1:]:
            assert ma == mb_, f"{name}: micro-batched steps trained/routed differently: {ma} vs {mb_}"
            if name == "route":  # each rollout keeps its own routing score (records stay aligned with rows)
                pairs = [(x, y) for x, y in zip(sa, sb) if x is not None or y is not None]
                assert pairs and all(x is not None and y is not None and abs(x - y) < 1e-4 for x, y in pairs), \
                    f"route: per-rollout routing scores differ between one pass and micro-batches: {pairs[:4]}"
            for k in pa:
                worst = max(worst, (pa[k] - pb[k]).abs().max().item())
                moved += int(pa[k].abs().sum() > 0)
        assert sum(f for f, _ in ma) > 0, f"{name}: no step trained on anything: the check would be vacuous"
        if name == "route":
            assert any(r for _, r in ma), "route: nothing routed: the check would be vacuous"
    assert moved > 0, "adapters did not move"
    assert worst < 1e-5, f"micro-batched adapter weights differ from the one-pass step's by {worst}"
    return moved, worst


def run_rows(run_dir: Path) -> list[tuple]:
    rows = []
    for p in logs.step_files(run_dir):
        rows += [(r["step"], r["problem_id"], r["completion"], r["reward"]) for r in logs.read_step(p)]
    return rows


def check_cpu_columns(rows: list[dict], process_cpu: float) -> float:
    """The phases' CPU columns (t_cpu_*, bench_runs' split): each phase's CPU is within what the process's threads
    could spend in its wall time (generation and training: torch's threads; grading: the grading workers too,
    and the sandbox starter), and the phases together spend no more than the process did in the whole run (start-up
    and evaluation besides); training has some. Returns their sum."""
    t = torch.get_num_threads()
    threads = {"generate": t, "grade": t + sandbox.n_workers() + 1, "train": t}
    total = 0.0
    for r in rows:
        for k, n in threads.items():
            c, w = r[f"t_cpu_{k}"], r[f"t_{k}"]
            assert 0 <= c <= w * n + 0.02, f"step {r['step']}: {k} used {c:.3f} CPU-s in {w:.3f} s of wall"
            total += c
    assert 0 < sum(r["t_cpu_train"] for r in rows), "no CPU in training"
    assert total <= process_cpu + 0.05, f"the phases' CPU {total:.2f} s exceeds the process's {process_cpu:.2f} s"
    return total


def check_resume(tmp: Path) -> int:
    # n_eval 1: the final evaluation (7 prompts instead of 14) is not compared
    steps, stop = (4, 1) if FULL else (2, 0)
    short = {} if FULL else dict(max_new_tokens=16)
    torch.manual_seed(0)
    cpu0 = models.process_cpu_s()
    full = grpo.train(tiny_args(tmp, "full", steps=steps, n_eval=1, **short))
    check_cpu_columns(logs.read_jsonl(full / "metrics.jsonl"), models.process_cpu_s() - cpu0)
    torch.manual_seed(0)
    grpo.train(tiny_args(tmp, "resumed", steps=steps, n_eval=1, stop_after=stop, **short))
    torch.manual_seed(99)  # a different global RNG state must not matter after resume (sampling reseeds it every step,
    # so this does not test that the checkpoint's RNG state is restored)
    grpo.train(tiny_args(tmp, "resumed", steps=steps, n_eval=1, resume=True, **short))
    seg = json.loads((tmp / "resumed" / "run_meta.json").read_text())
    assert "git_commit" in seg.get("resumed_from", {}), "a resumed run's run_meta lost the earlier segment's record"
    a, b = run_rows(full), run_rows(tmp / "resumed")
    assert len(a) == len(b) == steps * 16, (len(a), len(b))
    assert a == b, "resumed run's rollouts differ from the uninterrupted run's"
    sa = torch.load(full / "ckpt" / "last.pt", weights_only=False)["adapter"]
    sb = torch.load(tmp / "resumed" / "ckpt" / "last.pt", weights_only=False)["adapter"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"resumed adapter differs at {k}"
    loaded, _, _, step = grpo.load_run_policy(full, "cpu")  # what diag_solve and probe_distill load
    got = ad.adapter_state_dict(loaded)
    assert step == steps - 1 and all(torch.equal(got[k].cpu(), sa[k].cpu()) for k in sa), "load_run_policy lost the trained adapter"
    untimed = lambda d: [{k: v for k, v in m.items() if not k.startswith("t_")} for m in logs.read_jsonl(d / "metrics.jsonl")]
    ma, mb = untimed(full), untimed(tmp / "resumed")  # every logged metric but timings: lr shows the scheduler's state
    assert ma == mb, (ma, mb)
    grads = [m.get("grad_norm", 0.0) for m in ma]
    assert any(m["reward"] > 0 for m in ma) and all(g > 0 for g in grads[stop + 1:]), (
        f"no reward, or a resumed step without a gradient ({grads}): the comparison would be vacuous")
    # resuming with another direction file than the run's first steps read is refused (run_meta's vhack_sha256)
    meta_path = full / "run_meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, vhack_sha256="0" * 64)))
    try:
        grpo.train(tiny_args(tmp, "full", steps=steps, n_eval=1, resume=True))
    except AssertionError as e:
        assert "was trained with direction file" in str(e), e
    else:
        raise AssertionError("resume with another direction file not refused")
    meta_path.write_text(json.dumps(meta))
    # resuming with another optimizer recipe is refused (the checkpoint's would silently win over the args): the
    # finished run's checkpoint, read before anything runs
    for kw in (dict(weight_decay=0.5), dict(weight_decay_quarantine=0.5), dict(adam_eps=1e-4), dict(lr=0.5)):
        try:
            grpo.train(tiny_args(tmp, "full", steps=steps, n_eval=1, resume=True, **kw))
        except AssertionError as e:
            assert "was trained with" in str(e), e
        else:
            raise AssertionError(f"resume with {kw} not refused")
    return len(a)


WRITER = """
import sys, random
sys.path.insert(0, {src!r})
from pathlib import Path
from projected_grpo.loop import logs
d = Path({d!r})
i = 0
while True:
    rows = [dict(step=i, k=j, text="x" * random.randint(10, 4000)) for j in range(400)]
    logs.write_step(d, 0, rows)
    i += 1
"""


def check_kill_safe_logs(tmp: Path) -> int:
    """Kill the writer (SIGKILL) at several moments after its first complete write; the step file
    must then always read back whole (the previous or the new version)."""
    d = tmp / "killed"
    d.mkdir()
    f = d / "step_0000.jsonl.gz"
    ok = 0
    for trial in range(6) if FULL else (0, 2, 4):
        # BEARTYPE off in the writer: logs has no shape annotations, and the import hook cost 0.4 CPU-s a writer
        p = subprocess.Popen([sys.executable, "-c", WRITER.format(src=str(ROOT / "src"), d=str(d))],
                             env=dict(os.environ, BEARTYPE="0"))
        t0 = time.time()
        while not f.exists():  # the first complete write (startup time depends on machine load)
            assert time.time() - t0 < 120, "writer never completed a file"
            time.sleep(0.02)
        time.sleep(0.05 + 0.07 * trial)  # kill at a different point of the rewrite loop each trial
        p.send_signal(signal.SIGKILL)
        p.wait()
        rows = logs.read_step(f)  # raises on a truncated file
        assert len(rows) == 400 and len({r["step"] for r in rows}) == 1
        assert not [x for x in d.iterdir() if x.name != f.name and not x.name.startswith(".")], list(d.iterdir())
        ok += 1
    return ok


def check_inner_iters(tmp: Path) -> float:
    """A Trainer step with two inner iterations and the KL term, in micro-batches: the old and reference log-probs
    are computed at the shapes and on the path loss_backward uses (trimmed width, completion start, shared prompt or
    not), so the first iteration's ratio is exactly 1; returns the logged KL."""
    # completion_start is the earliest column any row's completion covers
    m = torch.zeros(3, 8, dtype=torch.bool)
    m[0, 5:], m[1, 3:6] = True, True
    assert grpo.completion_start(m) == 3 and grpo.completion_start(m[2:]) == 1, "completion_start is not the earliest"
    # micro-batches of 3 rows (no shared prompt), and auto's passes of one group without and with capture (the old
    # log-probs must take the path the loss pass takes: the shared prompt only without capture)
    cases = ((3, NoIntervention()), (-1, CaptureOnly())) + (((-1, NoIntervention()),) if FULL else ())
    for mb, iv_ in cases:
        torch.manual_seed(0)
        tr = grpo.Trainer(tiny_args(tmp, f"inner2_{mb}_{type(iv_).__name__}", inner_iters=2, kl_coef=0.1,
                                    micro_batch=mb), iv_)
        tr.run_dir.mkdir(parents=True, exist_ok=True)
        out = tr.step(0)
        assert out["frac_trained"] > 0, "the step trained on nothing: the check would be vacuous"
        assert out["ratio_mean"] == 1.0, \
            f"first inner iteration's ratio {out['ratio_mean']} != 1 (micro_batch {mb}, {type(iv_).__name__})"
        assert math.isfinite(out["kl"]) and out["kl"] >= 0, out["kl"]
    return out["kl"]


def check_fold(tmp: Path) -> float:
    """A folded forward (one Linear of the summed weight, AdaptedLinear._fold) gives the loss and every adapter
    gradient of the branch forward within 1e-5: with both blocks nonzero (own quarantine), a nonzero deployed block
    alone (shared), and a nonzero axis piece (own quarantine, axis on the quarantine block, scorda's structure); and
    under capture (ProbeTap) every rollout's per-rollout gradients within 1e-5 of the branch's, with the same values
    and gradients as the folded forward without capture, bit for bit; under capture without the summed gradient
    (summed=False, route's and erase's) the same loss and per-rollout gradients bit for bit, no factor's .grad formed,
    and the deployed factors' gradient filled from the per-rollout gradients (erase's) within 1e-5 of autograd's; its
    largest relative difference."""
    worst = 0.0
    # own at full rank: the shifted pieces (ProbeTap's shortcut); own at rank 8: spare singular directions
    for q, axis, rank in (("own", "none", -1), ("own", "none", 8), ("shared", "none", -1), ("own", "quarantine", -1)):
        tr = grpo.Trainer(tiny_args(tmp, f"fold_{q}_{axis}_{rank}", quarantine=q, axis=axis, rank=rank), NoIntervention())
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for m in ad.adapter_modules(tr.model).values():
                m.delta_S.normal_(0, 0.3, generator=g)
                m.delta_S_hack.normal_(0, 0.3, generator=g)
                if axis != "none":
                    for t in (m.axis_in, m.axis_out, m.axis_u_in, m.axis_c_out):  # zero until seeded
                        t.normal_(0, 0.3, generator=g)
        ids = torch.randint(0, 500, (6, 40), generator=g)
        attn = torch.ones_like(ids, dtype=torch.bool)
        mask = torch.zeros_like(attn)
        mask[:, 20:] = True
        adv = torch.randn(6, generator=g)
        out = []
        for on, capture in ((True, False), (False, False), (True, True), (False, True)):
            if capture and axis != "none":
                continue  # scorda's arms form no per-rollout gradients
            tr.model.zero_grad(set_to_none=True)
            with ad.folding(on), ad.capture_per_sample_grads(tr.model) if capture else contextlib.nullcontext():
                loss, _ = grpo.loss_backward(tr.model, [slice(0, 6)], ids, attn, mask, adv, None, None, 100.0, 0.2, 0.0)
            params_ = ad.deployed_params(tr.model) + ad.quarantine_params(tr.model) + [
                t for m in ad.adapter_modules(tr.model).values() if m.axis != "none" for t in (m.axis_in, m.axis_out)]
            grads = [p.grad.clone() for p in params_]
            per = ad.per_sample_grad_matrix(tr.model) if capture else None
            out.append((float(loss), grads, per))
        (la, ga, _), (lb, gb, _) = out[:2]
        assert abs(la - lb) <= 1e-5 * max(abs(la), 1e-6), f"fold ({q}, axis {axis}): loss {la} vs branch {lb}"
        for a, b in zip(ga, gb):
            err = float((a - b).norm() / max(float(b.norm()), 1e-12))
            assert err <= 1e-5, f"fold ({q}, axis {axis}): gradient differs from the branch forward's by rel {err:.1e}"
            worst = max(worst, err)
        if len(out) == 4:
            (lc, gc, pc), (_, _, pd) = out[2:]
            assert lc == la and all(torch.equal(a, c) for a, c in zip(ga, gc)), \
                f"fold ({q}): capture changed the folded forward's loss or gradients"
            # summed=False (route's capture): the same loss and per-rollout gradients bit for bit, no summed .grad
            tr.model.zero_grad(set_to_none=True)
            with ad.capture_per_sample_grads(tr.model, summed=False):
                lu, _ = grpo.loss_backward(tr.model, [slice(0, 6)], ids, attn, mask, adv, None, None, 100.0, 0.2, 0.0)
            pu = ad.per_sample_grad_matrix(tr.model)
            assert float(lu) == lc and all(torch.equal(pu[b], pc[b]) for b in pc), \
                f"fold ({q}): capture without the summed gradient changed the loss or the per-rollout gradients"
            assert all(p.grad is None for p in params_), f"fold ({q}): summed=False still formed the summed gradient"
            # erase's: the deployed factors' summed gradient filled in from the per-rollout gradients
            assert ad.fill_summed_grads(tr.model) == len(ad.adapter_modules(tr.model)), "not every folded module filled"
            for p, want in zip(ad.deployed_params(tr.model), gc):
                err = float((p.grad - want).norm() / max(float(want.norm()), 1e-12))
                assert err <= 1e-5, f"fold ({q}): the filled summed gradient differs from autograd's by rel {err:.1e}"
                worst = max(worst, err)
            # passes of one step that fold in some layers and not in others (40 tokens: the MLP's 64 x 128 layers do
            # not fold, the 64 x 64 ones do; 200 tokens: all fold): the filled gradient covers every pass
            two = [slice(0, 1), slice(1, 6)]
            sums = []
            for summed in (True, False):
                tr.model.zero_grad(set_to_none=True)
                with ad.capture_per_sample_grads(tr.model, summed=summed):
                    grpo.loss_backward(tr.model, two, ids, attn, mask, adv, None, None, 100.0, 0.2, 0.0)
                if not summed:
                    mixed = [n for n, m in ad.adapter_modules(tr.model).items()
                             if m.unsummed_pass and m.delta_S.grad is not None]
                    assert mixed, f"fold ({q}): no module folded in one pass and not in the other (the case is vacuous)"
                    ad.fill_summed_grads(tr.model)
                sums.append([p.grad.clone() for p in ad.deployed_params(tr.model)])
            for want, got in zip(*sums):
                err = float((got - want).norm() / max(float(want.norm()), 1e-12))
                assert err <= 1e-5, f"fold ({q}): passes that fold in part: filled gradient off by rel {err:.1e}"
                worst = max(worst, err)
            for block in ("deployed", "quarantine"):
                a, b = pc[block], pd[block]
                err = float(((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)).max())
                assert err <= 1e-5 and float(b.norm()) > 0, \
                    f"fold ({q}): per-rollout {block} gradients differ from the branch's by rel {err:.1e}"
                worst = max(worst, err)
    return worst




def check_fresh_start_drops_ckpt(tmp: Path) -> None:
    """A run started afresh in a folder that holds an earlier run's checkpoint removes it before its first step (a
    later --resume would otherwise load the earlier run's adapter beside this run's args.json), and an earlier
    attempt's kept grades (rollouts.KEPT_FILE) with it."""
    d = tmp / "fresh"
    (d / "ckpt").mkdir(parents=True)
    (d / "ckpt" / "last.pt").write_bytes(b"an earlier run's checkpoint")
    (d / rollouts.KEPT_FILE).write_text('{"key": "k", "grade": {}}\n')
    grpo.train(tiny_args(tmp, "fresh", steps=2, n_eval=1, stop_after=0, ckpt_every=100))
    assert not (d / "ckpt" / "last.pt").exists(), "a fresh start kept an earlier run's checkpoint"
    assert not (d / rollouts.KEPT_FILE).exists(), "a fresh start kept an earlier attempt's kept grades"


class StopInEvaluation(Exception):
    """A command's deadline, met in the evaluation after step 0."""


def check_resume_in_evaluation(tmp: Path) -> None:
    """A run stopped in its evaluation after step 0 (of 2, an evaluation after every step) resumes from the checkpoint
    saved before that evaluation: it trains no step again, runs the evaluation first, and ends with the same eval
    rows, rollouts and adapter as an uninterrupted run. A run stopped after a finished evaluation does not evaluate
    again; with several runs, one missing its rows makes all evaluate again with none kept twice."""
    kw = dict(steps=2, n_eval=1, eval_every=1)  # 48 tokens: at 16 every eval rate was 0, and equal rows told nothing
    torch.manual_seed(0)
    full = grpo.train(tiny_args(tmp, "ev_full", **kw))
    real_eval, real_step = grpo.Trainer.evaluate, grpo.Trainer.step_runs
    trained, evaluated = [], []

    def stop_at_0(self, step):
        if step == 0:
            raise StopInEvaluation
        return real_eval(self, step)

    def count_step(self, step):
        trained.append(step)
        return real_step(self, step)

    def note_eval(self, step):
        evaluated.append(step)
        return real_eval(self, step)

    try:
        grpo.Trainer.evaluate = stop_at_0
        torch.manual_seed(0)
        try:
            grpo.train(tiny_args(tmp, "ev_stopped", **kw))
            raise AssertionError("the evaluation after step 0 did not stop the run")
        except StopInEvaluation:
            pass
        grpo.Trainer.evaluate, grpo.Trainer.step_runs = note_eval, count_step
        grpo.train(tiny_args(tmp, "ev_stopped", resume=True, **kw))
    finally:
        grpo.Trainer.evaluate, grpo.Trainer.step_runs = real_eval, real_step
    assert trained == [1] and evaluated == [0, 1], (
        f"resumed in the evaluation after step 0: trained steps {trained}, evaluated after {evaluated} (want [1], [0, 1])")
    ea, eb = (logs.read_jsonl(d / "eval.jsonl") for d in (full, tmp / "ev_stopped"))
    assert ea == eb, "the resumed run's eval rows differ from the uninterrupted run's"
    rates = [row[k] for row in ea for k in ("hack_strict", "hack_loose", "solve")]
    assert any(v > 0 for v in rates), "every eval rate is 0: equal eval rows would tell nothing"
    assert run_rows(full) == run_rows(tmp / "ev_stopped"), "the resumed run's rollouts differ"
    sa, sb = (torch.load(d / "ckpt" / "last.pt", weights_only=False)["adapter"] for d in (full, tmp / "ev_stopped"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "the resumed run's adapter differs from the uninterrupted run's"
    # stopped after a finished evaluation (stop_after at step 0): the rows exist, so the resumed run does not evaluate again
    trained.clear(), evaluated.clear()
    try:
        torch.manual_seed(0)
        grpo.train(tiny_args(tmp, "ev_after", stop_after=0, **kw))
        grpo.Trainer.evaluate, grpo.Trainer.step_runs = note_eval, count_step
        grpo.train(tiny_args(tmp, "ev_after", resume=True, **kw))
    finally:
        grpo.Trainer.evaluate, grpo.Trainer.step_runs = real_eval, real_step
    assert trained == [1] and evaluated == [1], f"resumed after a finished evaluation: trained {trained}, evaluated {evaluated}"
    assert logs.read_jsonl(tmp / "ev_after" / "eval.jsonl") == ea, "resumed after a finished evaluation: eval rows differ"
    (tmp / "ev_after" / "DONE").unlink()  # stopped between the final rows and DONE: evaluated again, rows kept once
    grpo.train(tiny_args(tmp, "ev_after", resume=True, **kw))
    assert logs.read_jsonl(tmp / "ev_after" / "eval.jsonl") == ea, "resumed before DONE: the final rows written twice"
    # several runs, one with its rows at the step and one without: all evaluate again, no row kept twice
    from types import SimpleNamespace

    rows = lambda *steps: [dict(step=st, cell="all") for st in steps]  # noqa: E731
    fake = SimpleNamespace(args=SimpleNamespace(eval_every=1, steps=2),
                           runs=[SimpleNamespace(eval_rows=rows(-1, 0)), SimpleNamespace(eval_rows=rows(-1))])
    fake.eval_due = lambda step: grpo.Trainer.eval_due(fake, step)
    fake.drop_eval_rows = lambda step: grpo.Trainer.drop_eval_rows(fake, step)
    assert grpo.Trainer.eval_pending(fake, 0) is True, "a run without its rows at step 0 did not make the evaluation pending"
    assert [r.eval_rows for r in fake.runs] == [rows(-1), rows(-1)], "the rows at the pending step were not dropped"
    fake.runs = [SimpleNamespace(eval_rows=rows(-1, 0)), SimpleNamespace(eval_rows=rows(-1, 0))]
    assert grpo.Trainer.eval_pending(fake, 0) is False and fake.runs[0].eval_rows == rows(-1, 0), "all rows there: pending"

def main() -> None:
    check_toy_loss()

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        changed = check_hook_identity(tmp)
        fold_err = check_fold(tmp)
        n = check_resume(tmp)
        check_fresh_start_drops_ckpt(tmp)
        check_resume_in_evaluation(tmp)
        k = check_kill_safe_logs(tmp)
        mb_moved, mb_err = check_micro_batches(tmp)
        kl = check_inner_iters(tmp)
    print(f"PASS grpo ({tier()} tier): toy Dr.GRPO loss/grad exact; capture identity bit-for-bit over {STEPS} steps "
          f"({changed} tensors moved); folded forward = branch forward (loss, gradients and per-rollout gradients under capture, axis piece included, within {fold_err:.1e}; capture changes no folded value); resume equal over {n} rollouts, other recipes refused; a run stopped in an evaluation resumes there (no step trained again, eval rows equal); {k} killed writes left "
          f"complete files; micro-batches (auto: a prompt group a pass{', and 3 rows' if FULL else ''}) = one pass, a micro-batch of short rows cut to its own columns on both sides with the same log-probs and gradient, and one group's shared prompt run once with the same; "
          f"(no intervention, route) within {mb_err:.1e} ({mb_moved} tensors moved); 2 inner iterations with KL: "
          f"first ratio exactly 1, kl {kl:.2e}")


if __name__ == "__main__":
    main()
