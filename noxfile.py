"""Developer sessions: ``nox -s lint``, ``nox -s tests``, ``nox -s tests_gpu``, ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

CPU_TORCH = ["torch==2.13.0"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "syncanim", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(*CPU_TORCH)
    session.install("-e", ".[dev]", "mypy")
    session.run("mypy", "--ignore-missing-imports", "syncanim")


@nox.session
def tests(session: nox.Session) -> None:
    """The CPU test suite (GPU tests are skipped without CUDA)."""
    session.install(*CPU_TORCH)
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def tests_gpu(session: nox.Session) -> None:
    """Only the GPU tests (fast paths against their torch references); needs CUDA."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-m", "gpu", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark scenarios under benchmarks/ (pass a video path after --)."""
    session.install(*CPU_TORCH)
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/prep_speed.py", *session.posargs)
