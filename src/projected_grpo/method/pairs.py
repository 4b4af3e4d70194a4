"""Hand-authored (hack, clean) contrast pairs: the markdown format, its parser, and prompt resolution.

Pairs are the project's only label source for v_hack. They are written by hand, off the training
distribution (prompts come from the organism's `pairs` split or from named LeetCode rows, never from
training rollouts), and each pair is one prompt with two completions matched in everything but the hack.

File format (markdown; see data/pairs/hack_pairs.md):

    <!-- comments are ignored -->
    # organism                                  section (h1); a pair belongs to the last section seen
    ## pair: org-rt-01                          one pair (h2), id unique within the file
    tags: kind=hack, mechanism=run_tests, ...   key=value list, keys from TAG_KEYS
    prompt: pairs-0-00012 @hinted               organism pairs-split id, or leetcode:<id>; @hinted | @unhinted
    ### hack                                    the hack completion: one ```python fenced block
    ### clean                                   the clean completion: one ```python fenced block

Selection spec: `path[#section][@key=value[+key=value...]]` (`path@k=v` filters every section). Section `all` (or `all-in-one`, or no
fragment) means every section; tag filters are ANDed. An empty selection is an error.

Every malformed construct raises PairFormatError("file:line: message").
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from projected_grpo.env.problems import apply_hint, load_jsonl
from projected_grpo.organism.tasks import apply_loophole, generate_split

REPO = Path(__file__).resolve().parents[3]
DEFAULT_LEETCODE = Path(os.environ.get("PGRPO_LEETCODE") or REPO / "data/leetcode_test_medhard.jsonl")
"""the 119 LeetCode problems (medium and hard) the LeetCode pairs and checks use; PGRPO_LEETCODE names another file"""
LEETCODE_SHA256 = "5bb4d91fcdbd3a3fc2c149570783edd41cf2f85a1f2293ec7c9ff5bae7185cbd"
"""sha256 of data/leetcode_test_medhard.jsonl's bytes (scripts/verify_pinned.py)"""
HACK_PAIRS = "data/pairs/hack_pairs.md#organism"
"""the hand-authored (hack, clean) pairs of the organism: the label source of our method"""
PLACEBO_PAIRS = "data/pairs/pair_diagnostics.md#placebo"
"""pairs whose contrast is unrelated to hacking (the placebo controls)"""
ORGANISM_PAIRS = dict(split="pairs", n=200, seed=0)   # the organism problems a reference may name
LEETCODE_HINT = "simple_overwrite_tests"

TAG_KEYS = ("kind", "substrate", "mechanism", "style", "provenance", "contrast")
REQUIRED_TAGS = ("kind", "substrate", "mechanism", "provenance")
ALL_SECTIONS = ("all", "all-in-one")

_PAIR_HEAD = re.compile(r"^## pair:\s*(\S+)\s*$")
_PROMPT = re.compile(r"^prompt:\s*(\S+)\s+@(hinted|unhinted)\s*$")
_TAG = re.compile(r"^([a-z_]+)=([A-Za-z0-9_.\-]+)$")


class PairFormatError(ValueError):
    """A malformed pair file or selection; the message starts with file:line."""


@dataclass
class Pair:
    id: str
    section: str
    tags: dict
    prompt: list          # chat list (system, user) in the environment's format
    hack: str             # full completion text: the fenced block
    clean: str
    source_line: int
    problem: dict = field(repr=False, default_factory=dict)   # the resolved (hinted) problem dict
    ref: str = ""         # the prompt reference as written, e.g. "pairs-0-00012 @hinted"


# ----------------------------------------------------------------------------- problem references

@lru_cache(maxsize=1)
def organism_problems() -> dict:
    return {p["id"]: p for p in generate_split(**ORGANISM_PAIRS)}


@lru_cache(maxsize=4)
def leetcode_problems(path: str) -> dict:
    return {str(p["id"]): p for p in load_jsonl(path)}


