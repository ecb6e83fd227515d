#!/usr/bin/env bash
# Train on every worker of an existing Cloud TPU VM slice (single host or pod).
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b [PROJECT=my-project] launch/tpu_pod.sh \
#       --config=configs/mesh.py --workdir=gs://my-bucket/fno/run1
#
# Steps, each one gcloud command over all workers (--worker=all runs them concurrently):
#   1. pack this checkout's working tree (tracked and untracked files, minus what .gitignore
#      excludes: data, runs, checkpoints) into a tarball;
#   2. copy it to every worker and unpack it into REMOTE_DIR;
#   3. `pip install -e . "jax[tpu]"` there (skip with SKIP_INSTALL=1 on later runs);
#   4. run `python3 main.py "$@"` in REMOTE_DIR on all workers at once, with
#      FNO_DISTRIBUTED=auto so fno/distributed.py lets JAX read the pod layout from the TPU
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
#   SKIP_INSTALL=1  skip step 3
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
# would fail on them).
archive="${TMPDIR:-/tmp}/fno-src.$$.tar.gz"
pack="cd $(printf '%q' "$root") && git ls-files -z --cached --others --exclude-standard"
pack+=" | while IFS= read -r -d '' f; do [[ -e \$f ]] && printf '%s\\0' \"\$f\"; done"
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

# 3. Install the package and JAX for TPU.
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  on_workers "set -euo pipefail; cd $q_dir && python3 -m pip install -q -e . $(printf '%q' "$jax_spec")"
fi

# 4. Train on all workers at once.
on_workers "set -o pipefail; cd $q_dir && mkdir -p logs && FNO_DISTRIBUTED=auto python3 main.py$args 2>&1 | tee \"logs/worker-\$(hostname).log\""
