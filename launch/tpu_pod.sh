#!/usr/bin/env bash
# Train on every worker of an existing Cloud TPU VM slice (single host or pod).
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b [PROJECT=my-project] launch/tpu_pod.sh \
#       --config=configs/mesh.py --workdir=gs://my-bucket/fno/run1
#
# Steps, each one gcloud command over all workers (--worker=all runs them concurrently):
#   1. pack this checkout's working tree (tracked and untracked files, minus what .gitignore
#      excludes: data, runs, checkpoints; and minus a local .venv) into a tarball;
#   2. copy it to every worker and unpack it into REMOTE_DIR;
#   3. make a virtual environment REMOTE_DIR/.venv with Python >= 3.11 (the project's
#      minimum) and `pip install -e ".[gcs]" "jax[tpu]"` into it (skip with SKIP_INSTALL=1 on later
#      runs). The workers' system Python is not used directly: stock TPU VM images ship an
#      older python3, and newer ones refuse system-wide pip installs (PEP 668,
#      "externally-managed-environment"). The venv is made by the first of python3.13,
#      python3.12, python3.11, python3 on the worker that is >= 3.11 and can make one
#      (Debian/Ubuntu need the python3.X-venv package); failing that, `uv` (from PATH or
#      ~/.local/bin, else installed there by the official installer,
#      https://astral.sh/uv/install.sh, which needs internet access, as pip does) downloads
#      a standalone CPython 3.11 and makes the venv. An existing .venv that is >= 3.11 is
#      reused. The venv's Python version is checked before installing;
#   4. run `.venv/bin/python main.py "$@"` in REMOTE_DIR on all workers at once, with
#      FNO_DISTRIBUTED=auto so fno/parallel/distributed.py lets JAX read the pod layout from the TPU
#      metadata server. Output streams here, and each worker also keeps its own log in
#      REMOTE_DIR/logs/worker-<hostname>.log.
#
# Arguments are quoted with printf %q, so spaces and shell metacharacters reach main.py
# unchanged (the workers' login shell must be bash, as on the stock TPU VM images).
# Use a gs:// --workdir (or another shared filesystem): multi-host checkpoints need storage
# that every worker sees. Multi-worker ssh needs your key in an agent first:
# `ssh-add ~/.ssh/google_compute_engine`. Stopping this script (Ctrl-C) does not necessarily
# stop the remote processes; check with `gcloud compute tpus tpu-vm ssh ... --worker=all
# --command 'pgrep -af main.py'`.
#
# Environment:
#   TPU_NAME, ZONE  required: the TPU VM and its zone (exit status 2 if missing)
#   PROJECT         optional GCP project (default: gcloud's configured project)
#   REMOTE_DIR      checkout directory on the workers, relative to the home (default fno)
#   JAX_SPEC        the pip requirement for JAX on TPU (default jax[tpu])
#   SKIP_INSTALL=1  skip step 3 (REMOTE_DIR/.venv must exist from an earlier run)
#   GCLOUD          the gcloud executable (default gcloud)
#   DRY_RUN=1       print the commands, one per line, and run nothing
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "${TPU_NAME:-}" || -z "${ZONE:-}" ]]; then
  echo "tpu_pod.sh: set TPU_NAME and ZONE (and optionally PROJECT) of an existing TPU VM," \
    "e.g. TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_pod.sh --config=... --workdir=..." >&2
  exit 2
fi
gcloud="${GCLOUD:-gcloud}"
remote_dir="${REMOTE_DIR:-fno}"
jax_spec="${JAX_SPEC:-jax[tpu]}"
dry_run="${DRY_RUN:-0}"
remote_archive="fno-src.tar.gz"

target=(--zone "$ZONE")
[[ -z "${PROJECT:-}" ]] || target+=(--project "$PROJECT")

