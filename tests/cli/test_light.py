"""The CLI is light: importing it, asking for help or a dry run, or naming a missing or empty input loads no torch."""

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

ERRORS = """
import sys
from typer.testing import CliRunner
from syncanim.cli import app
import pathlib, tempfile
tmp = pathlib.Path(tempfile.mkdtemp())
(tmp / "empty.mp4").write_bytes(b"")
(tmp / "ds").mkdir()
(tmp / "ds" / "manifest.json").write_text("{}")
for args, code in ((["prep", str(tmp / "empty.mp4")], 4), (["prep", str(tmp / "nope.mp4")], 4),
                   (["render", str(tmp / "ds"), "--audio", "a.wav"], 7), (["render", str(tmp / "nope"), "--audio", "a.wav"], 7),
                   (["eval", "--video", str(tmp / "empty.mp4")], 4), (["eval", str(tmp / "ds")], 7),
                   (["bench", str(tmp / "nope")], 7), (["train", str(tmp / "nope"), "--out", "m"], 4)):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == code, (args, r.output)
    assert "torch" not in sys.modules, f"{args} loaded torch before failing"
"""


def test_cli_imports_no_torch():
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_wrong_input_fails_before_loading_torch():
    r = subprocess.run([sys.executable, "-c", ERRORS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
