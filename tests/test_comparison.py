"""Rows of another sweep beside this one's (benchmarks.comparison): read only when the two
sweeps agree on profile, data and code; otherwise one sentence says why not."""

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import report, run
from benchmarks.comparison import Comparison, compared_rows
from benchmarks.store import ResultStore

MANIFEST = {"profile": "quick", "dataset": "mnist", "train_size": 5000, "eval_size": 5000, "code_version": "abc",
            "steps": [1], "independent_steps": 1, "batch_size": 8, "curve_images": 4, "preprocess": "resize"}


def sweep(root: Path, systems: dict[str, float], manifest: dict | None = None) -> ResultStore:
    """A folder with run.json and, per system, 2 seeds of 8-bit MSE rows near ``systems[name]``
    (plus a timing row and a curve row, which comparisons must leave behind)."""
    store = ResultStore(root)
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps(manifest or MANIFEST))
    ctx = {"profile": "quick", "dataset": "mnist", "train_size": 5000, "code_version": "abc", "host": "h"}
    store.write_rows(store.rows_dir / "no-compression.csv",
                     [{"system": "none", "seed": 0, "layer": 0, "bits": 0, "metric": "mse", "feature_space": "", "value": 0.0, **ctx}])
    for name, mse in systems.items():
        for seed in (0, 1):
            store.write_rows(store.cell_path(name, seed), [
                {"system": name, "seed": seed, "layer": 5, "bits": 8, "metric": "mse", "feature_space": "", "value": mse + 0.001 * seed, **ctx},
                {"system": name, "seed": seed, "layer": 5, "bits": 8, "metric": "train_seconds", "feature_space": "", "value": 9.0, **ctx},
                {"system": name, "seed": seed, "layer": 5, "step": 10, "bits": 8, "metric": "curve_train_loss", "feature_space": "", "value": 1.0, **ctx},
            ])
    return store


def test_rows_of_the_named_systems_stand_beside_this_sweeps(tmp_path: Path) -> None:
    sweep(tmp_path / "mnist", {"hqa": 0.05, "vqvae": 0.04, "hams": 0.09})
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    Comparison.parse(str(tmp_path / "mnist") + ":hqa,vqvae", tmp_path / "modern").save(tmp_path / "modern")
    assert json.loads((tmp_path / "modern" / "compare.json").read_text())["folder"] == "../mnist"  # a clone resolves it
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert set(rows["system"]) == {"hqa", "vqvae"} and set(rows["metric"]) == {"mse"}  # no timings, no curves
    assert "Rows of hqa, vqvae are read from `../mnist`" in note
    report.write_reports(tmp_path / "modern", figures=False)
    table = pd.read_csv(tmp_path / "modern" / "table3.csv")
    assert list(table["System"]) == ["No compression", "HQA", "VQ-VAE", "FSQ"]
    assert table.set_index("System").loc["VQ-VAE", "Distortion (MSE)"].startswith("0.0405")
    assert "read from `../mnist`" in (tmp_path / "modern" / "table3.md").read_text()
    readme = (tmp_path / "modern" / "README.md").read_text()
    assert "| fsq " in readme and "| hqa " not in readme  # the time table lists only what this sweep trained


def test_another_code_version_is_named_and_left_out(tmp_path: Path) -> None:
    sweep(tmp_path / "mnist", {"hqa": 0.05}, {**MANIFEST, "code_version": "old"})
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    Comparison("../mnist").save(tmp_path / "modern")
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert rows.empty and "differs from this one in code_version" in note
    report.write_reports(tmp_path / "modern", figures=False)
    assert list(pd.read_csv(tmp_path / "modern" / "table3.csv")["System"]) == ["No compression", "FSQ"]


def test_missing_folder_or_system_is_said(tmp_path: Path) -> None:
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    Comparison("../nowhere").save(tmp_path / "modern")
    _, note, folder = compared_rows(tmp_path / "modern", mine.rows())
    assert "holds no sweep" in note
    assert folder == (tmp_path / "nowhere").resolve()
    sweep(tmp_path / "mnist", {"hqa": 0.05})
    Comparison("../mnist", ("hqa", "kmeans")).save(tmp_path / "modern")
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert set(rows["system"]) == {"hqa"} and "Not found there: kmeans." in note
    rows, note, folder = compared_rows(tmp_path / "mnist", mine.rows())  # a sweep that asked for no comparison
    assert rows.empty and note == "" and folder is None


def test_bad_compare_flag_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run.main(["--compare-with", ":hqa", "--out", str(tmp_path / "o"), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compare-with needs a folder" in err[0]


@pytest.mark.parametrize("key, value", [("profile", "paper"), ("dataset", "celeba"), ("train_size", 60000), ("preprocess", "pad")])
def test_another_profile_or_data_is_named_and_left_out(tmp_path: Path, key: str, value: object) -> None:
    sweep(tmp_path / "mnist", {"hqa": 0.05}, {**MANIFEST, key: value})
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    Comparison("../mnist").save(tmp_path / "modern")
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert rows.empty and f"differs from this one in {key}" in note


def test_another_device_or_precision_is_named_and_left_out(tmp_path: Path) -> None:
    sweep(tmp_path / "mnist", {"hqa": 0.05})
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    (tmp_path / "mnist" / "runs.jsonl").write_text(json.dumps({"device": "cuda", "mixed_precision": True}) + "\n")
    (tmp_path / "modern" / "runs.jsonl").write_text(json.dumps({"device": "cpu", "mixed_precision": False}) + "\n")
    Comparison("../mnist").save(tmp_path / "modern")
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert rows.empty and "device, mixed_precision" in note


def test_a_system_trained_in_both_folders_shows_this_sweeps_rows(tmp_path: Path) -> None:
    sweep(tmp_path / "mnist", {"hqa": 0.05, "fsq": 0.9})
    mine = sweep(tmp_path / "modern", {"fsq": 0.03})
    Comparison("../mnist", ("hqa", "fsq")).save(tmp_path / "modern")
    rows, note, _ = compared_rows(tmp_path / "modern", mine.rows())
    assert set(rows["system"]) == {"hqa"} and "Trained here too, so this sweep's rows are shown: fsq." in note


def test_unknown_system_in_the_flag_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown system\(s\) \['hqa2'\]"):
        Comparison.parse("results/mnist:hqa,hqa2", tmp_path, ["hqa", "vqvae"])