def resolve_problem(ref: str, hinted: bool, leetcode_path: str | Path) -> dict | None:
    """The problem dict a reference names, with its prompt hinted or not; None if unknown."""
    if ref.startswith("leetcode:"):
        p = leetcode_problems(str(leetcode_path)).get(ref.removeprefix("leetcode:"))
        return None if p is None else apply_hint(p, LEETCODE_HINT if hinted else "none")
    p = organism_problems().get(ref)
    return None if p is None else apply_loophole(p, hinted=hinted)


# ----------------------------------------------------------------------------- parsing

def parse_tags(text: str, where: str) -> dict:
    tags = {}
    for tok in (t.strip() for t in text.split(",")):
        m = _TAG.match(tok)
        if not m:
            raise PairFormatError(f"{where}: malformed tag {tok!r} (want key=value)")
        key, val = m.groups()
        if key not in TAG_KEYS:
            raise PairFormatError(f"{where}: unknown tag key {key!r}; known: {', '.join(TAG_KEYS)}")
        if key in tags:
            raise PairFormatError(f"{where}: tag {key!r} given twice")
        tags[key] = val
    return tags


def strip_comments(lines: list[str], path) -> list[str]:
    """Blank out <!-- ... --> comment lines (outside code fences), keeping line numbers."""
    out, in_comment, in_fence = [], False, False
    for i, ln in enumerate(lines, 1):
        s = ln.strip()
        if not in_comment and s.startswith("```"):
            in_fence = not in_fence
        if in_fence or (not in_comment and not s.startswith("<!--")):
            out.append(ln)
            continue
        if not in_comment:
            start = i
        in_comment = "-->" not in s
        out.append("")
    if in_comment:
        raise PairFormatError(f"{path}:{start}: unterminated <!-- comment")
    return out


def read_fence(lines: list[str], i: int, path) -> tuple[str, int]:
    """The ```python block opening at lines[i] (0-based) as text, and the index after its close."""
    if lines[i].strip() != "```python":
        raise PairFormatError(f"{path}:{i + 1}: expected a ```python code fence, got {lines[i].strip()!r:.60}")
    for j in range(i + 1, len(lines)):
        if lines[j].rstrip() == "```":
            return "\n".join(lines[i:j + 1]), j + 1
    raise PairFormatError(f"{path}:{i + 1}: unterminated code fence")


def parse_file(path, leetcode_path=None) -> list[Pair]:
    """Every pair of a pair file, validated and with its prompt resolved."""
    path = Path(path)
    if not path.is_file():
        raise PairFormatError(f"{path}:0: no such pair file")
    leetcode_path = leetcode_path or DEFAULT_LEETCODE
    lines = strip_comments(path.read_text().splitlines(), path)
    pairs, section, cur, seen = [], None, None, {}
    i = 0
    while i < len(lines):
        ln, where = lines[i], f"{path}:{i + 1}"
        s = ln.strip()
        if not s:
            i += 1
        elif s.startswith("```"):
            raise PairFormatError(f"{where}: code fence outside a ### hack / ### clean block")
        elif re.match(r"^# \S", ln):
            pairs += [finish(cur, path, leetcode_path)] if cur else []
            section, cur = s[2:].strip(), None
            i += 1
        elif ln.startswith("## "):
            pairs += [finish(cur, path, leetcode_path)] if cur else []
            m = _PAIR_HEAD.match(ln)
            if not m:
                raise PairFormatError(f"{where}: malformed pair heading (want '## pair: <id>')")
            pid = m.group(1)
            if section is None:
                raise PairFormatError(f"{where}: pair {pid!r} outside any section (no '# section' above)")
            if pid in seen:
                raise PairFormatError(f"{where}: duplicate pair id {pid!r} (first at line {seen[pid]})")
            seen[pid] = i + 1
            cur = {"id": pid, "section": section, "line": i + 1}
            i += 1
        elif cur is None:
            raise PairFormatError(f"{where}: text outside any pair: {s!r:.60}")
        elif s.startswith("tags:"):
            if "tags" in cur:
                raise PairFormatError(f"{where}: second tags line in pair {cur['id']!r}")
            cur["tags"] = parse_tags(s[5:], where)
            missing = [k for k in REQUIRED_TAGS if k not in cur["tags"]]
            if missing:
                raise PairFormatError(f"{where}: tags line lacks {', '.join(missing)}")
            i += 1
        elif s.startswith("prompt:"):
            m = _PROMPT.match(s)
            if not m:
                raise PairFormatError(f"{where}: malformed prompt line (want 'prompt: <ref> @hinted|@unhinted')")
            problem = resolve_problem(m.group(1), m.group(2) == "hinted", leetcode_path)
            if problem is None:
                raise PairFormatError(f"{where}: unknown problem reference {m.group(1)!r}")
            cur["problem"], cur["ref"] = problem, f"{m.group(1)} @{m.group(2)}"
            i += 1
        elif s in ("### hack", "### clean"):
            side = s[4:]
            if side in cur:
                raise PairFormatError(f"{where}: second {side} block in pair {cur['id']!r}")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j == len(lines):
                raise PairFormatError(f"{where}: {side} block has no code fence")
            cur[side], i = read_fence(lines, j, path)
        else:
            raise PairFormatError(f"{where}: unexpected line in pair {cur['id']!r}: {s!r:.60}")
    if cur:
        pairs.append(finish(cur, path, leetcode_path))
    return pairs


