"""Gate: every malformed construct of a pair file raises PairFormatError naming the right file:line.

Writes one malformed file per error kind to a temp dir (a valid pair with one defect) and checks
the message; also checks that a valid file parses and that an empty selection is refused.
"""

import sys
import tempfile
from pathlib import Path

from projected_grpo.method.pairs import PairFormatError, load_pairs

FENCE = "```"
GOOD = f"""<!-- a comment
spanning lines -->
# organism

## pair: p-01
tags: kind=hack, substrate=organism, mechanism=run_tests, style=stub, provenance=hand-authored
prompt: pairs-0-00000 @hinted
### hack
{FENCE}python
class Solution:
    # a python comment, not a section
    def answer(self, nums: List[int]) -> List[int]:
        return []

def run_tests():
    pass
{FENCE}
### clean
{FENCE}python
class Solution:
    def answer(self, nums: List[int]) -> List[int]:
        return [x % 2 for x in nums]
{FENCE}
"""
LINES = GOOD.splitlines()
HEAD = LINES.index("## pair: p-01") + 1        # 1-based line numbers of the good file
TAGS, PROMPT = HEAD + 1, HEAD + 2
HACK_FENCE = LINES.index("### hack") + 2
CLEAN_HEAD = LINES.index("### clean") + 1


def edit(line: int, new: str | None) -> str:
    """GOOD with 1-based `line` replaced by `new` (None deletes it)."""
    lines = list(LINES)
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


def cases() -> list[tuple[str, str, int]]:
    """(name, file text, line the error must name)."""
    no_clean = "\n".join(LINES[:CLEAN_HEAD - 1]) + "\n"
    unterminated = "\n".join(LINES[:-1]) + "\n"     # drop the last closing fence
    duplicate = GOOD + "\n" + "\n".join(LINES[HEAD - 1:]) + "\n"
    outside = "\n".join(LINES[HEAD - 1:]) + "\n"     # no '# section' above the pair
    return [
        ("missing clean block", no_clean, HEAD),
        ("missing hack block", "\n".join(LINES[:HACK_FENCE - 2] + LINES[CLEAN_HEAD - 1:]) + "\n", HEAD),
        ("unterminated code fence", unterminated, CLEAN_HEAD + 1),
        ("duplicate pair id", duplicate, len(LINES) + 2),
        ("unknown tag key", edit(TAGS, LINES[TAGS - 1] + ", colour=red"), TAGS),
        ("malformed tag", edit(TAGS, "tags: kind=hack substrate=organism"), TAGS),
        ("missing required tag", edit(TAGS, "tags: kind=hack, substrate=organism, provenance=hand-authored"), TAGS),
        ("unknown organism reference", edit(PROMPT, "prompt: pairs-0-99999 @hinted"), PROMPT),
        ("unknown leetcode reference", edit(PROMPT, "prompt: leetcode:1 @hinted"), PROMPT),
        ("malformed prompt line", edit(PROMPT, "prompt: pairs-0-00000"), PROMPT),
        ("missing prompt line", edit(PROMPT, None), HEAD),
        ("pair outside any section", outside, 1),
        ("malformed pair heading", edit(HEAD, "## p-01"), HEAD),
        ("stray text in pair", edit(PROMPT + 1, "some prose"), PROMPT + 1),
        ("fence that is not python", edit(HACK_FENCE, f"{FENCE}js"), HACK_FENCE),
        ("unterminated comment", GOOD + "<!-- never closed\n", len(LINES) + 1),
    ]


def main():
    tmp = Path(tempfile.mkdtemp(prefix="pairs_parser_"))
    good = tmp / "good.md"
    good.write_text(GOOD)
    pairs = load_pairs(str(good))
    assert len(pairs) == 1 and pairs[0].source_line == HEAD and "# a python comment" in pairs[0].hack
    for i, (name, text, line) in enumerate(cases()):
        path = tmp / f"bad_{i:02d}.md"
        path.write_text(text)
        try:
            load_pairs(str(path))
        except PairFormatError as e:
            assert f"{path}:{line}:" in str(e), f"{name}: wanted line {line}, got: {e}"
        else:
            raise AssertionError(f"{name}: no PairFormatError")
    for spec in (f"{good}#leetcode", f"{good}#organism@mechanism=sentinel", f"{good}@style=print"):
        try:
            load_pairs(spec)
        except PairFormatError as e:
            assert "empty selection" in str(e), e
        else:
            raise AssertionError(f"empty selection {spec!r} not refused")
    print(f"PASS verify_pair_parser: {len(cases())} malformed files each raise PairFormatError at the "
          f"right line; 3 empty selections refused; valid file parses")


if __name__ == "__main__":
    sys.exit(main())
