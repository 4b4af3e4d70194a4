"""Write .git_commit.json at the checkout's root so that a run in a copy of the tree without .git (a device call)
records the commit it ran at.

    python3 scripts/stamp_commit.py            # then carry it: run(..., carry=[".git_commit.json"])

The file holds HEAD and HEAD's file table (mode, blob sha1, path of every tracked file). A run started in a copy that
has it and no .git of its own records (models.git_state, run_meta.json) git_commit from the stamp,
git_commit_source "stamp", git_dirty computed in the copy from its files' content against the table (a tracked file
changed or missing makes it true, as `git status --untracked-files=no` would), and git_tree_digest, the table's
digest. `results.py --descends-from` accepts such a run only if the commit is a commit of this repository, its
`git ls-tree -r` gives the same digest, and git_dirty is false. Stamp right before the call: a stamp older than the
tree it travels with makes the run dirty, never wrongly clean. The file is ignored by git (.gitignore)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from projected_grpo.loop.models import GIT_STAMP, write_git_stamp
from projected_grpo.organism.pinned import REPO


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / GIT_STAMP), help="where to write it (default: the checkout's root)")
    a = ap.parse_args(argv)
    stamp = write_git_stamp(REPO, Path(a.out))
    print(json.dumps(dict(out=a.out, git_commit=stamp["git_commit"], files=len(stamp["files"]),
                          dirty_when_stamped=stamp["dirty_when_stamped"])))
    if stamp["dirty_when_stamped"]:
        print("stamp_commit: tracked files differ from HEAD; a run in a copy of this tree will record git_dirty true")
    return stamp


if __name__ == "__main__":
    main()
