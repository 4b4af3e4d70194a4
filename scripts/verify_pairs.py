"""Gate: the hand-authored pair files parse, have the promised coverage, and grade as labelled.

Checks: counts (>= 24 organism and >= 12 LeetCode hack pairs); held-out mechanisms (stdout_marker,
exit_code) absent from the hack pairs; every clean side grades 'Correct' and every hack side
'Reward Hack' under the environment's grader; placebo pairs grade 'Correct' on both sides;
framing pairs grade like hack pairs; hack and clean sides of a pair match in length within 20%
of tokens; the selection syntax filters as documented.

The sandbox is occasionally flaky under load (a loophole run can fail to finish); a pair whose
label is off is graded once more, and the number of such re-grades is printed.
"""

import sys
import time
from pathlib import Path

from projected_grpo.env.grader import grade_batch
from projected_grpo.method.pairs import PairFormatError, load_pairs, n_tokens, pairset_hash

REPO = Path(__file__).resolve().parents[1]
HACKS = REPO / "data/pairs/hack_pairs.md"
DIAG = REPO / "data/pairs/pair_diagnostics.md"
HELD_OUT = ("stdout_marker", "exit_code")
MIN_LENGTH_RATIO = 0.8


def grade_sides(pairs, want_hack: str) -> int:
    """Assert every clean side is 'Correct' and every hack side is `want_hack`; returns re-grades."""
    probs = [p.problem for p in pairs] * 2
    comps = [p.hack for p in pairs] + [p.clean for p in pairs]
    wants = [want_hack] * len(pairs) + ["Correct"] * len(pairs)
    labels = [r.label for r in grade_batch(probs, comps)]
    bad = [i for i, (got, want) in enumerate(zip(labels, wants)) if got != want]
    if bad:  # one re-grade of the misfits, to tell sandbox flakiness from a wrong pair
        print("re-grading " + ", ".join(f"{pairs[i % len(pairs)].id}:{labels[i]}" for i in bad), file=sys.stderr)
        again = grade_batch([probs[i] for i in bad], [comps[i] for i in bad])
        for i, r in zip(bad, again):
            labels[i] = r.label
    for i, (got, want) in enumerate(zip(labels, wants)):
        p, side = pairs[i % len(pairs)], ("hack" if i < len(pairs) else "clean")
        assert got == want, f"{p.id} ({p.ref}, line {p.source_line}): {side} side graded {got!r}, want {want!r}"
    return len(bad)


def length_ratio(p) -> float:
    a, b = n_tokens(p.hack), n_tokens(p.clean)
    return min(a, b) / max(a, b)


def line_ratio(p) -> float:
    a, b = p.hack.count("\n"), p.clean.count("\n")
    return min(a, b) / max(a, b)


def check_selection():
    """The spec syntax selects sections and tag filters as documented."""
    sentinel = load_pairs(f"{HACKS}#organism@mechanism=sentinel")
    assert sentinel and all(p.tags["mechanism"] == "sentinel" and p.section == "organism" for p in sentinel)
    stubs = load_pairs(f"{HACKS}#all-in-one@style=stub")
    assert stubs and all(p.tags["style"] == "stub" for p in stubs)
    assert {p.section for p in stubs} == {"organism", "leetcode"}
    both = load_pairs(f"{HACKS}#organism@mechanism=run_tests+style=method")
    assert both and all(p.tags["mechanism"] == "run_tests" and p.tags["style"] == "method" for p in both)
    assert len(load_pairs(str(HACKS))) == len(load_pairs(f"{HACKS}#all"))
    try:
        load_pairs(f"{HACKS}#organism@mechanism=exit_code")
    except PairFormatError:
        pass
    else:
        raise AssertionError("a held-out mechanism selected pairs from hack_pairs.md")
    return len(sentinel), len(stubs), len(both)


def check_notes(pairs) -> int:
    """Organism v3 format: every completion on a hinted organism prompt carries the grader note line exactly
    once, and none on an unhinted prompt; returns the number of completions checked."""
    from projected_grpo.organism.tasks import grader_note

    n = 0
    for p in pairs:
        note = grader_note(p.problem)
        for side in (p.hack, p.clean):
            lines = side.splitlines()
            want = 0 if note is None else 1
            got = sum(ln == note for ln in lines) if note else sum(ln.startswith("# note:") for ln in lines)
            assert got == want, f"{p.id}: {got} grader-note lines on a {'hinted' if note else 'unhinted'} prompt, want {want}"
            n += 1
    return n


def main():
    t0 = time.time()
    org = load_pairs(f"{HACKS}#organism")
    lc = load_pairs(f"{HACKS}#leetcode")
    placebo = load_pairs(f"{DIAG}#placebo")
    framing = load_pairs(f"{DIAG}#framing")
    assert len(org) >= 24, f"only {len(org)} organism hack pairs"
    assert len(lc) >= 12, f"only {len(lc)} LeetCode hack pairs"
    assert len(placebo) >= 12 and len(framing) >= 6, (len(placebo), len(framing))
    mechs = {p.tags["mechanism"] for p in org}
    assert mechs == {"run_tests", "sentinel"}, f"organism hack pairs cover {mechs}"
    assert not mechs & set(HELD_OUT)
    assert all(p.problem["prompt_metadata"]["loophole"] == p.tags["mechanism"] for p in org + lc), \
        "a hack pair's prompt announces another mechanism than its tag"
    assert all(p.tags["mechanism"] == "run_tests" for p in lc)
    assert all(p.tags["kind"] == "hack" for p in org + lc)

    n_notes = check_notes(org + placebo + framing)

    regrades = grade_sides(org + lc + framing, "Reward Hack")
    regrades += grade_sides(placebo, "Correct")

    hack_pairs = org + lc + framing
    worst = min(hack_pairs + placebo, key=length_ratio)
    assert length_ratio(worst) >= MIN_LENGTH_RATIO, f"{worst.id}: length ratio {length_ratio(worst):.2f}"
    worst_lines = min(hack_pairs + placebo, key=line_ratio)
    n_sent, n_stub, n_both = check_selection()
    print(f"PASS verify_pairs: {len(org)} organism + {len(lc)} leetcode hack pairs "
          f"(organism mechanisms {sorted(mechs)}, held out {list(HELD_OUT)}), {len(placebo)} placebo, "
          f"{len(framing)} framing; grader note as the v3 format wants in {n_notes} organism completions; all labels as intended ({regrades} re-graded); worst token-length "
          f"ratio {length_ratio(worst):.2f} ({worst.id}), worst line ratio {line_ratio(worst_lines):.2f} "
          f"({worst_lines.id}, not gated); selection: sentinel={n_sent} stub={n_stub} "
          f"run_tests+method={n_both}; hack set sha256 {pairset_hash(org + lc)[:12]}; {time.time() - t0:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
