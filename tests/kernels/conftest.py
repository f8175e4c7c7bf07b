"""What the kernel tests share: running a script under Triton's interpreter."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def interpreted():
    """A function that runs a script in a fresh Python process with ``TRITON_INTERPRET=1`` (it must be set before
    any kernel is defined, so not in this process) and checks that it succeeded and printed ``ok`` last. Skips
    the test where Triton is not installed."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")

    def run(script: str) -> None:
        env = dict(os.environ, TRITON_INTERPRET="1")
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert proc.stdout.strip().endswith("ok")

    return run
