"""Per-seed rows of two `just main` logs side by side: each cell of the per-seed table (arm, seed) in both, and the
largest absolute difference per column. A one-off script kept beside its output (issue 28, session 22).

    python3 compare_tables.py A.log B.log
"""

import sys


def per_seed(path: str) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    lines = open(path).read().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| arm | seed |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")][2:]
    rows = {}
    for ln in lines[start + 2:]:
        if not ln.startswith("| "):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[(cells[0], cells[1])] = [float(x) for x in cells[2:]]
    return header, rows


def main() -> None:
    (ha, a), (hb, b) = per_seed(sys.argv[1]), per_seed(sys.argv[2])
    assert ha == hb and a.keys() == b.keys(), "the two tables differ in columns or rows"
    same = sum(a[k] == b[k] for k in a)
    print(f"{len(a)} per-seed rows, {same} identical")
    print("| arm | seed | " + " | ".join(ha) + " |")
    print("|---|---|" + "---|" * len(ha))
    for k in a:
        print(f"| {k[0]} | {k[1]} | " + " | ".join(f"{x:.3f} / {y:.3f}" for x, y in zip(a[k], b[k])) + " |")
    worst = [max(abs(a[k][j] - b[k][j]) for k in a) for j in range(len(ha))]
    print("largest |difference| per column: " + ", ".join(f"{h} {w:.3f}" for h, w in zip(ha, worst)))


if __name__ == "__main__":
    main()