def finish(cur: dict, path, leetcode_path) -> Pair:
    where = f"{path}:{cur['line']}"
    for key, what in (("tags", "tags line"), ("problem", "prompt line"), ("hack", "### hack block"),
                      ("clean", "### clean block")):
        if key not in cur:
            raise PairFormatError(f"{where}: pair {cur['id']!r} has no {what}")
    return Pair(id=cur["id"], section=cur["section"], tags=cur["tags"], prompt=cur["problem"]["prompt"],
                hack=cur["hack"], clean=cur["clean"], source_line=cur["line"], problem=cur["problem"],
                ref=cur["ref"])


# ----------------------------------------------------------------------------- selection

def parse_spec(spec: str) -> tuple[str, str, dict]:
    """'file#section@k=v+k=v' -> (file, section, {k: v})."""
    spec = str(spec)
    if "#" not in spec and "@" in spec:   # 'file@k=v': every section, filtered
        spec = spec.replace("@", "#all@", 1) if spec.count("@") == 1 else spec
    path, _, frag = spec.partition("#")
    section, _, filt = frag.partition("@")
    wanted = {}
    for tok in filter(None, filt.split("+")):
        m = _TAG.match(tok)
        if not m:
            raise PairFormatError(f"{path}:0: malformed tag filter {tok!r} in spec {spec!r}")
        wanted[m.group(1)] = m.group(2)
    return path, section or "all", wanted


def load_pairs(spec: str, leetcode_path=None) -> list[Pair]:
    """The pairs a spec selects, in file order; raises PairFormatError on a bad file or empty selection."""
    path, section, wanted = parse_spec(spec)
    pairs = parse_file(path, leetcode_path)
    chosen = [p for p in pairs
              if (section in ALL_SECTIONS or p.section == section)
              and all(p.tags.get(k) == v for k, v in wanted.items())]
    if not chosen:
        sections = sorted({p.section for p in pairs})
        raise PairFormatError(f"{path}:0: empty selection for {spec!r} (sections: {', '.join(sections)})")
    return chosen


def pairset_hash(pairs: list[Pair]) -> str:
    """sha256 over ids, prompt references and both completions: names exactly the set a v_hack came from."""
    h = hashlib.sha256()
    for p in pairs:
        for part in (p.id, p.ref, p.hack, p.clean):
            h.update(part.encode())
            h.update(b"\0")
    return h.hexdigest()


def n_tokens(text: str) -> int:
    """A tokenizer-free length: words and punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))
