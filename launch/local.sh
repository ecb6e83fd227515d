#!/usr/bin/env bash
# Run a multi-process job on this machine: NUM_PROCESSES CPU processes that talk to each other
# through JAX's distributed runtime on localhost (gloo collectives), each with
# DEVICES_PER_PROCESS forced host devices. It exercises the multi-host code paths (process
# shards, global arrays, cross-process collectives, checkpoints) without a cluster.
#
#   NUM_PROCESSES=2 DEVICES_PER_PROCESS=4 launch/local.sh \
#       --config=configs/mesh.py --workdir=/tmp/fno-local
#
# All arguments go to `python main.py`. The current directory is kept, so relative
# --config/--workdir paths mean what they mean in your shell; main.py and the fno package are
# found from this script's location (PYTHONPATH is extended with the repository root).
#
# Environment:
#   NUM_PROCESSES        processes to start (default 2)
#   DEVICES_PER_PROCESS  CPU devices per process, via --xla_force_host_platform_device_count
#                        appended to XLA_FLAGS (default 4)
#   PORT                 coordinator port on 127.0.0.1 (default: a free port picked by Python)
#   PYTHON               interpreter (default: python, else python3)
#   FNO_MAIN             script to run instead of <repo>/main.py (used by the tests)
#   GRACE_SECONDS        after the first process fails (or a signal arrives), how long the
#                        others may finish on their own before SIGTERM (default 10); SIGKILL
#                        follows KILL_SECONDS (default 10) later. Without this, peers of a
#                        crashed process would block in collectives until JAX's heartbeat
#                        timeout (100 s by default) or forever.
#   DRY_RUN=1            print the commands instead of running them
#
# Each process's stdout and stderr lines are prefixed with "[p<i>] " and go to the launcher's
# stdout and stderr respectively. Exit status: 0 if all processes succeed, else the status of
# the first one that failed (128+signal if the launcher was interrupted). SIGINT/SIGTERM are
# forwarded to every process as SIGTERM (which lets a trainer with a preemption handler
# checkpoint); a second signal kills them. A Ctrl-C in a terminal, which signals the whole
# process group, counts once, and the processes' output keeps flowing while they save.
# If local.sh is started with SIGINT ignored, as a script's background jobs (`local.sh ... &`)
# and whatever they start are, it leaves SIGINT ignored, says so in one line on stderr, and
# still forwards SIGTERM: bash cannot trap a signal that was ignored when it started, and the
# processes inherit the ignored SIGINT (Python keeps it ignored), so a Ctrl-C or SIGINT stops
# neither the launcher nor them, as the caller who put it in the background intended.
# Each process gets FNO_COORDINATOR_ADDRESS, FNO_NUM_PROCESSES and FNO_PROCESS_ID (read by
# fno/parallel/distributed.py), and JAX_PLATFORMS=cpu.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
  echo "local.sh: $*" >&2
  exit 2
}

num_processes="${NUM_PROCESSES:-2}"
devices="${DEVICES_PER_PROCESS:-4}"
grace="${GRACE_SECONDS:-10}"
kill_after="${KILL_SECONDS:-10}"
for pair in "NUM_PROCESSES=$num_processes" "DEVICES_PER_PROCESS=$devices" \
  "GRACE_SECONDS=$grace" "KILL_SECONDS=$kill_after"; do
  [[ "${pair#*=}" =~ ^[0-9]+$ ]] || die "${pair%%=*} must be a non-negative integer, got '${pair#*=}'"
done
((num_processes >= 1)) || die "NUM_PROCESSES must be >= 1"
((devices >= 1)) || die "DEVICES_PER_PROCESS must be >= 1"

if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif command -v python >/dev/null 2>&1; then
  python=python
else
  python=python3
fi
main="${FNO_MAIN:-$root/main.py}"
[[ -f "$main" ]] || die "no such script: $main"

port="${PORT:-}"
if [[ -z "$port" ]]; then
  # Bind port 0 and report what the kernel chose; the tiny window before process 0 binds it
  # is acceptable for a developer tool (set PORT to pin one).
  port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
  die "PORT must be 1..65535, got '$port'"
fi

xla_flags="${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$devices"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu XLA_FLAGS="$xla_flags"
export FNO_COORDINATOR_ADDRESS="127.0.0.1:$port" FNO_NUM_PROCESSES="$num_processes"
# JAX's coordinator would listen on every interface; a local job needs only loopback.
export JAX_COORDINATOR_BIND_ADDRESS="${JAX_COORDINATOR_BIND_ADDRESS:-127.0.0.1:$port}"

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  for ((i = 0; i < num_processes; i++)); do
    cmd=(env "JAX_PLATFORMS=cpu" "XLA_FLAGS=$xla_flags" "PYTHONPATH=$PYTHONPATH"
      "FNO_COORDINATOR_ADDRESS=$FNO_COORDINATOR_ADDRESS"
      "JAX_COORDINATOR_BIND_ADDRESS=$JAX_COORDINATOR_BIND_ADDRESS"
      "FNO_NUM_PROCESSES=$num_processes" "FNO_PROCESS_ID=$i" "$python" "$main" "$@")
    printf '%q' "${cmd[0]}"
    printf ' %q' "${cmd[@]:1}"
    echo
  done
  exit 0
