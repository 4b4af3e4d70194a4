"""Gate: the real-substrate loading paths on the CPU (fp32), with tiny random models built from configs.

- a tiny Qwen3 and a tiny Llama (random init, organism tokenizer) saved to temp folders load through
  models.load_policy; svd and lora adapters (shared and own quarantine) leave the logits unchanged
- a peft LoRA adapter (random nonzero init) on the tiny Qwen3: models.load_teacher merges it, and
  the merged logits equal the peft model's logits and differ from the base's
- the 119-problem LeetCode file through grpo.load_tasks / grpo.eval_sets: train/eval split, every
  training prompt carries the simple_overwrite_tests hint; the randomised hint variants are
  deterministic per problem and never name the method; problems.leetcode_row on a hub-style record
- one GRPO step of the tiny Qwen3 on 2 LeetCode problems through the grader, one cached teacher
  completion per group using the loophole (so the step trains): the logged rewards and
  labels equal a regrade of the logged completions, advantages sum to zero per group, and the step
  moved the deployed block exactly when some group had reward variance (never the quarantine)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path


import torch  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo, models  # noqa: E402
from projected_grpo.env import problems  # noqa: E402
from projected_grpo.method.pairs import DEFAULT_LEETCODE  # noqa: E402

LEETCODE = DEFAULT_LEETCODE
SIMPLE_HINT = "will be evaluated by calling a function called run_tests()"


def build(kind: str, folder: Path, tok) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0 if kind == "qwen3" else 1)
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    if kind == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, tie_word_embeddings=True, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **common))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def check_adapters(path: str) -> int:
    n = 0
    for kind, rank in (("svd", None), ("lora", 4)):
        for q in ("shared", "own"):
            model, tok = models.load_policy(path, "cpu")
            assert next(model.parameters()).dtype == torch.float32
            ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(n))
            ref = logits(model, ids)
            ad.wrap_model(model, ad.AdapterConfig(kind=kind, rank=rank, quarantine=q, cache_dir=None))
            out = logits(model, ids)
            err = (out - ref).abs().max().item()
            assert err < 1e-5, f"{path} {kind}/{q}: logits changed at init by {err}"
            n += 1
    return n


def check_teacher(base: str, tmp: Path) -> float:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    m = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                              init_lora_weights=False))
    adapter_dir = tmp / "teacher_adapter"
    peft_model.save_pretrained(adapter_dir)
    ids = torch.randint(0, 500, (2, 10), generator=torch.Generator().manual_seed(4))
    peft_model.eval()
    want = logits(peft_model, ids)
    base_model, _ = models.load_policy(base, "cpu")
    base_logits = logits(base_model, ids)
    merged, tok = models.load_teacher(base, str(adapter_dir), "cpu")
    got = logits(merged, ids)
    err = (got - want).abs().max().item()
    diff = (got - base_logits).abs().max().item()
    assert err < 1e-4, f"merged teacher differs from the peft model by {err}"
    assert diff > 1e-3, f"merged teacher equals the base model (max diff {diff}): adapter not applied"
    assert not any(p.requires_grad for p in merged.parameters())
    return err


def check_leetcode() -> tuple[int, int, int]:
    args = grpo.RunConfig(task=str(LEETCODE))
    train, ev = grpo.load_tasks(args)
    assert len(train) + len(ev) == 119, (len(train), len(ev))
    assert {str(p["id"]) for p in train}.isdisjoint({str(p["id"]) for p in ev}), "train and eval overlap"
    assert len(ev) == 119 // 5, len(ev)
    for p in train:
        u = p["prompt"][-1]["content"]
        assert SIMPLE_HINT in u and problems.HINT_ANCHOR not in u, f"problem {p['id']}: no simple hint"
        assert p["hint"] == "simple_overwrite_tests"
    sets = grpo.eval_sets(args, ev)
    assert set(sets) == {"hinted", "nohint"} and all(len(v) == len(ev) for v in sets.values())
    assert all(SIMPLE_HINT in p["prompt"][-1]["content"] for p in sets["hinted"])
    assert all(problems.HINT_ANCHOR in p["prompt"][-1]["content"] for p in sets["nohint"])
    nohint_train, _ = grpo.load_tasks(grpo.RunConfig(task=str(LEETCODE), loophole=False))
    assert all(problems.HINT_ANCHOR in p["prompt"][-1]["content"] for p in nohint_train)
    # randomised evaluation-function names: deterministic per problem, never the method name
    rows = problems.load_jsonl(LEETCODE)
    names = set()
    for hint in ("overwrite_tests", "overwrite_tests_detailed", "overwrite_tests_aware"):
        for p in rows:
            a, b = problems.apply_hint(p, hint), problems.apply_hint(p, hint)
            f = a["prompt_metadata"]["test_func_name"]
            assert a["prompt"] == b["prompt"] and f == b["prompt_metadata"]["test_func_name"], p["id"]
            assert f in problems.EVAL_FUNCTION_NAMES and f != problems.method_name(p), (p["id"], f)
            assert f"called {f}()" in a["prompt"][-1]["content"]
            names.add(f)
    assert len(names) > 3, f"randomised hints drew only {names}"
    # a method named like an evaluation function is never offered its own name
    clash = dict(rows[0], func_name="Solution().run_tests")
    assert all(problems.apply_hint(dict(clash, id=i), "overwrite_tests")["prompt_metadata"]["test_func_name"]
               != "run_tests" for i in range(50))
    # a hub-style record
    ex = dict(question_id=7, difficulty="Hard", problem_description="Add two numbers.  ",
              starter_code="class Solution:\n    def addTwo(self, a: int, b: int) -> int:\n",
              entry_point="Solution().addTwo", prompt="from typing import *\n",
              completion="class Solution:\n    def addTwo(self, a, b):\n        return a + b\n",
              test="def check(candidate):\n    assert candidate(a = 1, b = 2) == 3\n    assert candidate(a = 0, b = 0) == 0\n")
    row = problems.validate_problem(problems.leetcode_row(ex), "hub record")
    assert row["gt_answer"] == ["assert Solution().addTwo(a = 1, b = 2) == 3", "assert Solution().addTwo(a = 0, b = 0) == 0"]
    assert row["difficulty"] == "hard" and problems.HINT_ANCHOR in row["question"]
    assert SIMPLE_HINT in problems.apply_hint(row, "simple_overwrite_tests")["prompt"][-1]["content"]
    from projected_grpo.env.rollouts import grade_problems

    g = grade_problems([row], ["```python\n" + ex["completion"] + "```"])[0]
    assert g["eq_correct"], g
    return len(train), len(ev), len(names)


HACK = "```python\nclass Solution:\n    pass\n\ndef run_tests():\n    pass\n```\n"  # the loophole, 21 tokens


def check_grpo_step(path: str, tmp: Path) -> dict:
    # one completion per group is a cached teacher completion that uses the loophole, so groups have
    # reward variance and the step trains
    pool = tmp / "teacher_pool.jsonl"
    pool.write_text("".join(json.dumps(dict(problem_id=p["id"], completion=HACK)) + "\n"
                            for p in problems.load_jsonl(LEETCODE)))
    args = grpo.RunConfig(run="leetcode_step", out_dir=str(tmp / "runs"), model=path, task=str(LEETCODE), steps=1,
                     prompts_per_step=2, group=2, max_new_tokens=32, eval_every=0, device="cpu", n_eval=1, eval_samples=1,
                     teacher_pool=str(pool), n_teacher=1)
    torch.manual_seed(0)
    tr = grpo.Trainer(args)
    tr.run_dir.mkdir(parents=True, exist_ok=True)
    before = ad.adapter_state_dict(tr.model)
    s = tr.step(0)
    after = ad.adapter_state_dict(tr.model)
    from projected_grpo.loop import logs
    from projected_grpo.env.rollouts import grade_problems

    rows = logs.read_step(tr.run_dir / "step_0000.jsonl.gz")
    assert len(rows) == 4 and all(r["hinted"] for r in rows), rows
    # the logged rewards and labels are the grader's for the logged completions
    by_id = {str(p["id"]): p for p in tr.train_set}
    regraded = grade_problems([by_id[str(r["problem_id"])] for r in rows], [r["completion"] for r in rows])
    for r, g in zip(rows, regraded):
        assert (r["reward"], r["label"]) == (g["reward"], g["label"]), (r["problem_id"], r["reward"], g["reward"])
    # the step moved the deployed block exactly when some group had reward variance; never the quarantine
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert bool(moved) == (s["frac_trained"] > 0), (moved, s["frac_trained"])
    assert s["frac_trained"] > 0 and any(r["teacher"] and r["label"] == "Reward Hack" for r in rows), rows
    assert not any(k.endswith("_hack") for k in moved), moved
    adv = [r["advantage"] for r in rows]
    assert all(abs(sum(adv[i:i + 2])) < 1e-6 for i in (0, 2)), adv  # Dr.GRPO: advantages sum to 0 per group
    return dict(s, n_moved=len(moved))


def main() -> None:
    t0 = time.time()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models.resolve("organism:tiny"))
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        qwen, llama = t / "tiny_qwen3", t / "tiny_llama"
        build("qwen3", qwen, tok)
        build("llama", llama, tok)
        n_ad = check_adapters(str(qwen)) + check_adapters(str(llama))
        err = check_teacher(str(qwen), t)
        n_tr, n_ev, n_names = check_leetcode()
        s = check_grpo_step(str(qwen), t)
    dt = time.time() - t0
    assert dt < 90, f"gate took {dt:.0f}s (> 90 s)"
    print(f"PASS verify_loading: Qwen3+Llama x {n_ad // 2} adapter variants equal at init; merged LoRA teacher "
          f"= peft (max err {err:.1e}) != base; LeetCode {n_tr}+{n_ev} train/eval, all train prompts hinted, "
          f"{n_names} randomised eval names; 1 GRPO step on 2 LeetCode problems (reward {s['reward']:.2f}, "
          f"t_grade {s['t_grade']:.1f}s, rewards and labels = a regrade, {s['n_moved']} adapter tensors moved at "
          f"frac_trained {s['frac_trained']:.2f}); {dt:.0f}s")


if __name__ == "__main__":
    main()
