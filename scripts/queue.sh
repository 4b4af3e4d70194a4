#!/usr/bin/env bash
# Job queue front end: pueue when installed, Debian's task-spooler (tsp) otherwise.
#   queue.sh add RECIPE [ARGS...]   label "why:$WHY resolve:$RESOLVE" (set both; they say why the job
#                                   exists and what its result resolves, e.g. an issue or a journal entry)
#   queue.sh status                 the queue
#   queue.sh follow ID              wait for job ID, print its output, exit with its status
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: queue.sh add|status|follow}; shift
if command -v pueue >/dev/null && pueue status >/dev/null 2>&1; then backend=pueue; else backend=tsp; fi
command -v $backend >/dev/null || { echo "queue: neither pueue nor tsp is installed (run scripts/setup.sh)" >&2; exit 2; }
case "$cmd" in
  add)
    [ $# -ge 1 ] || { echo "queue: add needs a recipe" >&2; exit 2; }
    if [ -z "${WHY:-}" ] || [ -z "${RESOLVE:-}" ]; then
      echo "queue: set WHY='...' and RESOLVE='...' (the job label carries why: and resolve:)" >&2; exit 2
    fi
    label="why:${WHY} resolve:${RESOLVE}"
    if [ $backend = pueue ]; then pueue add --label "$label" -- just "$@"
    else id=$(tsp -L "$label" just "$@"); echo "queued job $id ($label): just $*"; fi ;;
  status) if [ $backend = pueue ]; then pueue status; else tsp -l; fi ;;
  follow)
    id=${1:?usage: queue.sh follow ID}
    if [ $backend = pueue ]; then pueue follow "$id"; pueue wait "$id"
    else tsp -w "$id" || true; cat "$(tsp -o "$id")"; exit "$(tsp -i "$id" | sed -n 's/.*exit code \([0-9-]*\).*/\1/p' | head -1)"; fi ;;
  *) echo "queue: unknown command $cmd" >&2; exit 2 ;;
esac