fi

# Prefix each line read on stdin; `read` returns per line, so output stays line-buffered.
# The reader ignores SIGINT and SIGTERM: a Ctrl-C in a terminal signals the whole foreground
# process group, and a reader that died of it would take the process's output (and, on
# the next write, the process itself, through EPIPE) with it while it is still saving. It
# exits at end of file instead, when its process has exited.
prefix() {
  trap '' INT TERM
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '%s%s\n' "$1" "$line"
  done
}

live=()               # pids of the started processes; entries are cleared once reaped
status=0
stop_at=-1            # $SECONDS at which to send SIGTERM to the survivors
kill_at=-1            # $SECONDS at which to send SIGKILL
signals=0             # SIGINT/SIGTERM received so far
starting=1            # set while processes are being started
last_signal=""

signal_all() {
  local sig="$1" pid
  for pid in ${live[@]+"${live[@]}"}; do
    [[ -n "$pid" ]] && kill "-$sig" "$pid" 2>/dev/null || true
  done
}

# The first signal asks every process to stop (SIGTERM); any further one kills them.
forward() {
  local sig="$1"
  if ((signals == 1)); then
    echo "local.sh: got SIG$sig, sending SIGTERM to all processes" >&2
    signal_all TERM
    stop_at=$((SECONDS + grace))
  else
    echo "local.sh: got SIG$sig again, killing all processes" >&2
    signal_all KILL
  fi
}

# Background jobs of a non-interactive shell start with SIGINT ignored (and Python then keeps
# it ignored), so both SIGINT and SIGTERM reach the processes as SIGTERM. While processes are
# being started, a signal is only recorded: the start loop then stops, and the signal is
# forwarded once every started pid is in $live (a trap run between `cmd &` and `live+=`
# would otherwise miss the newest process).
# shellcheck disable=SC2329  # invoked by the traps below
on_signal() {
  local sig="$1" code="$2"
  signals=$((signals + 1))
  last_signal="$sig"
  ((status != 0)) || status="$code"
  ((starting)) || forward "$sig"
}
# The traps go in before the first process starts. A signal that reached this shell while it
# still had the default disposition would kill it and leave the processes (which ignore
# SIGINT) running, still holding the caller's stdout and stderr open.
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
# A signal ignored when a non-interactive bash started cannot be trapped: the trap above is
# then silently not set (see the header).
if [[ "$(trap -p INT)" != *on_signal* ]]; then
  echo "local.sh: SIGINT is ignored (inherited from the caller), so Ctrl-C and SIGINT will" \
    "not stop the processes; send SIGTERM to stop them" >&2
fi

for ((i = 0; i < num_processes && signals == 0; i++)); do
  # stdout and stderr keep their own pipes (and prefixers): on one pipe, the unbuffered
  # writes of Python and of C++ libraries (gloo logs a line in several writes) would split
  # each other's lines.
  FNO_PROCESS_ID="$i" "$python" "$main" "$@" > >(prefix "[p$i] ") 2> >(prefix "[p$i] " >&2) &
  live+=("$!")
done
starting=0
((signals == 0)) || forward "$last_signal"

remaining="${#live[@]}"
while ((remaining > 0)); do
  for i in "${!live[@]}"; do
    pid="${live[$i]}"
    [[ -n "$pid" ]] || continue
    # Bash reaps background jobs as they exit (SIGCHLD) and keeps their status for `wait`,
    # so a process that has exited fails `kill -0` and `wait` then returns its status. The
    # pid could only be mistaken for a live one if the kernel reused it within one poll.
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    live[i]=""
    remaining=$((remaining - 1))
    if ((rc != 0 && status == 0)); then
      status="$rc"
      echo "local.sh: process $i exited with status $rc; stopping the others in ${grace}s" >&2
      stop_at=$((SECONDS + grace))
    fi
  done
  if ((remaining > 0 && stop_at >= 0 && SECONDS >= stop_at)); then
    echo "local.sh: sending SIGTERM to the remaining processes" >&2
    signal_all TERM
    stop_at=-1
    kill_at=$((SECONDS + kill_after))
  fi
  if ((remaining > 0 && kill_at >= 0 && SECONDS >= kill_at)); then
    echo "local.sh: sending SIGKILL to the remaining processes" >&2
    signal_all KILL
    kill_at=-1
  fi
  if ((remaining > 0)); then
    # Poll without a foreground command: bash runs a trap only once the foreground command
    # has finished, but the `wait` builtin returns as soon as a trapped signal arrives. The
    # timer's output goes nowhere, so a timer outliving this script holds no caller's pipe.
    sleep 0.2 >/dev/null 2>&1 &
    wait "$!" || true
  fi
done
exit "$status"
