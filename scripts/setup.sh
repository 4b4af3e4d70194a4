#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (root or sudo for apt).
# torch is pinned to the CPU build on local disk first, so no multi-GB CUDA wheel is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=""
command -v bwrap >/dev/null || need="$need bubblewrap"
command -v tsp >/dev/null || need="$need task-spooler"
if [ -n "$need" ]; then
  $SUDO apt-get install -y -q $need >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $need >/dev/null; }
fi
# (find_spec, not an import: importing torch takes about 2 s)
python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" || python3 -m pip install -q "torch==2.13.0"
# every dependency already satisfied (and the build backend present): install this checkout alone, without pip's
# resolver and build isolation (about 4 s instead of 14 on the 2-core machine); otherwise the full install
deps_met() {
  python3 - <<'PY' 2>/dev/null
import tomllib
from importlib.metadata import version
from packaging.requirements import Requirement
t = tomllib.load(open("pyproject.toml", "rb"))
for r in map(Requirement, t["project"]["dependencies"] + t["build-system"]["requires"] + ["setuptools>=70.1"]):
    assert not r.extras and r.marker is None, f"{r}: extras or markers are left to pip"
    assert r.specifier.contains(version(r.name), prereleases=True), r
PY
}
if deps_met; then flags="--no-deps --no-build-isolation"; else flags=""; fi
# (setuptools >= 70.1 builds an editable wheel without the wheel package, which --no-build-isolation would not install)
out=$(python3 -m pip install -q -e . $flags 2>&1) || { printf '%s\n' "$out" >&2; echo "setup: pip install -e . failed" >&2; exit 1; }
grep -v "Running pip as the 'root' user" <<<"$out" || true
command -v just >/dev/null || pyenv rehash 2>/dev/null || true
command -v just >/dev/null || { echo "setup: 'just' not on PATH after installing rust-just" >&2; exit 1; }
echo "setup: ok (python $(python3 -c 'import sys;print(sys.version.split()[0])'), torch $(python3 -c 'from importlib.metadata import version;print(version("torch"))'), bwrap: $(command -v bwrap || echo missing), tsp: $(command -v tsp || echo missing))"
