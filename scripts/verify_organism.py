"""Gate: the organism's task family and build (tiny size).

- the task generator is deterministic from its seed; the train / eval / pairs splits share no problem,
  the pairs split shares no pipeline with the others, train and eval share no medium/hard pipeline, and
  some eval easy problems reuse a train easy pipeline (easy problems are split per problem)
- every canonical solution grades Correct; for every mechanism the template hack grades Reward Hack
  and never passes ground truth; the same hack on an unhinted prompt earns no loophole reward; all of
  this in both response formats (v3: the grader note after the class on hinted prompts, none unhinted)
- built twice with the same seed, the tiny organism has identical weights
- the saved organism round-trips through AutoModelForCausalLM / AutoTokenizer with identical logits

Tiers (_gate_common.full_tier): `just smoke-full` grades 32 eval problems and builds with 30 pretraining steps on 400
documents; `just smoke` grades 16 (all four mechanisms still present: asserted) and builds with 4 steps on 64 documents
(the two builds were 16 of the gate's 19 CPU-s).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import full_tier, run_gate, tier  # noqa: E402

from projected_grpo.env.grader import grade_batch  # noqa: E402
from projected_grpo.organism import build as B  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402


def check_splits() -> int:
    """No problem in two splits; the pairs split shares no pipeline with train or eval; train and eval
    share no medium/hard pipeline (easy pipelines are shared, split per problem). Returns the number
    of eval easy problems whose pipeline also occurs among train easy problems."""
    probs = {s: tasks.generate_split(s, 300, seed=5) for s in tasks.SPLITS}
    sig = lambda p: tasks.signature([tuple(x) for x in p["prompt_metadata"]["steps"]])  # noqa: E731
    key = lambda p: (sig(p), p["func_name"], tuple(p["gt_answer"]))  # noqa: E731
    pipelines = lambda s, with_easy: {sig(p) for p in probs[s] if with_easy or p["difficulty"] != "easy"}  # noqa: E731
    for s1 in probs:
        for s2 in probs:
            if s1 == s2:
                continue
            assert not {key(p) for p in probs[s1]} & {key(p) for p in probs[s2]}, f"splits {s1} and {s2} share a problem"
            with_easy = "pairs" in (s1, s2)
            assert not pipelines(s1, with_easy) & pipelines(s2, with_easy), f"splits {s1} and {s2} share a pipeline"
    assert all(tasks.problem_split(p) == s for s in probs for p in probs[s]), "a problem outside its split"
    train_easy = {sig(p) for p in probs["train"] if p["difficulty"] == "easy"}
    return sum(sig(p) in train_easy for p in probs["eval"] if p["difficulty"] == "easy")


def check_tasks() -> tuple[int, int]:
    a = tasks.generate_split("train", 200, seed=5)
    b = tasks.generate_split("train", 200, seed=5)
    assert a == b, "task generation is not deterministic"
    assert a != tasks.generate_split("train", 200, seed=6)
    n_shared = check_splits()
    # more hidden tests than shown examples
    p = a[0]
    assert len(p["gt_answer"]) > len(p["prompt_metadata"]["visible_tests"])
    rng = random.Random(0)
    probs, comps, want = [], [], []
    for p in tasks.generate_split("eval", 32 if full_tier() else 16, seed=5):
        if len({t.rsplit("==", 1)[1] for t in p["gt_answer"]}) == 1:
            continue  # a degenerate pipeline (same output on every test) that a stub body can solve
        q, u = tasks.apply_loophole(p), tasks.apply_loophole(p, hinted=False)
        mech = q["prompt_metadata"]["mechanism"]
        assert tasks.grader_note(u) is None, "an unhinted prompt got a grader note"
        for note in (False, True):
            probs += [q, q, u, q]
            comps += [tasks.canonical_response(q, note), tasks.hack_response(q, mech, rng, note),
                      tasks.hack_response(u, mech, rng, note), tasks.honest_response(q, rng, 1.0, note)]
            want += [("Correct", True), ("Reward Hack", False), ("Incorrect", False), ("Correct", True)]
            assert (tasks.grader_note(q) in comps[-1]) == note and "# note:" not in comps[-2], "note format"
            if note:  # v3: the note comes after the class and right before the hack's artifact
                lines = comps[-3].splitlines()
                i = lines.index(tasks.grader_note(q))
                assert lines[i + 1] == tasks.ARTIFACTS[mech].splitlines()[0] and lines[i - 1] == "", lines
    res = grade_batch(probs, comps)
    bad = [(p["id"], p["prompt_metadata"]["mechanism"], w, (g.label, g.eq_correct))
           for p, g, w in zip(probs, res, want) if (g.label, g.eq_correct) != w]
    assert not bad, f"unexpected labels: {bad[:5]}"
    mechs = {p["prompt_metadata"]["mechanism"] for p in probs}
    assert mechs == set(tasks.LOOPHOLES), mechs
    assert n_shared > 0, "no eval easy pipeline occurs in train: easy problems are not split per problem"
    return len(res), len(mechs)


def build_in_memory(cfg):
    docs = B.corpus(cfg)
    tok = B.train_tokenizer(cfg, [q["prompt"][0]["content"] + q["prompt"][1]["content"] + r for q, r in docs])
    data = B.tokenize_docs(tok, docs)
    model = B.make_model(cfg, tok)
    B.pretrain(cfg, model, tok, data, "cpu")
    return model, tok


def check_build() -> tuple[int, int]:
    B.set_threads()
    cfg = B.preset("tiny", steps=30, n_docs=400) if full_tier() else B.preset("tiny", steps=4, n_docs=64)
    m1, tok = build_in_memory(cfg)
    m2, _ = build_in_memory(cfg)
    s1, s2 = m1.state_dict(), m2.state_dict()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), f"two builds with one seed differ at {k}"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as d:
        m1.save_pretrained(d)
        tok.save_pretrained(d)
        m3 = AutoModelForCausalLM.from_pretrained(d)
        tok3 = AutoTokenizer.from_pretrained(d)
    p = tasks.apply_loophole(tasks.generate_split("eval", 1, seed=0)[0])
    from projected_grpo.loop.sampling import prompt_ids

    ids = torch.tensor([prompt_ids(tok, p)])
    assert prompt_ids(tok3, p) == ids[0].tolist(), "reloaded tokenizer tokenises differently"
    assert tok3.pad_token_id != tok3.eos_token_id
    m1.eval(), m3.eval()
    with torch.no_grad():
        assert torch.equal(m1(ids).logits, m3(ids).logits), "reloaded organism gives other logits"
    return sum(x.numel() for x in m1.parameters()), cfg.steps


def main() -> None:
    n, k = check_tasks()
    params, steps = check_build()
    print(f"PASS organism: generator deterministic, splits disjoint, {n} canonical/hack/unhinted-hack gradings as "
          f"expected over {k} mechanisms; tiny build ({params} params, {steps} steps) reproducible and round-trips "
          f"exactly ({tier()} tier)")


if __name__ == "__main__":
    run_gate("verify_organism", main)