# Print a command as a copy-pasteable shell line.
show() {
  printf '%q' "$1"
  shift
  (($# == 0)) || printf ' %q' "$@"
  echo
}

# Run a command, or only show it under DRY_RUN=1.
run() {
  if [[ "$dry_run" == 1 ]]; then
    show "$@"
  else
    echo "+ $(show "$@")" >&2
    "$@"
  fi
}

# Run a bash command line on all workers.
on_workers() {
  run "$gcloud" compute tpus tpu-vm ssh "$TPU_NAME" "${target[@]}" --worker=all \
    --command "$1"
}

q_dir="$(printf '%q' "$remote_dir")"
args=""
(($# == 0)) || args="$(printf ' %q' "$@")"

# 1. Pack the working tree. Index entries deleted from the working tree are skipped (tar
# would fail on them), and so is a local .venv (it would overwrite the workers' own).
archive="${TMPDIR:-/tmp}/fno-src.$$.tar.gz"
pack="cd $(printf '%q' "$root") && git ls-files -z --cached --others --exclude-standard"
pack+=" | while IFS= read -r -d '' f; do [[ -e \$f && \$f != .venv/* ]] && printf '%s\\0' \"\$f\"; done"
pack+=" | tar --null -T - -czf $(printf '%q' "$archive")"
if [[ "$dry_run" == 1 ]]; then
  echo "$pack"
else
  git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || { echo "tpu_pod.sh: $root is not a git checkout; cannot tell what to ship" >&2; exit 2; }
  trap 'rm -f "$archive"' EXIT
  echo "+ $pack" >&2
  (eval "$pack")
  echo "tpu_pod.sh: packed $(du -h "$archive" | cut -f1) from $root" >&2
fi

# 2. Copy and unpack on every worker.
run "$gcloud" compute tpus tpu-vm scp "$archive" "$TPU_NAME:$remote_archive" "${target[@]}" \
  --worker=all
on_workers "set -euo pipefail; mkdir -p $q_dir && tar -xzf $remote_archive -C $q_dir && rm -f $remote_archive"

# 3. Make the workers' virtual environment and install the package and JAX for TPU into it.
# One line of bash per worker (see the header for the choice of interpreter).
ok_python="import sys; sys.exit(sys.version_info < (3, 11))"
check_python="import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else 'tpu_pod.sh: .venv has Python %d.%d; fno needs >= 3.11' % v[:2])"
install="set -euo pipefail; cd $q_dir"
install+="; if ! .venv/bin/python -c '$ok_python' 2>/dev/null; then rm -rf .venv; py=''"
install+="; for c in python3.13 python3.12 python3.11 python3; do"
install+=" if command -v \"\$c\" >/dev/null && \"\$c\" -c '$ok_python' 2>/dev/null"
install+=" && \"\$c\" -m venv .venv 2>/dev/null; then py=\$c; break; fi; rm -rf .venv; done"
install+="; if [[ -z \$py ]]; then uv=\$(command -v uv || echo \"\$HOME/.local/bin/uv\")"
install+="; if [[ ! -x \$uv ]]; then curl -LsSf https://astral.sh/uv/install.sh"
install+=" | env UV_INSTALL_DIR=\"\$HOME/.local/bin\" UV_NO_MODIFY_PATH=1 sh; fi"
install+="; \"\$uv\" venv --seed --python 3.11 .venv; fi; fi"
install+="; .venv/bin/python -c \"$check_python\""
install+="; .venv/bin/python -m pip install -q -e '.[gcs]' $(printf '%q' "$jax_spec")"
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  on_workers "$install"
fi

# 4. Train on all workers at once, with the venv's Python.
run_main="set -o pipefail; cd $q_dir && mkdir -p logs"
run_main+=" && { [[ -x .venv/bin/python ]] || { echo \"tpu_pod.sh: no \$PWD/.venv on \$(hostname);"
run_main+=" run once without SKIP_INSTALL=1\" >&2; exit 2; }; }"
run_main+=" && FNO_DISTRIBUTED=auto .venv/bin/python main.py$args 2>&1 | tee \"logs/worker-\$(hostname).log\""
on_workers "$run_main"
