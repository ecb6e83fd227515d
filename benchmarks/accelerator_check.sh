#!/usr/bin/env bash
# One-shot accelerator check (benchmarks/accelerator_check.py): on a GPU or TPU machine with
# fno installed, from the repository root,
#
#   benchmarks/accelerator_check.sh [--output=FILE]
#
# writes benchmarks/results/accelerator_<device>.json (about 8 minutes on a GPU; several
# times longer on a 2-core CPU, where it runs unchanged). Where the image lacks some of fno's
# pure-Python dependencies, put their wheels in WHEELS=<dir>: they are installed offline into
# a private site directory first. Commit the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${WHEELS:-}" ]]; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
exec python3 benchmarks/accelerator_check.py "$@"
