"""Gate: nothing in the project reads outside the repository unless a flag or environment variable says so.

A public clone has nothing beside it (CI has a copy of the user's shared folder next to the clone, so a run in
CI alone would not notice a path that leaves the repository). Every Python file under src/ and scripts/ is read
with `ast`, and the justfile, .ci/run and scripts/*.sh as text, for:
- `Path(__file__).resolve().parents[N]` with N past the repository root (the file's depth);
- `.parent` taken of the repository root (names REPO or ROOT);
- string constants that leave it: a leading `../`, `shared/data`, or an absolute path under /work or /home.
Before the scan, the checker must flag each of a list of known-bad snippets (so it cannot pass by seeing nothing).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD_STRING = re.compile(r"^\.\./|(^|/)shared/data|^/(work|home)/")
ROOT_NAMES = {"REPO", "ROOT"}


def parents_index(node: ast.Subscript) -> int | None:
    """N of `<...>.parents[N]` when N is a literal int."""
    if isinstance(node.value, ast.Attribute) and node.value.attr == "parents" and isinstance(node.slice, ast.Constant):
        return node.slice.value if isinstance(node.slice.value, int) else None
    return None


def python_findings(src: str, depth: int) -> list[tuple[int, str]]:
    """(line, what) for each way `src`, a file `depth` folders below the root, reaches outside the repository."""
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Subscript) and (n := parents_index(node)) is not None and n > depth:
            out.append((node.lineno, f"parents[{n}] leaves the repository (file depth {depth})"))
        if isinstance(node, ast.Attribute) and node.attr == "parent" and isinstance(node.value, ast.Name) \
                and node.value.id in ROOT_NAMES:
            out.append((node.lineno, f"{node.value.id}.parent is outside the repository"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and BAD_STRING.search(node.value):
            out.append((node.lineno, f"path {node.value[:60]!r} outside the repository"))
    return out


def text_findings(src: str) -> list[tuple[int, str]]:
    return [(i, f"path outside the repository: {line.strip()[:80]}") for i, line in enumerate(src.splitlines(), 1)
            if re.search(r"(^|[\s'\"=])\.\./|shared/data|(^|[\s'\"=])/(work|home)/", line) and not line.lstrip().startswith("#")]


def check_checker() -> int:
    """The checker flags each known-bad snippet and none of the good ones."""
    bad = ['p = Path(__file__).resolve().parents[3] / "x"', 'p = REPO.parent / "x"', 'p = "../shared/data/x.jsonl"',
           'p = "/work/shared/x"', 'p = "shared/data/leetcode.jsonl"']
    good = ['p = Path(__file__).resolve().parents[2] / "data"', 'p = REPO / "data/x.jsonl"', 'p = "data/x"']
    for s in bad:
        assert python_findings(s, depth=2), f"the checker missed {s!r}"
    for s in good:
        assert not python_findings(s, depth=2), f"the checker flagged {s!r}"
    assert text_findings("\tcat ../shared/x") and not text_findings("\tcat data/x")
    return len(bad)


def main() -> None:
    n_bad = check_checker()
    findings, n = [], 0
    for path in sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py")]):
        if path == Path(__file__).resolve():
            continue  # its known-bad snippets are string constants
        rel = path.relative_to(ROOT)
        findings += [f"{rel}:{line}: {what}" for line, what in python_findings(path.read_text(), len(rel.parts) - 1)]
        n += 1
    for path in [ROOT / "justfile", ROOT / ".ci/run", *ROOT.glob("scripts/*.sh")]:
        findings += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in text_findings(path.read_text())]
        n += 1
    assert not findings, "\n".join(findings)
    print(f"PASS self_contained: {n} files read, no path outside the repository; the checker flags {n_bad}/{n_bad} "
          f"known-bad snippets")


if __name__ == "__main__":
    main()
