"""Gate: the artifacts results depend on are the pinned ones, and a model spec never loads anything else.

1. Every organism folder shipped in data/organisms has the weights sha256 it is pinned by (organism.pinned.PINNED
   and FURTHER), its build record says the same, and the README names the pinned CPU organism's hash.
2. data/leetcode_test_medhard.jsonl has the sha256 pairs.LEETCODE_SHA256 records.
3. Resolving refuses: a folder whose weights were changed by one value (in place of the pinned tiny organism, and
   as an organism:gpu build), a shipped folder whose config differs from data/organisms/SHA256SUMS, an unknown size,
   a malformed or unknown hash prefix; nothing is built while resolving.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from projected_grpo.loop.models import load_frozen  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import pairs  # noqa: E402
from projected_grpo.method.vhack import model_identity  # noqa: E402
from projected_grpo.organism import pinned  # noqa: E402
from projected_grpo.organism.pinned import weights_sha256  # noqa: E402


def check_shipped() -> list[str]:
    want = {pinned.PINNED["cpu"], pinned.PINNED["tiny"], *pinned.FURTHER["cpu"]}
    found = sorted(f for f in pinned.SHIPPED.iterdir() if f.is_dir())
    assert {f.name.split("-")[0] for f in found} <= set(pinned.PINNED), [f.name for f in found]
    got = set()
    for folder in found:
        h = weights_sha256(folder)
        assert folder.name == f"{folder.name.split('-')[0]}-{h[:8]}", f"{folder}: weights sha256 {h[:16]} does not match its name"
        record = __import__("json").loads((folder / "organism.json").read_text())
        assert record["weights_sha256"] == h, f"{folder}/organism.json records {record['weights_sha256'][:16]}, weights are {h[:16]}"
        got.add(h)
    assert got == want, f"shipped {sorted(x[:8] for x in got)}, pinned {sorted(x[:8] for x in want)}"
    for folder in found:
        bad = pinned.shipped_files_differ(folder)
        assert not bad, f"{folder}: {', '.join(bad)} not as pinned in data/organisms/SHA256SUMS"
    readme = (ROOT / "README.md").read_text()
    assert pinned.PINNED["cpu"][:16] in readme, "README.md does not name the pinned CPU organism's weights sha256"
    return sorted(f.name for f in found)


def check_data() -> None:
    h = pinned.file_sha256(pairs.DEFAULT_LEETCODE)
    assert h == pairs.LEETCODE_SHA256, f"{pairs.DEFAULT_LEETCODE}: sha256 {h[:16]}, pinned {pairs.LEETCODE_SHA256[:16]}"


def tampered_copy(src: Path, dst: Path) -> None:
    """`src` copied to `dst` with one weight changed by one float32 step."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    w = load_file(str(dst / "model.safetensors"))
    name = sorted(w)[0]
    w[name] = w[name].clone()
    w[name].view(-1)[0] = torch.nextafter(w[name].view(-1)[0], torch.tensor(1e9))
    save_file(w, str(dst / "model.safetensors"), metadata={"format": "pt"})


def refused(spec: str) -> str:
    try:
        pinned.resolve(spec)
    except pinned.OrganismError as e:
        return str(e)
    raise AssertionError(f"{spec} resolved although it should be refused")


def check_refusals() -> int:
    tiny = pinned.resolve("organism:tiny")
    real_built = sorted(pinned.BUILT.glob("*")) if pinned.BUILT.exists() else []
    with tempfile.TemporaryDirectory() as t:
        shipped, built = Path(t) / "shipped", Path(t) / "built"
        shipped.mkdir()
        built.mkdir()
        old = pinned.SHIPPED, pinned.BUILT
        pinned.SHIPPED, pinned.BUILT = shipped, built
        try:
            tampered_copy(tiny, shipped / tiny.name)          # same folder name, one weight changed
            msg = refused("organism:tiny")
            assert tiny.name in msg, msg
            shutil.rmtree(shipped / tiny.name)                # same weights, the config changed
            shutil.copytree(tiny, shipped / tiny.name)
            sums = [line for line in (old[0] / "SHA256SUMS").read_text().splitlines() if f"/{tiny.name}/" in line]
            (shipped / "SHA256SUMS").write_text("\n".join(sums) + "\n")
            assert pinned.resolve("organism:tiny") == shipped / tiny.name  # as pinned: resolves
            cfg = shipped / tiny.name / "config.json"
            cfg.write_text(cfg.read_text().replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05'))
            assert "config.json" in refused("organism:tiny")
            shutil.rmtree(shipped / tiny.name)
            tampered_copy(tiny, built / "gpu-0000000000")     # a gpu build whose hash is not the pinned one
            assert "gpu-0000000000" in refused("organism:gpu")
            shutil.copytree(tiny, built / "tiny-1111111111")  # an untampered build of the pinned weights resolves
            assert pinned.resolve("organism:tiny") == built / "tiny-1111111111"
            for spec in ("organism:huge", "organism:cpu@xyz", "organism:cpu@1234", "organism:cpu@12345678"):
                refused(spec)
            assert sorted(p.name for p in built.iterdir()) == ["gpu-0000000000", "tiny-1111111111"], \
                f"resolving wrote into the build folder: {sorted(p.name for p in built.iterdir())}"
        finally:
            pinned.SHIPPED, pinned.BUILT = old
    now = sorted(pinned.BUILT.glob("*")) if pinned.BUILT.exists() else []
    assert now == real_built, f"resolving built something under {pinned.BUILT}: {set(now) - set(real_built)}"
    return 7


def check_vhack_identity() -> None:
    """A v_hack file's model identity names the model, not the folder it was loaded from: the same organism loaded
    from a copy elsewhere (another checkout) has the same identity; another weight gives another."""
    ids = []
    with tempfile.TemporaryDirectory() as t:
        copy = Path(t) / "elsewhere"
        shutil.copytree(pinned.resolve("organism:tiny"), copy)
        for folder in (pinned.resolve("organism:tiny"), copy):
            model, _ = load_frozen(str(folder), torch.float32, "cpu")
            ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=4, quarantine="own", cache_dir=None))
            ids.append(model_identity(model))
    with torch.no_grad():
        next(iter(ad.adapter_modules(model).values())).base.weight.add_(1e-3)
    assert ids[0] == ids[1], f"one organism in two folders has two v_hack identities {ids}"
    assert model_identity(model) != ids[0], "another weight kept the v_hack identity"


def main() -> None:
    names = check_shipped()
    check_data()
    n = check_refusals()
    check_vhack_identity()
    print(f"PASS pinned: {len(names)} shipped organisms match their weights sha256 ({', '.join(names)}); cpu "
          f"{pinned.PINNED['cpu'][:16]} named in the README; LeetCode data {pairs.LEETCODE_SHA256[:16]}; "
          f"every shipped file as in SHA256SUMS; {n} bad specs and tampered folders refused; v_hack identity "
          f"the same from another folder, changed by a weight")


if __name__ == "__main__":
    main()
