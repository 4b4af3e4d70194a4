"""Benchmark one GRPO step: our loop (grpo.Trainer.step) against TRL's GRPOTrainer, same workload.

Prints numbers only; asserts nothing about speed.

Command (recorded in docs/bench_step.md):

    python scripts/bench_step.py --skip-trl                       # the CPU organism, 8 x 8 rollouts
    PGRPO_THREADS=1 python scripts/bench_step.py --model organism:tiny --prompts 4 --steps 3

Workload, identical for both halves: the organism's training problems (difficulty hard) with their
loophole hint, --prompts prompts per step (default 8) x 8 completions (group size 8), max completion length 48 tokens,
temperature 1.0, reward = our sandboxed grader (projected_grpo.env.rollouts.grade_problems -> reward),
no KL (beta 0), one optimizer step per batch of rollouts, CPU, one torch thread. One warm-up step,
then --steps timed steps.

Differences that remain (by construction of the two implementations):
  - ours trains an SVD adapter (deployed block; full rank by default) on frozen weights; TRL trains
    the full weights by default (--trl-lora R trains a peft LoRA of rank R on all linear layers).
  - learning rates: ours uses RunConfig.lr (2e-2, on the adapter); TRL full weights use --trl-lr (1e-5;
    2e-2 on full weights would wreck the policy and change completion lengths, hence timing).
    With --trl-lora the default is 2e-4.
  - TRL is configured as Dr.GRPO like ours (loss_type dr_grpo, scale_rewards none), gradient
    checkpointing off, dropout off.
  - completion length drives generation cost: mean completion tokens are printed for both.

The grader's process-wide cache (rollouts._CACHE) is cleared before each half.

--repeats N runs the pair N times at seeds seed to seed+N-1, ours first in repeats 1, 3, 5, ... and TRL in 2, 4, ...,
so that neither a drift in the machine's load nor going first favours one half; it prints each repeat's ratio of
rollouts/s and their mean with a 95% t-interval (n = N); the table averages the repeats' step times. One pair varied
from 1.43x to 1.62x between calls on the 2-core machine (journal, 2026-12-06/07 session 15).
TRL is optional (`pip install -e .[trl]`); without it the TRL half is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PGRPO_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["PGRPO_THREADS"]))

from projected_grpo.loop import grpo  # noqa: E402
from projected_grpo.env import rollouts, sandbox  # noqa: E402
from projected_grpo.env.rollouts import grade_problems  # noqa: E402
from projected_grpo.loop.stats import t_interval  # noqa: E402

GROUP, MAX_LEN, TEMP = 8, 48, 1.0
PROMPTS = 8  # set from --prompts in main()


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


# ---- ours -------------------------------------------------------------------------------------------

def bench_ours(model: str, steps: int, out_dir: str, seed: int, decoder: str = "auto") -> dict:
    rollouts._CACHE.clear()
    args = grpo.RunConfig(run="bench_ours", out_dir=out_dir, model=model, task="organism", loophole=True,
                     difficulties="hard", prompts_per_step=PROMPTS, group=GROUP, max_new_tokens=MAX_LEN,
                     temperature=TEMP, kl_coef=0.0, inner_iters=1, device="cpu", eval_every=0, seed=seed,
                     steps=steps + 1, decoder=decoder)
    t = time.time()
    tr = grpo.Trainer(args)
    tr.run_dir.mkdir(parents=True, exist_ok=True)  # Trainer.run() does this; step() alone does not
    t_init = time.time() - t
    opt_times: list[float] = []
    inner = tr.opt.step

    def timed_step(*a, **k):  # exactly the AdamW step (grad clip and hooks excluded)
        t0 = time.time()
        r = inner(*a, **k)
        opt_times.append(time.time() - t0)
        return r

    tr.opt.step = timed_step
    rows = []
    for s in range(steps + 1):
        n_opt = len(opt_times)
        t0 = time.time()
        summ = tr.step(s)
        wall = time.time() - t0
        lens = [r["length"] for r in tr_rows(tr, s)]
        row = dict(wall=wall, t_generate=summ["t_generate"], t_grade=summ["t_grade"], t_train=summ["t_train"],
                   t_opt=sum(opt_times[n_opt:]), frac_trained=summ["frac_trained"], reward=summ["reward"],
                   comp_len=mean(lens))
        print(f"  ours step {s}{' (warm-up)' if s == 0 else ''}: " +
              " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
        rows.append(row)
    timed = rows[1:]
    n_trainable = sum(p.numel() for p in tr.model.parameters() if p.requires_grad)
    return dict(init=t_init, steps=timed, trainable=n_trainable,
                **{k: mean([r[k] for r in timed]) for k in timed[0]})


def average(halves: list[dict]) -> dict:
    """Repeats of one half: numbers averaged (equal timed steps in each, so this is the mean over all of them)."""
    return {k: (mean([h[k] for h in halves]) if isinstance(v, float) else v) for k, v in halves[0].items()}


def tr_rows(tr, step: int) -> list[dict]:
    from projected_grpo.loop import logs

    return logs.read_step(tr.run_dir / f"step_{step:04d}.jsonl.gz")


# ---- TRL --------------------------------------------------------------------------------------------

def bench_trl(model: str, steps: int, out_dir: str, seed: int, lr: float, lora: int) -> dict | None:
    try:
        import trl
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as e:
        print(f"\nTRL not importable ({e}); skipping the TRL half. Install it with: pip install -e '.[trl]'")
        return None
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from projected_grpo.loop.models import resolve

    rollouts._CACHE.clear()
    t = time.time()  # setup includes building the problem pool, as ours does (Trainer.__init__)
    train, _ = grpo.load_tasks(grpo.RunConfig(task="organism", loophole=True, difficulties="hard"))
    ds = Dataset.from_dict({"prompt": [p["prompt"] for p in train], "problem_index": list(range(len(train)))})

    grade_times: list[float] = []
    comp_lens: list[float] = []

    def reward_fn(prompts, completions, problem_index, completion_ids=None, **kw):
        t0 = time.time()
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        grades = grade_problems([train[i] for i in problem_index], texts)
        grade_times.append(time.time() - t0)
        if completion_ids is not None:
            comp_lens.append(mean([len(c) for c in completion_ids]))
        return [float(g["reward"]) for g in grades]

    path = resolve(model)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:  # same pad handling as models.load_policy
        if "<|pad|>" not in tok.get_vocab():
            tok.add_special_tokens({"pad_token": "<|pad|>"})
        tok.pad_token = "<|pad|>"
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if len(tok) > policy.get_input_embeddings().weight.shape[0]:
        policy.resize_token_embeddings(len(tok))
    peft_config = None
    if lora > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(r=lora, lora_alpha=2 * lora, target_modules="all-linear", task_type="CAUSAL_LM")

    cfg = GRPOConfig(
        output_dir=str(Path(out_dir) / "bench_trl"), use_cpu=True, seed=seed,
        num_generations=GROUP, per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1,
        max_completion_length=MAX_LEN, temperature=TEMP, top_k=0, top_p=1.0,
        learning_rate=lr, beta=0.0, loss_type="dr_grpo", scale_rewards="none", num_iterations=1,
        max_steps=steps + 1, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
        gradient_checkpointing=False, disable_dropout=True, bf16=False,
        chat_template_kwargs={"enable_thinking": False},
        report_to=[], save_strategy="no", logging_steps=1, log_completions=False, dataloader_num_workers=0,
    )

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin, self.end, self.opt, self._o = [], [], [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.begin.append(time.time())

        def on_pre_optimizer_step(self, args, state, control, **kw):
            self._o = time.time()

        def on_optimizer_step(self, args, state, control, **kw):
            self.opt.append(time.time() - self._o)

        def on_step_end(self, args, state, control, **kw):
            self.end.append(time.time())

    timer = Timer()
    trainer = GRPOTrainer(model=policy, reward_funcs=reward_fn, args=cfg, train_dataset=ds, processing_class=tok,
                          peft_config=peft_config, callbacks=[timer])
    torch.set_num_threads(int(os.environ["PGRPO_THREADS"]))
    t_init = time.time() - t
    trainer.train()
    walls = [e - b for b, e in zip(timer.begin, timer.end)]
    for i, w in enumerate(walls):
        print(f"  trl step {i}{' (warm-up)' if i == 0 else ''}: wall={w:.3f} t_grade={grade_times[i]:.3f} "
              f"t_opt={timer.opt[i]:.3f} comp_len={comp_lens[i] if i < len(comp_lens) else float('nan'):.1f}",
              flush=True)
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return dict(init=t_init, version=trl.__version__, trainable=n_trainable, wall=mean(walls[1:]),
                t_grade=mean(grade_times[1:len(walls)]), t_opt=mean(timer.opt[1:]),
                comp_len=mean(comp_lens[1:len(walls)]), mode=f"LoRA r={lora}" if lora > 0 else "full weights")


# ---- main -------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="organism:cpu", help="organism:tiny, organism:cpu, or a model folder")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step (group size is 8)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trl-lora", type=int, default=0, help="TRL: peft LoRA rank on all linear layers (0 = full weights)")
    ap.add_argument("--trl-lr", type=float, default=None, help="TRL learning rate (default 1e-5 full, 2e-4 LoRA)")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--decoder", default="auto", help="ours: RunConfig.decoder (auto: the trainer's default)")
    ap.add_argument("--repeats", type=int, default=1, help="pairs of halves at seeds seed to seed+N-1, the first half alternating")
    a = ap.parse_args()
    if a.repeats < 1 or a.steps < 1:
        ap.error(f"--repeats {a.repeats} and --steps {a.steps}: each must be at least 1")
    global PROMPTS
    PROMPTS = a.prompts
    trl_lr = a.trl_lr if a.trl_lr is not None else (2e-4 if a.trl_lora else 1e-5)
    n_roll = PROMPTS * GROUP
    print(f"bench_step: model={a.model} steps={a.steps} (+1 warm-up) prompts/step={PROMPTS} group={GROUP} "
          f"max_len={MAX_LEN} T={TEMP} threads={torch.get_num_threads()}", flush=True)
    pairs = []
    for r in range(a.repeats):
        with tempfile.TemporaryDirectory(prefix="bench_step_") as out_dir:
            def run_ours():
                print(f"\n[ours, repeat {r + 1}/{a.repeats}] grpo.Trainer.step (SVD adapter, decoder {a.decoder})",
                      flush=True)
                return bench_ours(a.model, a.steps, out_dir, a.seed + r, a.decoder)

            def run_trl():
                if a.skip_trl:
                    return None
                print(f"\n[TRL, repeat {r + 1}/{a.repeats}] GRPOTrainer "
                      f"({'LoRA r=%d' % a.trl_lora if a.trl_lora else 'full weights'}, lr={trl_lr})", flush=True)
                return bench_trl(a.model, a.steps, out_dir, a.seed + r, trl_lr, a.trl_lora)

            if r % 2 == 0:
                ours = run_ours()
                theirs = run_trl()
            else:
                theirs = run_trl()
                ours = run_ours()
        pairs.append((ours, theirs))
    ours, theirs = average([o for o, _ in pairs]), (average([t for _, t in pairs]) if pairs[0][1] else None)

    r_ours = n_roll / ours["wall"]
    print(f"\n== mean over {a.steps} timed steps x {a.repeats} repeat(s) ({n_roll} rollouts/step) ==")
    print("| | ours (grpo.Trainer) | TRL GRPOTrainer | ours / TRL |")
    print("|---|---|---|---|")
    if theirs:
        r_trl = n_roll / theirs["wall"]
        print(f"| what trains | SVD adapter, {ours['trainable']:,} params | {theirs['mode']}, "
              f"{theirs['trainable']:,} params (trl {theirs['version']}) | |")
        print(f"| s/step | {ours['wall']:.3f} | {theirs['wall']:.3f} | {ours['wall'] / theirs['wall']:.2f} |")
        print(f"| rollouts/s (ratio of the mean step times) | {r_ours:.2f} | {r_trl:.2f} | {r_ours / r_trl:.2f} |")
        print(f"| grading s/step | {ours['t_grade']:.3f} | {theirs['t_grade']:.3f} | |")
        print(f"| step minus grading s/step (generate + train) | {ours['wall'] - ours['t_grade']:.3f} | "
              f"{theirs['wall'] - theirs['t_grade']:.3f} | {(ours['wall'] - ours['t_grade']) / (theirs['wall'] - theirs['t_grade']):.2f} |")
        print(f"| optimizer s/step | {ours['t_opt']:.4f} | {theirs['t_opt']:.4f} | |")
        print(f"| mean completion tokens | {ours['comp_len']:.1f} | {theirs['comp_len']:.1f} | |")
        print(f"| setup s (problems, load, wrap; once) | {ours['init']:.1f} | {theirs['init']:.1f} | |")
        ratios = [t["wall"] / o["wall"] for o, t in pairs]  # rollouts/s ratio: same rollouts per step both ways
        ci = t_interval(ratios)
        each = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"\nours / TRL rollouts/s per repeat (seeds {a.seed} to {a.seed + a.repeats - 1}): {each}"
              + (f"; mean {ci[0]:.2f} [{ci[1]:.2f}, {ci[2]:.2f}] (95% t-interval, n = {len(ratios)})" if ci else ""))
    else:
        print(f"| s/step | {ours['wall']:.3f} | skipped | |")
        print(f"| rollouts/s | {r_ours:.2f} | skipped | |")
    print("\nours, phase split (s/step, share of step wall):")
    print("| phase | s/step | share |")
    print("|---|---|---|")
    for k in ("t_generate", "t_grade", "t_train", "t_opt"):
        label = "t_opt (AdamW step, inside t_train)" if k == "t_opt" else k
        print(f"| {label} | {ours[k]:.3f} | {ours[k] / ours['wall']:.0%} |")
    print(f"| step wall | {ours['wall']:.3f} | 100% |")
    print(f"(sandbox: {sandbox.sandbox_mode()}, {sandbox.n_workers()} workers; grading {ours['t_grade'] / ours['wall']:.0%} of the step)")
    print(f"(ours: fraction of rollouts trained (non-zero-variance groups) = {ours['frac_trained']:.2f}; "
          f"t_train is 0 on steps where every group has zero reward variance)")


if __name__ == "__main__":
    main()
