"""--reproduce retrains: a finished run's rows become the reference, an interrupted run of the
folder's own resumes, and reproduction.md gives each value's verdict against the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.progress import ProgressBoard, ProgressFile, read_states
from benchmarks.reproduction import REL_TOL, compare, report_text, verdict, write_reproduction
from benchmarks.store import ResultStore

MANIFEST = {"profile": "smoke", "dataset": "mnist", "train_size": 8, "eval_size": 4, "code_version": "v1",
            "steps": [1], "independent_steps": 1, "batch_size": 8, "preprocess": "resize"}


def rows(system: str, values: dict[int, float], metric: str = "mse") -> list[dict]:
    return [{"system": system, "seed": s, "layer": 1, "bits": 8, "metric": metric, "feature_space": "", "value": v,
             "profile": "smoke", "dataset": "mnist", "train_size": 8, "code_version": "v1", "host": "h"}
            for s, v in values.items()]


def finished_run(root: Path, values: dict[int, float], manifest: dict = MANIFEST) -> ResultStore:
    store = ResultStore(root)
    store.claim(manifest)
    for seed, v in values.items():
        store.write_rows(store.cell_path("hqa", seed), rows("hqa", {seed: v}) + rows("hqa", {seed: 99.0}, "train_seconds"))
    return store


def test_verdicts_against_a_hand_computed_t_interval() -> None:
    ref = pd.Series({0: 1.0, 1: 2.0, 2: 3.0})
    # mean 2, sd 1, t(0.975, 2) = 4.302653: interval 2 +- 2.484
    half = 4.302653 / 3 ** 0.5
    assert verdict(ref.copy(), ref)[0] == "identical"
    _, mean, lo, hi = verdict(pd.Series({0: 4.4, 1: 4.4, 2: 4.4}), ref)
    assert mean == 2.0 and lo == pytest.approx(2 - half, rel=1e-6) and hi == pytest.approx(2 + half, rel=1e-6)
    assert verdict(pd.Series({0: 4.4, 1: 4.4, 2: 4.4}), ref)[0] == "within"  # 4.4 < 4.484
    assert verdict(pd.Series({0: 4.6, 1: 4.6, 2: 4.6}), ref)[0] == "outside"  # 4.6 > 4.484
    one = pd.Series({0: 10.0})  # a degenerate interval: the relative tolerance decides
    assert verdict(pd.Series({0: 10.0 * (1 + REL_TOL * 0.9)}), one)[0] == "within"
    assert verdict(pd.Series({0: 10.0 * (1 + REL_TOL * 1.1)}), one)[0] == "outside"


def test_a_finished_run_becomes_the_reference_and_an_interrupted_one_resumes(tmp_path: Path) -> None:
    store = finished_run(tmp_path, {0: 0.5, 1: 0.7})
    store.finish()
    assert "kept them as" in store.keep_reference()
    assert not store.rows_dir.exists() and (tmp_path / "reference" / "rows" / "hqa-seed0.csv").exists()
    # the new run starts: it is unfinished until finish(), so a second --reproduce resumes it
    store.claim(MANIFEST)
    store.begin()
    store.write_rows(store.cell_path("hqa", 0), rows("hqa", {0: 0.5}))
    assert store.keep_reference() is None and store.cell_path("hqa", 0).exists()
    store.finish()  # finished: the next --reproduce makes it the reference, replacing the old one
    assert store.keep_reference() is not None
    assert not (tmp_path / "reference" / "rows" / "hqa-seed1.csv").exists()


def test_report_gives_verdicts_and_leaves_out_timings(tmp_path: Path) -> None:
    ref = finished_run(tmp_path / "reference", {0: 1.0, 1: 2.0, 2: 3.0})
    new = finished_run(tmp_path, {0: 1.0, 1: 2.0, 2: 3.0})
    table = compare(new.rows(), ref.rows())
    assert list(table["metric"]) == ["mse"] and list(table["verdict"]) == ["identical"]
    new.write_rows(new.cell_path("hqa", 2), rows("hqa", {2: 30.0}))
    path = write_reproduction(tmp_path)
    text = path.read_text()
    assert "| HQA | 8 | mse |" in text and "outside" in text and "1 outside of 1" in text
    assert "train_seconds" not in text


def test_report_compares_nothing_across_code_versions_or_images(tmp_path: Path) -> None:
    finished_run(tmp_path / "reference", {0: 1.0}, {**MANIFEST, "code_version": "v0"})
    finished_run(tmp_path, {0: 1.0})
    text = report_text(tmp_path)
    assert text.startswith("Not compared") and "code_version: 'v0' in the reference, 'v1' here" in text
    assert "| HQA |" not in text
    assert report_text(tmp_path / "nowhere") is None  # no reference: no report


def test_progress_files_drive_one_bar_per_task(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    writer = ProgressFile(tmp_path, "hqa-seed0")
    writer.cell = "hqa seed 0"
    writer.training("HQA layer 2/5", 10, 400)
    writer.training("HQA layer 2/5", 20, 400)  # within WRITE_SECONDS: not written
    state = read_states(tmp_path / "progress")["hqa-seed0"]
    assert (state["cell"], state["stage"], state["step"], state["total"]) == ("hqa seed 0", "HQA layer 2/5", 10, 400)
    writer.training("HQA layer 2/5", 400, 400)  # a stage's last step is always written
    assert read_states(tmp_path / "progress")["hqa-seed0"]["step"] == 400
    board = ProgressBoard(tmp_path)
    board.refresh()
    bar, label = board._bars["hqa-seed0"]
    assert label == "hqa seed 0: HQA layer 2/5" and bar.n == 400 and bar.total == 400
    writer.evaluating(3, 5)
    board.refresh()
    bar, label = board._bars["hqa-seed0"]
    assert label == "hqa seed 0: evaluating layer 3/5" and bar.n == 2 and bar.total == 5
    writer.close()
    board.refresh()
    assert board._bars == {}
    board.__exit__(None, None, None)
    assert json.dumps(state)  # states are plain JSON
