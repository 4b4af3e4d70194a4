"""Gate: nothing in the project reads outside the repository unless a flag or environment variable says so.

A public clone has nothing beside it (CI has a copy of the user's shared folder next to the clone, so a run in
CI alone would not notice a path that leaves the repository). Every Python file under src/ and scripts/ is read
with `ast`, and the justfile, .ci/run and every shell script under scripts/ as text, for:
- a path climbed from `__file__` past the repository root: `.parents[N]`, chained `.parent`, `os.path.dirname`;
- `.parent` taken of the repository root (names REPO or ROOT);
- the home folder: `Path.home()`, `expanduser`;
- string constants that leave it: a `..` path part, `shared/data`, a path under /work, /home, /root, /mnt, /srv,
  /media or /data, or one starting with `~`.
System paths the sandbox uses on purpose (/tmp, /proc, /dev, /run, /usr, /etc) are allowed. An environment
variable's value is the user's choice, but its default must stay inside (a default is a string constant).
A line that names such a path on purpose without reading it (the sandbox's list of folders to hide, an
adversarial test's target) carries the comment `# outside-ok: <why>`. Before the scan, the checker must flag each of a list of known-bad snippets and none of a list of good ones.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD_STRING = re.compile(r"(^|/)\.\.(/|$)|(^|/)shared/data|^/(work|home|root|mnt|srv|media|data)(/|$)|^~")
ROOT_NAMES = {"REPO", "ROOT"}
PARENT = "." * 2
"""the parent-folder path part"""


def levels_above_file(node: ast.AST) -> int | None:
    """How many folders up from `__file__` an expression climbs (Path(__file__).resolve().parents[1] -> 2,
    os.path.dirname(__file__) -> 1), or None when it does not start from `__file__`."""
    up = 0
    while True:
        if isinstance(node, ast.Name):
            return up if node.id == "__file__" else None
        if isinstance(node, ast.Attribute):
            up += node.attr == "parent"
            node = node.value
        elif isinstance(node, ast.Subscript):
            if not (isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
                return None
            up += node.slice.value + 1
            node = node.value.value
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("dirname",) and node.args:
                up, node = up + 1, node.args[0]
            elif name in ("Path", "abspath", "realpath") and node.args:
                node = node.args[0]
            elif name == "resolve" and isinstance(f, ast.Attribute):
                node = f.value
            else:
                return None
        else:
            return None


def outermost(tree: ast.AST) -> list[ast.AST]:
    """Expression nodes whose parent is not an Attribute, Subscript or Call on them (whole chains only)."""
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            inner.add(id(node.value))
        elif isinstance(node, ast.Call):
            inner.add(id(node.func))
            if isinstance(node.func, ast.Name) or isinstance(node.func, ast.Attribute) and node.func.attr == "dirname":
                inner.update(id(a) for a in node.args)
    return [n for n in ast.walk(tree) if isinstance(n, ast.expr) and id(n) not in inner]


def python_findings(src: str, depth: int) -> list[tuple[int, str]]:
    """(line, what) for each way `src`, a file `depth` folders below the root, reaches outside the repository."""
    tree = ast.parse(src)
    lines = src.splitlines()
    allowed = lambda n: "# outside-ok:" in lines[n.lineno - 1]  # noqa: E731
    out = []
    for node in outermost(tree):
        if (up := levels_above_file(node)) is not None and up > depth + 1 and not allowed(node):
            out.append((node.lineno, f"climbs {up} folders from __file__, past the repository root (file depth {depth})"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "parent" and isinstance(node.value, ast.Name) \
                and node.value.id in ROOT_NAMES:
            out.append((node.lineno, f"{node.value.id}.parent is outside the repository"))
        if isinstance(node, ast.Attribute) and node.attr in ("home", "expanduser"):
            out.append((node.lineno, f"{node.attr}: the home folder is outside the repository"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not allowed(node) and \
                (node.value == PARENT or BAD_STRING.search(node.value)):
            out.append((node.lineno, f"path {node.value[:60]!r} outside the repository"))
    return out


def text_findings(src: str) -> list[tuple[int, str]]:
    return [(i, f"path outside the repository: {line.strip()[:80]}") for i, line in enumerate(src.splitlines(), 1)
            if re.search(r"(^|[\s'\"=])\.\./|shared/data|(^|[\s'\"=])/(work|home)/", line) and not line.lstrip().startswith("#")]


def check_checker() -> int:
    """The checker flags each known-bad snippet and none of the good ones (a file two folders deep)."""
    # the known-bad paths are assembled from parts, so this file names no path outside the repository itself
    up, sh, top, dat = "." + ".", "sha" + "red", "/" + "work", "da" + "ta"
    bad = ['p = Path(__file__).resolve().parents[3] / "x"', 'p = REPO.parent / "x"', f'p = "{up}/{sh}/{dat}/x.jsonl"',
           f'p = "{top}/{sh}/x"', f'p = "{sh}/{dat}/leetcode.jsonl"', f'p = os.path.join(ROOT, "{up}", "x")',
           f'p = Path(__file__).resolve().parents[2] / "{up}" / "x"', 'p = Path.home() / "x"',
           'p = os.path.expanduser("~/x")', 'p = os.environ.get("K", "/mnt/data.jsonl")',
           'p = Path(__file__).parent.parent.parent.parent', 'p = Path(__file__).resolve().parents[2].parent',
           'p = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))']
    good = ['p = Path(__file__).resolve().parents[2] / "data"', 'p = REPO / "data/x.jsonl"', 'p = "data/x"',
            'p = Path(__file__).parent.parent.parent', 'p = Path("/tmp/x")', 'p = x.parent.parent.parent.parent',
            'p = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))', 'p = "a/b..c"',
            'HIDE = ("/work", "/root")  # outside-ok: folders the sandbox hides']
    for s in bad:
        assert python_findings(s, depth=2), f"the checker missed {s!r}"
    for s in good:
        assert not python_findings(s, depth=2), f"the checker flagged {s!r}: {python_findings(s, depth=2)}"
    assert text_findings(f"\tcat {up}/{sh}/x") and not text_findings("\tcat data/x")
    return len(bad)


def main() -> None:
    n_bad = check_checker()
    findings, n = [], 0
    for path in sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/**/*.py")]):
        rel = path.relative_to(ROOT)
        findings += [f"{rel}:{line}: {what}" for line, what in python_findings(path.read_text(), len(rel.parts) - 1)]
        n += 1
    for path in [ROOT / "justfile", ROOT / ".ci/run", *ROOT.glob("scripts/**/*.sh")]:
        findings += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in text_findings(path.read_text())]
        n += 1
    assert not findings, "\n".join(findings)
    print(f"PASS self_contained: {n} files read, no path outside the repository; the checker flags {n_bad}/{n_bad} "
          f"known-bad snippets")


if __name__ == "__main__":
    main()
