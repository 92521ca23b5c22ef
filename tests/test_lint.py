"""ruff's lint rules (pyproject.toml) hold on the whole checkout."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    pytest.importorskip("ruff", reason="ruff comes with the test extra")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: the longest a module of the package may be (issue 19): past it, split at a seam
MAX_LINES = 900


def test_no_module_of_the_package_is_over_900_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "nlm").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them where they have a seam): {long}"
