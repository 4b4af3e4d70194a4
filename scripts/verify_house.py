"""Gate: the house plan holds (read from the source with `ast`, nothing imported or run).

1. No import circle in src/projected_grpo: the graph of package imports at every depth (module level, inside
   functions and classes alike) is acyclic.
2. Scripts import only the library: a stage script (train, drivers, benches, probes, ...) imports no other script; a
   gate (verify_*) imports no other gate (it may import the stage script it checks); the helpers _runner and
   _gate_common may be imported by any script and import no other script.
3. No intervention holds the trainer: no class of the intervention hierarchy (NoIntervention and its subclasses) has a
   parameter or attribute named trainer, or names Trainer; the intervention modules do not import the loop's grpo;
   grpo.Trainer hands no hook `self`.
4. The README's file tree lists every file of the library (src/projected_grpo) and every script (scripts/), and
   nothing else.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gate_common import run_gate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "projected_grpo"
SCRIPTS = ROOT / "scripts"
HELPERS = {"_runner", "_gate_common"}
TREE_HEADING = "## The house"


# ---- 1. the package's import graph -------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules a file imports anywhere in it (`from pkg import mod` counts as mod)."""
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names = [f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in modules else n.module for a in n.names]
        out |= {m for m in names if m in modules}
    return out - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    files = sorted(PKG.rglob("*.py"))
    modules = {module_name(p) for p in files}
    # a package's __init__ is imported with each of its modules: an edge to it alone is no circle of ours
    return {module_name(p): package_imports(p, modules) - {"projected_grpo"} for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as [a, b, ..., a], or [] (depth-first search, grey/black marks)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str]:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if not state.get(v) and (c := visit(v)):
                return c
        state[u] = 2
        stack.pop()
        return []

    for m in sorted(graph):
        if not state.get(m) and (c := visit(m)):
            return c
    return []


def check_cycles() -> tuple[int, int]:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert not cycle, "import circle in src/projected_grpo: " + " -> ".join(c.removeprefix("projected_grpo.")
                                                                            for c in cycle)
    return len(graph), sum(len(v) for v in graph.values())


# ---- 2. scripts import only the library -----------------------------------------------------------------------

def script_imports(path: Path, scripts: set[str]) -> set[str]:
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            out |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            out.add(n.module.split(".")[0])
    return (out & scripts) - {path.stem}


def check_scripts() -> int:
    files = sorted(SCRIPTS.glob("*.py"))
    scripts = {p.stem for p in files}
    bad, n = [], 0
    for p in files:
        for m in sorted(script_imports(p, scripts)):
            n += 1
            if m in HELPERS and p.stem not in HELPERS:
                continue
            if p.stem.startswith("verify_") and not m.startswith("verify_") and m not in HELPERS:
                continue  # a gate may import the stage script it checks
            bad.append(f"{p.stem} imports {m}")
    assert not bad, "scripts import scripts: " + "; ".join(bad)
    return n


# ---- 3. no intervention holds the trainer ---------------------------------------------------------------------

def intervention_classes() -> dict[str, tuple[Path, ast.ClassDef]]:
    """NoIntervention and every class of the package deriving from it (by base name, transitively)."""
    classes = {}
    for p in sorted(PKG.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in n.bases]
                classes[n.name] = (p, n, bases)
    found = {"NoIntervention"}
    while True:
        more = {c for c, (_, _, bases) in classes.items() if set(bases) & found} - found
        if not more:
            return {c: classes[c][:2] for c in found}
        found |= more


def trainer_refs(cls: ast.ClassDef) -> list[str]:
    refs = []
    for n in ast.walk(cls):
        if isinstance(n, ast.arg) and "trainer" in n.arg.lower():
            refs.append(f"parameter {n.arg}")
        if isinstance(n, ast.Attribute) and "trainer" in n.attr.lower():
            refs.append(f"attribute .{n.attr}")
        if isinstance(n, ast.Name) and "trainer" in n.id.lower():
            refs.append(f"name {n.id}")
    return refs


def check_no_trainer() -> int:
    classes = intervention_classes()
    assert len(classes) >= 6, f"only {sorted(classes)} found: the intervention hierarchy moved?"
    bad = [f"{c} ({p.name}): {r}" for c, (p, node) in classes.items() for r in trainer_refs(node)]
    assert not bad, "interventions reach the trainer: " + "; ".join(bad)
    for p in {p for p, _ in classes.values()}:
        assert "projected_grpo.loop.grpo" not in package_imports(p, {"projected_grpo.loop.grpo"}), \
            f"{p.name} imports the loop's grpo (the trainer)"
    grpo = ast.parse((PKG / "loop" / "grpo.py").read_text())
    for n in ast.walk(grpo):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Attribute)
                and n.func.value.attr == "intervention"):
            args = list(n.args) + [k.value for k in n.keywords]
            assert not any(isinstance(a, ast.Name) and a.id == "self" for a in args), \
                f"grpo.py line {n.lineno}: the trainer hands itself to intervention.{n.func.attr}"
    return len(classes)


# ---- 4. the README's file tree --------------------------------------------------------------------------------

def tree_paths(readme: str) -> list[str]:
    """The file paths of the README's annotated tree (the first ``` block after TREE_HEADING): each line is
    `<indent>├── name  comment` (or └──), four columns of indent per level, a name ending in / a folder."""
    assert TREE_HEADING in readme, f"README has no '{TREE_HEADING}' section"
    block = readme.split(TREE_HEADING, 1)[1].split("```", 2)[1]
    paths, folders = [], []
    for line in block.splitlines():
        m = re.match(r"^((?:│   |    )*)[├└]── (\S+)", line)
        if not m:
            continue
        depth, name = len(m.group(1)) // 4, m.group(2)
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.append("/".join(folders + [name]))
    return paths


def check_tree() -> int:
    listed = tree_paths((ROOT / "README.md").read_text())
    files = [p for p in sorted(PKG.rglob("*")) + sorted(SCRIPTS.glob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".sh")]
    want = {str(p.relative_to(ROOT)) for p in files}
    missing = sorted(want - set(listed))
    stale = sorted(x for x in set(listed) - want if x.startswith(("src/", "scripts/")) or not (ROOT / x).is_file())
    assert not missing, f"README's file tree misses {missing}"
    assert not stale, f"README's file tree lists files that do not exist: {stale}"
    assert len(listed) == len(set(listed)), "README's file tree lists a file twice"
    return len(want)


def main() -> None:
    n_mod, n_edge = check_cycles()
    n_imp = check_scripts()
    n_cls = check_no_trainer()
    n_files = check_tree()
    print(f"PASS house: import graph of {n_mod} modules, {n_edge} edges at every depth, no circle; {n_imp} script-to-"
          f"script imports, all of helpers or of the stage script a gate checks; {n_cls} intervention classes hold no "
          f"trainer and grpo hands them no self; the README tree lists all {n_files} library files and scripts")


if __name__ == "__main__":
    run_gate("verify_house", main)
