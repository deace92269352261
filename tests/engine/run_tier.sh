#!/usr/bin/env bash
# The real-engine tier: build (or reuse) llama-server + SmolLM2-135M, then run tests/engine.
#
#   tests/engine/run_tier.sh [pytest args...]
#
# .ci/run starts this in the background while the main suite runs; the main suite deselects
# the tier (pyproject addopts: -m "not engine"). The build runs here, outside pytest, because a
# cold one takes 13-40 minutes on 2 cores; once cached (by version, under
# $OLLAMAKIT_ENGINE_CACHE or ~/.cache/ollamakit-engine) it takes a second. The build is bounded
# by OLLAMAKIT_ENGINE_BUILD_TIMEOUT seconds (default 4500 = 75 min), every test by
# pytest-timeout. Exit status: pytest's, or the build's when the build failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$(date +%s)
out=$(timeout -k 30 "${OLLAMAKIT_ENGINE_BUILD_TIMEOUT:-4500}" bash tests/engine/build_engine.sh)
server=$(sed -n 's/^server=//p' <<<"$out" | tail -n1)
model=$(sed -n 's/^model=//p' <<<"$out" | tail -n1)
if [ -z "$server" ] || [ -z "$model" ]; then
  echo "engine tier: build_engine.sh gave no server/model paths" >&2
  exit 2
fi
echo "engine tier: llama-server and model ready after $(( $(date +%s) - started )) s" >&2
echo "engine tier: server=$server" >&2
echo "engine tier: model=$model" >&2

export OLLAMAKIT_ENGINE_SERVER="$server" OLLAMAKIT_ENGINE_MODEL="$model"
report=${OLLAMAKIT_ENGINE_REPORT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ollamakit-engine.XXXXXX")}
export OLLAMAKIT_ENGINE_REPORT_DIR="$report"
status=0
uv run pytest -q tests/engine -m engine -p no:cacheprovider "$@" || status=$?
if [ -f "$report/fidelity.json" ]; then
  echo "engine tier: fidelity figures ($report/fidelity.json):" >&2
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("rows"); print(json.dumps(d))' \
    "$report/fidelity.json" >&2
fi
exit "$status"
