"""`reproduce.sh mnist` derives both output folders from --profile / --out and passes each
runner call its own folder once (the recorded command in a results README names one --out)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """reproduce.sh run with a stand-in `python` on PATH that logs each call's arguments."""
    stub = tmp_path / "python"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$LOG"\n')
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "LOG": str(log)}
    done = subprocess.run(["bash", str(ROOT / "reproduce.sh"), *args], env=env, cwd=tmp_path, capture_output=True, text=True)
    return done, log


def _commands(tmp_path: Path, *args: str) -> list[list[str]]:
    """The runner calls reproduce.sh makes."""
    done, log = _run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in log.read_text().splitlines()]


def _out(call: list[str]) -> list[str]:
    return [call[i + 1] for i, a in enumerate(call) if a == "--out"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    "args, main, modern",
    [
        ((), "results/mnist", "results/mnist-modern"),
        (("--profile", "paper", "--jobs", "8"), "results/mnist-paper", "results/mnist-paper-modern"),
        (("--out", "x/run"), "x/run", "x/run-modern"),
        (("--out=x/run", "--seeds", "1"), "x/run", "x/run-modern"),
    ],
)
def test_mnist_runs_both_sweeps_each_with_one_out(tmp_path: Path, args: tuple[str, ...], main: str, modern: str) -> None:
    first, second = _commands(tmp_path, "mnist", *args)
    assert first[:6] == ["-m", "benchmarks.run", "--dataset", "mnist", "--systems", "paper"]
    assert second[5] == "modern"
    assert _out(first) == [main] and _out(second) == [modern]
    assert first.count(main) == 1 and second.count(modern) == 1 and main not in second  # no stray folder argument
    assert second[second.index("--compare-with") + 1] == f"{main}:hqa,vqvae,kmeans"
    kept = [a for a in args if not a.startswith("--out") and a != "x/run"]
    for call in (first, second):  # every other flag reaches both runs
        assert all(a in call for a in kept)


def test_smoke_is_the_smoke_profile_without_inception(tmp_path: Path) -> None:
    first, second = _commands(tmp_path, "smoke")
    for call in (first, second):
        assert call[call.index("--profile") + 1] == "smoke" and "--no-inception" in call
    assert _out(first) == ["results/mnist-smoke"] and _out(second) == ["results/mnist-smoke-modern"]


def test_a_trailing_out_without_a_folder_is_refused(tmp_path: Path) -> None:
    done, log = _run(tmp_path, "mnist", "--out")
    assert done.returncode == 2 and "--out needs a folder" in done.stderr
    assert not log.exists()  # no runner started
