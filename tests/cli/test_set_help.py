"""Each command's ``--set`` help shows a setting that command reads, and the example is a valid override."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from syncanim.cli import app

COMMANDS = {
    "prep": ["prep", "v.mp4"], "train": ["train", "ds", "--out", "m"], "render": ["render", "m"],
    "eval": ["eval", "--video", "v.mp4"], "bench": ["bench"], "sample": ["sample"], "demo": ["demo"],
    "live": ["live", "m"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_set_example_belongs_to_the_command(name):
    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, [name, "--help"], terminal_width=200).output.split())
    example = re.search(r"e\.g\. --set (\S+?)=(\S+?)\.(?:\s|$)", help_text)
    assert example, help_text
    key, value = example.groups()
    section = key.split(".")[0]
    # the example is a setting of this command's own section (demo runs the whole workflow)
    assert section == {"eval": "eval", "demo": "train"}.get(name, name), key
    r = runner.invoke(app, [*COMMANDS[name], "--set", f"{key}={value}", "--dry-run"])
    assert r.exit_code == 0, r.output
    leaf = key.split(".")[-1]
    assert re.search(rf"^{leaf} = \"?{re.escape(value)}\"?$", r.output, re.M), r.output
