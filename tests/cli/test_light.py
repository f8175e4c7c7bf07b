"""The CLI is light: importing it, asking for help or a dry run loads no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from typer.testing import CliRunner
from syncanim.cli import app
assert "torch" not in sys.modules, "importing syncanim.cli loaded torch"
for args in (["--help"], ["prep", "v.mp4", "--dry-run"], ["train", "ds", "--out", "m", "--dry-run"],
             ["render", "m", "--dry-run"], ["eval", "--video", "v.mp4", "--dry-run"], ["bench", "--dry-run"],
             ["sample", "--dry-run"], ["demo", "--dry-run"]):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, (args, r.output)
    if args[0] != "demo":
        assert "torch" not in sys.modules, f"{args} loaded torch"
"""


def test_cli_imports_no_torch():
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
