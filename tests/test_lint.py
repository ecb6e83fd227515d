"""The code base stays ruff-clean (PEP 8, imports, pyupgrade, bugbear)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or f"{sys.executable} -m ruff"
    result = subprocess.run(f"{ruff} check --no-cache .", shell=True, cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
