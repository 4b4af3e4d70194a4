"""Gate: the committed decisive table (docs/results/2026-12-07_decisive_final/) is the registered, complete table, its
write-ups state it as it is, and it is what results.py computes from the committed runs.

Both tiers: its results.json is not interim; on each organism every family contrast is read over exactly the
registered seeds (prereg.PRIMARY_SEEDS on the primary organism, REPLICATION_SEEDS and THIRD_SEEDS on the other two),
both arms of it having a value at each; Holm gave a verdict on each of the twelve. The folder's README gives the
twelve family rows (label, contrast, outcome, interval, Holm p, verdict) as results.json has them, and H6 and S6 at
n = 19 as the three-organism table without seed 115 (docs/results/2026-12-07_decisive_3org/) has them; the README's
newest headline block states all twelve primary intervals; peer_contrasts.txt is what the stage-2 script prints from
results.json. Full tier (`just smoke-full`): the committed parts (PARTS,
in the order the folder's README gives), unpacked without their step logs into a temporary folder, and
`results.py --decisive` over the three organisms and over the first two give the results.json and results.md of
analysis/ and analysis_two_organisms/. Prints one PASS line; exit 1 on failure.
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
ORGANISMS = {"cpu": ("organism_cpu", prereg.PRIMARY_SEEDS), "cpu@51b7c62e": ("organism_cpu@51b7c62e", prereg.REPLICATION_SEEDS),
             "cpu@826cb3c1": ("organism_cpu@826cb3c1", prereg.THIRD_SEEDS)}
N19 = R / "2026-12-07_decisive_3org/analysis/results.json"  # the same table without seed 115 (n = 19 for H6, S6)
NEWEST = ("**The registered decisive table is complete", "The sections below were written before")


def interval(cell: dict) -> str:
    """How the README writes a contrast: results.py's 'mean [Bonferroni low, high]', without its '(n N)'."""
    import results

    return results.ci(cell).rsplit(" (n ", 1)[0]


def check_complete(res: dict) -> None:
    assert res["interim"] == "", f"the committed table is interim: {res['interim']}"
    assert res["holm"]["short"] == [], f"Holm short of contrasts: {res['holm']['short']}"
    for tag, (_, seeds) in ORGANISMS.items():
        org = res["organisms"][tag]
        assert org["missing"] == [] and org["unfinished"] == [], (tag, org["missing"], org["unfinished"])
        for row in res["family"]:
            cell = row["per_organism"][tag]
            assert sorted(cell["seeds"]) == list(seeds) and cell["n"] == len(seeds), (
                f"{row['label']} on {tag}: seeds {cell['seeds']}, registered {list(seeds)}")
            for arm in (row["arm"], row["control"]):
                got = org["per_seed"][str(prereg.PRIMARY_STEP)][arm][row["outcome"]]["values"]
                assert sorted(map(int, got)) == list(seeds), f"{arm} on {tag}: seeds {sorted(got)}"
    assert all(row["rejected"] in (True, False) for row in res["family"]), "a family contrast without a Holm verdict"


def table_rows(text: str) -> dict[str, list[str]]:
    """A markdown table's rows by their first cell."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows}


def check_readmes(res: dict) -> int:
    rows, n19 = table_rows((TABLE / "README.md").read_text()), json.loads(N19.read_text())
    for row in res["family"]:
        cell = row["per_organism"]["cpu"]
        got = rows.get(row["label"])
        want = [f"{row['arm']} - {row['control']}", row["outcome"], interval(cell)]
        assert got and got[:3] == want, f"folder README's {row['label']} row {got}, results.json {want}"
        holm = float(got[3])
        assert math.isclose(holm, row["holm_p"], rel_tol=0.05), f"{row['label']}: README Holm p {holm}, {row['holm_p']}"
        assert got[4] == ("yes" if row["rejected"] else "no"), f"{row['label']}: README verdict {got[4]}"
    for i, label in ((5, "H6, hack"), (11, "S6, solve")):
        old, new = n19["family"][i]["per_organism"]["cpu"], res["family"][i]["per_organism"]["cpu"]
        assert old["n"] == 19 and new["n"] == 20, (old["n"], new["n"])
        want = [f"{interval(c)}, raw p {c['p']:.3f}" for c in (old, new)]
        assert rows.get(label) == want, f"folder README's n = 19 / n = 20 row {label}: {rows.get(label)}, want {want}"
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(NEWEST[0]):readme.index(NEWEST[1])]
    block = " ".join(block.split())  # line breaks read as spaces
    for row in res["family"]:
        s = interval(row["per_organism"]["cpu"])
        assert s in block, f"README's newest headline block lacks {row['label']} on the primary organism: {s}"
    return len(res["family"])


def check_peer_contrasts() -> None:
    """peer_contrasts.txt is what the stage-2 script prints from analysis/results.json for each organism."""
    script, table = R / "2026-12-06_decisive_stage2/peer_contrasts.py", TABLE / "analysis/results.json"
    got = ""
    for tag in ORGANISMS:
        proc = run_script([sys.executable, str(script), str(table), tag])
        assert proc.returncode == 0, f"peer_contrasts.py {tag}: exit {proc.returncode}: {proc.stderr[-200:]}"
        got += f"## organism {tag}\n" + proc.stdout
    assert got == (TABLE / "peer_contrasts.txt").read_text(), "peer_contrasts.txt differs from what results.json gives"


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


def check_recomputed() -> int:
    import pack_runs

    with tempfile.TemporaryDirectory() as t:
        runs = Path(t) / "runs"
        n = sum(pack_runs.unpack([R / p for p in parts], runs, keep_existing=keep, step_logs=False)
                for parts, keep in PARTS)
        for folder, tags in (("analysis", list(ORGANISMS)), ("analysis_two_organisms", list(ORGANISMS)[:2])):
            out = Path(t) / folder
            argv = [sys.executable, "scripts/results.py", "--decisive", "--descends-from", prereg.PRE_REG_COMMIT,
                    "--out", str(out)]
            for tag in tags:
                argv += ["--organism-runs", f"{tag}={runs / ORGANISMS[tag][0]}"]
            proc = run_script(argv)
            assert proc.returncode == 0, f"results.py exit {proc.returncode}: {proc.stderr[-300:]}"
            # the runs' folder is named in both files: the committed ones name out/decisive (the README's unpack)
            committed = json.loads((TABLE / folder / "results.json").read_text())
            same(committed, json.loads((out / "results.json").read_text().replace(str(runs), "out/decisive")))
            md = (out / "results.md").read_text().replace(str(runs), "out/decisive")
            assert md == (TABLE / folder / "results.md").read_text(), f"{folder}/results.md recomputed differs"
    return n


def main() -> None:
    res = json.loads((TABLE / "analysis/results.json").read_text())
    check_complete(res)
    n_readme = check_readmes(res)
    check_peer_contrasts()
    what = ("recomputed from the committed parts (%d files, step logs left out): both tables' results.json and "
            "results.md equal" % check_recomputed()) if full_tier() else "recomputing it from the parts: smoke-full"
    h6 = res["family"][5]["per_organism"]["cpu"]
    print(f"PASS decisive_table: the committed table is complete (not interim; the registered seeds in every family contrast; "
          f"Holm verdicts given; H6 {interval(h6)} at n {h6['n']}); the folder README's {n_readme} family rows and its "
          f"n = 19 / 20 rows are results.json's, README's newest headline block has the {n_readme} intervals, peer_contrasts.txt recomputed; {what}")


if __name__ == "__main__":
    run_gate("decisive_table", main)
