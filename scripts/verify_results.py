"""Gate: results.py on synthetic logs with a known answer: means and paired differences exact, per-seed
values printed, hierarchical bootstrap intervals sane (contain the estimate, stay in [0, 1], match the
analytic standard error of the two-level estimator, count within-seed sampling when seeds agree),
cells with different n refused unless told, runs that differ in device refused (exit 2, one line)
unless --allow-mixed, and plots written. run_meta records the commit the code ran at and whether tracked files
differed from it (models.git_state, against git itself); --descends-from refuses (exit 2, one line) a run whose
commit does not descend from the given one, a dirty run, a run without a recorded commit, and a name that is no
commit, and passes runs at a descendant. A copy of a checkout without .git that carries the stamp
(scripts/stamp_commit.py) records the stamp's commit with git_commit_source 'stamp' and git_dirty from its own
content; --descends-from accepts such a run only if the commit is this repository's and the stamp's file table is
that commit's."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import fake_run, run_script  # noqa: E402

def check_bootstrap(results) -> tuple[float, float]:
    """Synthetic counts: the bootstrap's standard error against the two-level analytic one."""
    import numpy as np

    rng = np.random.default_rng(1)
    S, n = 10, 200
    p = np.clip(0.4 + 0.1 * rng.standard_normal(S), 0.05, 0.95)
    counts = [(int(k), n) for k in rng.binomial(n, p)]
    est, lo, hi = results.bootstrap(counts)
    ph = np.array([k / n for k, _ in counts])
    se = math.sqrt((ph.var() + np.mean(ph * (1 - ph)) / n) / S)  # resampling seeds, then samples in a seed
    ratio = (hi - lo) / (2 * 1.96 * se)
    assert lo < est < hi and 0 <= lo and hi <= 1, (est, lo, hi)
    assert 0.85 < ratio < 1.15, f"bootstrap width / analytic width = {ratio:.3f}"
    # three identical seeds: a t-interval over seeds has width 0; the bootstrap keeps the eval sampling
    est, lo, hi = results.bootstrap([(20, 40)] * 3)
    half = 1.96 * math.sqrt(0.25 / 120)
    assert est == 0.5 and abs((hi - lo) / 2 - half) < 0.3 * half, (lo, hi, half)
    # paired difference: a clear effect excludes 0, none includes it
    d = results.bootstrap([(10, 100)] * 3, [(40, 100)] * 3)
    assert abs(d[0] + 0.3) < 1e-12 and d[2] < 0, d
    d0 = results.bootstrap([(40, 100), (30, 100), (50, 100)], [(40, 100), (30, 100), (50, 100)])
    assert d0[0] == 0 and d0[1] < 0 < d0[2], d0
    return ratio, hi - lo


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def check_stamp() -> int:
    """A copy of a checkout without .git that carries the stamp (scripts/stamp_commit.py) records the stamp's commit,
    source 'stamp', the digest of the commit's file table, and git_dirty from its own content. On a small
    repository made here: the clean copy, a changed file, a missing file, a changed symlink target, an added
    untracked file (not dirty, as git status --untracked-files=no), a results file changed (dirty) or left behind (clean:
    models.LEFT_BEHIND), a code folder left behind (dirty), and a copy without the stamp."""
    import stamp_commit
    from projected_grpo.loop.models import GIT_STAMP, git_ls_tree, git_state, git_tree_digest

    cases = 0
    with tempfile.TemporaryDirectory() as t:
        repo = Path(t) / "repo"
        (repo / "sub").mkdir(parents=True)
        (repo / "a.txt").write_text("alpha\n")
        (repo / "sub" / "b.py").write_bytes(b"print('b')\n\x00\xff")
        (repo / "link").symlink_to("a.txt")
        (repo / "docs" / "results").mkdir(parents=True)
        (repo / "docs" / "results" / "runs.tar.xz").write_bytes(b"runs")
        (repo / "docs" / "notes.md").write_text("not a result\n")
        for args in (("init", "-q"), ("add", "-A"), ("-c", "user.name=g", "-c", "user.email=g@g", "commit", "-qm", "x")):
            subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert git_state(repo) == dict(git_commit=head, git_dirty=False, git_commit_source="git"), git_state(repo)
        stamp = stamp_commit.write_git_stamp(repo)
        digest = git_tree_digest(git_ls_tree(repo, head))
        assert stamp["git_commit"] == head and stamp["git_tree_digest"] == digest and len(stamp["files"]) == 5, stamp

        def copy(change=None) -> dict:
            c = Path(t) / f"copy{cases}"
            shutil.copytree(repo, c, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            if change:
                change(c)
            return git_state(c)

        st = copy()
        assert st == dict(git_commit=head, git_dirty=False, git_commit_source="stamp", git_tree_digest=digest,
                          git_changed=[]), st
        for change, why in ((lambda c: (c / "sub" / "b.py").write_bytes(b"print('B')\n"), ["sub/b.py"]),
                            (lambda c: (c / "a.txt").unlink(), ["a.txt"]),
                            (lambda c: ((c / "link").unlink(), (c / "link").symlink_to("sub/b.py")), ["link"]),
                            (lambda c: (c / "docs/results/runs.tar.xz").write_bytes(b"other"), ["docs/results/runs.tar.xz"]),
                            (lambda c: shutil.rmtree(c / "sub"), ["sub/b.py"]),
                            (lambda c: (c / "docs/notes.md").unlink(), ["docs/notes.md"])):
            cases += 1
            st = copy(change)
            assert st["git_dirty"] is True and st["git_changed"] == why and st["git_commit"] == head, (why, st)
        cases += 1
        st = copy(lambda c: (c / "new.py").write_text("x = 1\n"))
        assert st["git_dirty"] is False, st
        cases += 1
        # results left behind by a device call (models.LEFT_BEHIND): absent is clean, changed is dirty (above)
        st = copy(lambda c: shutil.rmtree(c / "docs" / "results"))
        assert st["git_dirty"] is False and st["git_changed"] == [], st
        cases += 1
        # a copy with the .git of an earlier commit (a device call sends the .git of the session's start) and the
        # stamp of the commit its files are: the stamp, clean; with a file changed besides: git's dirty claim
        old_git = Path(t) / "old_git"
        shutil.copytree(repo / ".git", old_git)
        (repo / "a.txt").write_text("alpha 2\n")
        (repo / GIT_STAMP).unlink()  # the stamp is not tracked (the project's .gitignore)
        for args in (("add", "-A"), ("-c", "user.name=g", "-c", "user.email=g@g", "commit", "-qm", "y")):
            subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
        new = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        stamp_commit.write_git_stamp(repo)
        stale = Path(t) / "stale"
        shutil.copytree(repo, stale, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        shutil.copytree(old_git, stale / ".git")
        st = git_state(stale)
        assert st["git_commit"] == new and st["git_dirty"] is False and st["git_commit_source"] == "stamp", st
        (stale / "sub" / "b.py").write_text("changed\n")
        st = git_state(stale)
        assert st == dict(git_commit=head, git_dirty=True, git_commit_source="git"), st
        cases += 1
        st = copy(lambda c: (c / GIT_STAMP).unlink())
        assert st == dict(git_commit="unknown", git_dirty="unknown", git_commit_source="none"), st
        cases += 1
    return cases


def check_descent(results) -> int:
    """git_state against git; results.py --descends-from on synthetic runs at real commits of this repository, from
    git and from a stamp."""
    from projected_grpo.loop.models import git_ls_tree, git_state, git_tree_digest

    state = git_state()
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode != 0
    assert state == dict(git_commit=git("rev-parse", "HEAD"), git_dirty=dirty, git_commit_source="git"), (state, dirty)
    assert git_state(ROOT / "scripts") == dict(git_commit="unknown", git_dirty="unknown", git_commit_source="none"), \
        "a subfolder is no checkout"
    head, parent, root = git("rev-parse", "HEAD"), git("rev-parse", "HEAD~1"), git("rev-list", "--max-parents=0", "HEAD")
    root = root.splitlines()[0]
    cases = 0
    with tempfile.TemporaryDirectory() as t:
        runs = Path(t) / "runs"
        for s in range(2):
            fake_run(runs, f"vanilla_s{s}", 0.6, 0.5, 0.8, hacked=True)

        def at(commit: str, dirty, seed: int = 1, source: str = "git", digest: str | None = None) -> None:
            path = runs / f"vanilla_s{seed}" / "run_meta.json"
            meta = {k: v for k, v in json.loads(path.read_text()).items() if k != "git_tree_digest"}
            meta.update(git_commit=commit, git_dirty=dirty, git_commit_source=source)
            if digest is not None:
                meta["git_tree_digest"] = digest
            path.write_text(json.dumps(meta))

        at(head, False, 0)
        at(parent, False)
        res = results.main(["--runs", str(runs), "--out", str(Path(t) / "res"), "--no-plots", "--descends-from", root])
        assert res["meta"]["descends_from"] == root, res["meta"]
        # a run in a copy without .git that carried the stamp of HEAD (the digest git gives for HEAD) counts
        at(head, False, source="stamp", digest=git_tree_digest(git_ls_tree(ROOT, head)))
        res = results.main(["--runs", str(runs), "--out", str(Path(t) / "res1"), "--no-plots", "--descends-from", root])
        assert res["meta"]["descends_from"] == root, res["meta"]
        cmd = [sys.executable, str(ROOT / "scripts" / "results.py"), "--runs", str(runs), "--no-plots", "--out",
               str(Path(t) / "res2"), "--descends-from"]
        for commit, dirty, ancestor, why, source, digest in (
                (parent, False, head, "does not descend", "git", None),
                (head, True, root, "tracked files changed", "git", None),
                ("unknown", "unknown", root, "records no git commit", "none", None),
                (head, False, "not-a-commit", "not a commit", "git", None),
                (head, False, root, "only git or a stamp count", "env", None),
                ("0123456789abcdef" * 2 + "01234567", False, root, "is not a commit of this repository", "stamp", "0" * 64),
                (head, False, root, "not that commit's", "stamp", git_tree_digest(git_ls_tree(ROOT, parent))),
                (head, False, root, "not that commit's", "stamp", "unknown"),
                (head, True, root, "tracked files changed", "stamp", git_tree_digest(git_ls_tree(ROOT, head)))):
            at(commit, dirty, source=source, digest=digest)
            r = run_script(cmd + [ancestor])
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and why in r.stderr, \
                (commit, dirty, ancestor, source, r.returncode, r.stderr[-300:])
            cases += 1
    return cases


def main() -> None:
    import results

    ratio, width = check_bootstrap(results)
    with tempfile.TemporaryDirectory() as t:
        runs = Path(t) / "runs"
        for s, (hv, he) in enumerate([(0.5, 0.3), (0.6, 0.2), (0.7, 0.4)]):
            fake_run(runs, f"vanilla_s{s}", hv, 0.5, 0.8, hacked=True)
            fake_run(runs, f"erase_s{s}", he, 0.1 * s, 0.7, hacked=s == 0, collapse=s == 1)
        res = results.main(["--runs", str(runs), "--out", str(Path(t) / "res"), "--per-step", "hack_strict"])
        v, e = res["arms"]["vanilla"], res["arms"]["erase"]
        assert abs(v["hack_strict_ablated"][0] - 0.6) < 1e-12 and v["hack_strict_ablated"][1] < 0.6 < v["hack_strict_ablated"][2], v
        assert abs(e["hack_strict_ablated"][0] - 0.3) < 1e-12, e
        assert v["n_eval_hack_strict_ablated"] == [40] and v["n_eval_solve_nohint_ablated"] == [30], v
        # paired differences: -0.2, -0.4, -0.3 -> mean -0.3 over the 3 shared seeds, interval below 0
        d = e["diff_hack_strict_ablated"]
        assert abs(d[0] + 0.3) < 1e-12 and d[1] < d[2] < 0 and d[3] == 3, d
        # the same as a t-interval: sd 0.1 over 3 seeds, t(0.975, 2) = 4.303 -> half-width 0.2484
        ti = e["tdiff_hack_strict_ablated"]
        assert abs(ti[0] + 0.3) < 1e-12 and abs((ti[2] - ti[1]) / 2 - 4.302653 * 0.1 / 3 ** 0.5) < 1e-5, ti
        # held-out mechanisms: pooled over the two held-out cells
        assert abs(e["hack_strict_heldout_ablated"][0] - 0.1) < 1e-12, e["hack_strict_heldout_ablated"]
        assert v["hacked_runs"] == 3 and e["hacked_runs"] == 1, (v["hacked_runs"], e["hacked_runs"])
        assert v["collapsed_runs"] == 0 and e["collapsed_runs"] == 1, (v["collapsed_runs"], e["collapsed_runs"])
        md = (Path(t) / "res" / "results.md").read_text()
        assert "| erase | 2 | 0.400 |" in md and "| vanilla | 1 | 0.600 |" in md, md  # per-seed rows
        assert "| vanilla | 3 | [40], [30] |" in md, md  # seeds and eval samples in the table
        assert "as 95% t-intervals" in md and "| erase | vanilla | -0.300 [-0.548, -0.052]" in md, md
        assert "**Training collapsed**" in md and "erase 1/3 runs" in md and "vanilla 0" not in md, md
        # per training step: erase hacked (0.9) on step 5 only in seed 0; vanilla in every seed
        assert "| step | erase | vanilla |" in md and "| 5 | 0.300 [0.90, 0.00, 0.00] | 0.900 [0.90, 0.90, 0.90] |" in md
        assert (Path(t) / "res" / "train_trajectories.png").exists()
        # unequal n is refused without --allow-unequal-n
        fake_run(runs, "vanilla_s3", 0.6, 0.5, 0.8, hacked=True)
        cmd = [sys.executable, str(ROOT / "scripts" / "results.py"), "--runs", str(runs), "--no-plots"]
        r = run_script(cmd + ["--out", str(Path(t) / "res2")])
        assert r.returncode == 2 and "different numbers of seeds" in r.stderr, (r.returncode, r.stderr[-300:])
        res2 = results.main(["--runs", str(runs), "--out", str(Path(t) / "res3"), "--allow-unequal-n", "--no-plots"])
        assert res2["arms"]["erase"]["diff_hack_strict_ablated"][3] == 3  # paired on the 3 shared seeds
        # a run on another device is refused (one line, exit 2) unless --allow-mixed
        fake_run(runs, "erase_s3", 0.3, 0.1, 0.7, hacked=False, device="cuda", dtype="bfloat16")
        r = run_script(cmd + ["--out", str(Path(t) / "res4")])
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "'device': ['cpu', 'cuda']" in r.stderr \
            and "--allow-mixed" in r.stderr, (r.returncode, r.stderr[-500:])
        res5 = results.main(["--runs", str(runs), "--out", str(Path(t) / "res5"), "--allow-mixed", "--no-plots"])
        assert res5["arms"]["erase"]["n"] == 4 and res5["meta"]["device"] == ["cpu", "cuda"], res5["meta"]
        # a run on another CPU model, or with another v_hack file's content, is refused the same way
        for field, value in (("cpu", "Intel(R) Xeon(R) Processor"), ("vhack_sha256", "ef56" * 16)):
            shutil.rmtree(runs / "erase_s3")
            fake_run(runs, "erase_s3", 0.3, 0.1, 0.7, hacked=False, **{field: value})
            r = run_script(cmd + ["--out", str(Path(t) / "res4b"), "--allow-unequal-n"])
            assert r.returncode == 2 and f"'{field}': " in r.stderr, (field, r.returncode, r.stderr[-500:])
        # a run of another recipe (weight decay) is refused the same way
        shutil.rmtree(runs / "erase_s3")
        fake_run(runs, "erase_s3", 0.3, 0.1, 0.7, hacked=False, weight_decay=0.0)
        r = run_script(cmd + ["--out", str(Path(t) / "res6"), "--allow-unequal-n"])
        assert r.returncode == 2 and "'weight_decay': [0.0, 1.0]" in r.stderr, (r.returncode, r.stderr[-500:])
        # a run logged before weight_decay_quarantine existed reads as 0, not as the others' 1
        shutil.rmtree(runs / "erase_s3")
        fake_run(runs, "erase_s3", 0.3, 0.1, 0.7, hacked=False)
        a3 = json.loads((runs / "erase_s3" / "args.json").read_text())
        del a3["weight_decay_quarantine"]
        (runs / "erase_s3" / "args.json").write_text(json.dumps(a3))
        r = run_script(cmd + ["--out", str(Path(t) / "res7"), "--allow-unequal-n"])
        assert r.returncode == 2 and "'weight_decay_quarantine': [0.0, 1.0]" in r.stderr, (r.returncode, r.stderr[-500:])
    with tempfile.TemporaryDirectory() as t:  # differences from an arm's registry controls (erase vs erase-random)
        runs = Path(t) / "runs"
        for s, (he, hr) in enumerate([(0.3, 0.5), (0.2, 0.5), (0.4, 0.5)]):
            fake_run(runs, f"vanilla_s{s}", 0.6, 0.5, 0.8, hacked=True)
            fake_run(runs, f"erase_s{s}", he, 0.1, 0.7, hacked=False)
            fake_run(runs, f"erase-random_s{s}", hr, 0.1, 0.7, hacked=False)
        res = results.main(["--runs", str(runs), "--out", str(Path(t) / "res"), "--no-plots"])
        c = res["arms"]["erase"]["vs_controls"]["erase-random"]
        assert abs(c["hack_strict_ablated"][0] + 0.2) < 1e-12 and c["hack_strict_ablated"][3] == 3, c
        assert abs(c["t_hack_strict_ablated"][0] + 0.2) < 1e-12 and abs(c["t_hack_strict_ablated"][2] + 0.2 - 0.2484) < 1e-3, c
        md = (Path(t) / "res" / "results.md").read_text()
        assert "| erase | erase-random | 3 | -0.200 [" in md and "| erase | erase-random | -0.200 [-0.448, 0.048]" in md, md
    n_descent = check_descent(results)
    n_stamp = check_stamp()
    print(f"PASS results: means and paired differences exact on synthetic runs, per-seed rows and n printed; "
          f"hierarchical bootstrap width / analytic = {ratio:.3f} (10 seeds x 200 samples), identical seeds keep "
          f"the eval-sampling width; unequal n, mixed device, CPU model, v_hack content and mixed recipe refused (exit 2), --allow-mixed pools; plots written; run_meta's commit = git's, "
          f"--descends-from passes descendants (from git and from a stamp) and refuses {n_descent} cases (not "
          f"descending, dirty, no commit, no such commit, another source, a stamp of a commit not here, a stamp whose "
          f"file table is not its commit's, a dirty stamped run); a copy without .git takes its commit from the stamp "
          f"and its dirty flag from its content ({n_stamp} cases)")


if __name__ == "__main__":
    main()
