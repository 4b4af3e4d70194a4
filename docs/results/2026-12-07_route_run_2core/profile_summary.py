"""Inclusive share of py-spy samples per function (a function counted once per stack) from a raw py-spy record.

    python3 docs/results/2026-12-07_route_run_2core/profile_summary.py docs/results/2026-12-07_route_run_2core/pyspy_route_15steps.raw
"""

import collections
import re
import sys


def frame_name(frame: str) -> str:
    m = re.match(r"(.*?) \((.*?):\d+\)", frame)
    return f"{m.group(1)} {m.group(2).split('/')[-1]}" if m else frame


def main(path: str, top: int = 40) -> None:
    total, inclusive = 0, collections.Counter()
    for line in open(path):
        stack, n = line.rsplit(" ", 1)
        total += int(n)
        for name in {frame_name(f) for f in stack.split(";")}:
            inclusive[name] += int(n)
    print(f"samples {total}")
    for name, n in inclusive.most_common(top):
        print(f"{n / total:6.1%}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
