"""Gate: the committed decisive table (docs/results/2026-12-07_decisive_final/) is the registered, complete table, and
it is what results.py computes from the committed runs.

Both tiers: its results.json is not interim; no registered run of any organism is missing or unfinished; every family
contrast has the registered n on the primary organism (20) and on the other two (10); Holm gave a verdict on each
of the twelve; and the README's headline states the primary organism's twelve family intervals as results.json has
them. Full tier (`just smoke-full`): the committed parts (PARTS, in the order the folder's README gives), unpacked
without their step logs into a temporary folder, and `results.py --decisive` over the three organisms give a
results.json and results.md equal to the committed ones. Prints one PASS line; exit 1 on failure.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import full_tier, run_gate, run_script  # noqa: E402

from projected_grpo.method import prereg  # noqa: E402

TABLE = ROOT / "docs/results/2026-12-07_decisive_final"
R = ROOT / "docs/results"
# (parts, keep what is already unpacked): the primary organism newest first, then the two further organisms
PARTS = (
    (["2026-12-07_decisive_final/organism_cpu_s115_final.part0.tar.xz"], False),
    (["2026-12-07_decisive_n19/organism_cpu_reruns2.part0.tar.xz"], True),
    (["2026-12-07_decisive/organism_cpu_reruns.part0.tar.xz"], True),
    ([f"2026-12-06_decisive_stage2/organism_cpu_runs.part{i}.tar.xz" for i in range(5)], True),
    ([f"2026-12-07_decisive/organism_cpu-51b7c62e_runs.part{i}.tar.xz" for i in range(3)], False),
    ([f"2026-12-07_decisive_3org/organism_cpu-826cb3c1_runs.part{i}.tar.xz" for i in range(3)], False),
)
ORGANISMS = {"cpu": ("organism_cpu", prereg.N_PRIMARY), "cpu@51b7c62e": ("organism_cpu@51b7c62e", 10),
             "cpu@826cb3c1": ("organism_cpu@826cb3c1", 10)}


def interval(cell: dict) -> str:
    """How the README writes a contrast: mean [Bonferroni low, high]."""
    return f"{cell['mean']:+.3f} [{cell['lo']:+.3f}, {cell['hi']:+.3f}]"


def check_complete(res: dict) -> None:
    assert res["interim"] == "", f"the committed table is interim: {res['interim']}"
    assert res["holm"]["short"] == [], f"Holm short of contrasts: {res['holm']['short']}"
    for tag, (_, n) in ORGANISMS.items():
        org = res["organisms"][tag]
        assert org["missing"] == [] and org["unfinished"] == [], (tag, org["missing"], org["unfinished"])
        for row in res["family"]:
            got = row["per_organism"][tag]["n"]
            assert got == n, f"{row['label']} on {tag}: n {got}, registered {n}"
    assert all(row["rejected"] in (True, False) for row in res["family"]), "a family contrast without a Holm verdict"


def check_readme(res: dict) -> int:
    readme = (ROOT / "README.md").read_text()
    headline = readme[readme.index("## Headline finding"):]
    headline = " ".join(headline[:headline.index("\n## ", 1)].split())  # line breaks read as spaces
    for row in res["family"]:
        s = interval(row["per_organism"]["cpu"])
        assert s in headline, f"README's headline lacks {row['label']} on the primary organism as results.json has it: {s}"
    return len(res["family"])


def same(a, b, path: str = "") -> None:
    """Equal JSON values; floats to 1e-12 relative (another CPU may round the last bit of a library's sum)."""
    if isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (
            f"{path}: recomputed {b!r}, committed {a!r}")
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys differ: {sorted(set(a) ^ set(b))[:5]}"
        for k in a:
            same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(b)} items recomputed, {len(a)} committed"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: recomputed {str(b)[:80]!r}, committed {str(a)[:80]!r}"


def check_recomputed(res: dict) -> int:
    import pack_runs

    with tempfile.TemporaryDirectory() as t:
        runs, out = Path(t) / "runs", Path(t) / "analysis"
        n = sum(pack_runs.unpack([R / p for p in parts], runs, keep_existing=keep, step_logs=False)
                for parts, keep in PARTS)
        argv = [sys.executable, "scripts/results.py", "--decisive", "--descends-from", prereg.PRE_REG_COMMIT,
                "--out", str(out)]
        for tag, (folder, _) in ORGANISMS.items():
            argv += ["--organism-runs", f"{tag}={runs / folder}"]
        proc = run_script(argv)
        assert proc.returncode == 0, f"results.py exit {proc.returncode}: {proc.stderr[-300:]}"
        # the runs' folder is named in both files: the committed ones name out/decisive (the README's unpack)
        same(res, json.loads((out / "results.json").read_text().replace(str(runs), "out/decisive")))
        md = (out / "results.md").read_text().replace(str(runs), "out/decisive")
        assert md == (TABLE / "analysis/results.md").read_text(), "results.md recomputed differs from the committed one"
    return n


def main() -> None:
    res = json.loads((TABLE / "analysis/results.json").read_text())
    check_complete(res)
    n_readme = check_readme(res)
    what = "recomputed from the committed parts (%d files, step logs left out): results.json and results.md equal" % (
        check_recomputed(res)) if full_tier() else "recomputing it from the parts: smoke-full"
    h6 = res["family"][5]["per_organism"]["cpu"]
    print(f"PASS decisive_table: the committed table is complete (not interim; n 20/10/10 in every family contrast; "
          f"Holm verdicts given; H6 {interval(h6)} at n {h6['n']}); README's headline has its {n_readme} primary "
          f"intervals; {what}")


if __name__ == "__main__":
    run_gate("decisive_table", main)
