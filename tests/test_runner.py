"""The sweep runner's command line: clear errors, resumption, reports from rows."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import report, run

from conftest import SHARED_MNIST, inception_stand_in, write_celeba

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="offline MNIST not beside the checkout")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--systems", "hqa,foo"], "unknown system"),
        (["--dataset", "cifar"], "unknown dataset"),
        (["--profile", "huge"], "unknown profile"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert run.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_missing_data_root_exits_2(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert run.main(["--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "MNIST not found under" in err and "--data-root" in err


def test_report_without_rows_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert report.main([str(tmp_path)]) == 2
    assert "no result rows" in capsys.readouterr().err


@pytest.mark.slow
@needs_mnist
def test_smoke_sweep_resumes_and_refuses_other_profiles(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HQA_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    argv = ["--profile", "smoke", "--systems", "hams,hams-mse", "--seeds", "1", "--jobs", "1",
            "--data-root", str(SHARED_MNIST), "--out", str(out), "--no-inception"]
    assert run.main(argv) == 0
    log = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
    assert log["compiled"] is False and log["threads_per_job"] == os.cpu_count()  # smoke: eager, one job
    rows = pd.read_csv(out / "rows" / "hams-mse-seed0.csv", keep_default_na=False)
    assert set(rows["layer"]) == {0, 1, 2, 3, 4, 5}
    assert set(rows[rows["layer"] == 5]["bits"]) == {8}
    assert (rows["profile"] == "smoke").all() and (rows["train_size"] == 512).all()
    assert {"classifier", "independent"} == set(rows[rows["metric"] == "rfid"]["feature_space"])
    assert {"information_bits", "code_entropy"} <= set(rows["metric"])
    for name in ("table3.md", "table3.csv", "figure3.png", "README.md", "rates.md", "reconstructions.png",
                 "table4_interpolations.png", "figures.md"):
        assert (out / name).stat().st_size > 0
    # both systems are deterministic: the decode variances are listed, no grid of identical decodes is drawn
    assert not (out / "stochastic_decodes.png").exists() and "| HAMs | 8 | 0.00000 |" in (out / "figures.md").read_text()
    table = pd.read_csv(out / "table3.csv")
    assert list(table["System"]) == ["No compression", "HAMs", "HAMs + MSE"]
    assert {"rFID (independent CNN features)", "rFID (classifier's own features)", "Class. error (%, classifier)",
            "Information bits I(X;Z)", "Entropy of emitted codes (bits)"} <= set(table.columns)
    # hams-mse adopted hams' layer 1 (the same training problem): identical layer-1 rows
    hams = pd.read_csv(out / "rows" / "hams-seed0.csv", keep_default_na=False)
    l1 = lambda r: r[(r["layer"] == 1) & (r["metric"] == "mse")]["value"].item()  # noqa: E731
    assert l1(hams) == l1(rows)

    # Started again: nothing is retrained or rewritten.
    model = out / "models" / "hams-seed0.pt"
    stamp = model.stat().st_mtime_ns, (out / "rows" / "hams-seed0.csv").stat().st_mtime_ns
    assert run.main(argv) == 0
    assert (model.stat().st_mtime_ns, (out / "rows" / "hams-seed0.csv").stat().st_mtime_ns) == stamp
    assert "2 finished (system, seed) cells" in capsys.readouterr().err

    # A corrupt model of an unfinished cell is reported and retrained.
    (out / "rows" / "hams-seed0.csv").unlink()
    model.write_bytes(b"garbage")
    assert run.main(argv) == 0
    assert "retraining hams seed 0" in capsys.readouterr().err
    assert (out / "rows" / "hams-seed0.csv").exists()

    # Another profile into the same folder is refused, not mixed.
    assert run.main([*argv[:1], "quick", *argv[2:]]) == 2
    assert "holds rows of another run" in capsys.readouterr().err

    # Reports regenerate from rows alone.
    os.remove(out / "table3.md")
    assert report.main([str(out)]) == 0 and (out / "table3.md").exists()
    # ... also in a clone, which has rows but no models: the figures made from them stay in the README
    shutil.rmtree(out / "models")
    assert report.main([str(out)]) == 0
    assert "the figures made from them are kept" in capsys.readouterr().err
    assert "reconstructions.png" in (out / "README.md").read_text()


@pytest.mark.slow
def test_celeba_smoke_end_to_end_on_generated_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole CelebA path: layout, 7 layers, Inception rFID (stand-in weights), Figure 2
    right, the reconstruction grid and Table 1's 8x8-layer interpolations."""
    monkeypatch.setenv("HQA_CACHE_DIR", str(tmp_path / "cache"))
    root = write_celeba(tmp_path / "data", n=12)
    weights = inception_stand_in(tmp_path / "inception.pth")
    out = tmp_path / "out"
    argv = ["--dataset", "celeba", "--profile", "smoke", "--systems", "hqa,kmeans", "--seeds", "1", "--jobs", "1",
            "--data-root", str(root), "--out", str(out), "--inception-weights", str(weights)]
    assert run.main(argv) == 0
    rows = pd.read_csv(out / "rows" / "hqa-seed0.csv", keep_default_na=False)
    assert sorted(set(rows["bits"]) - {0}) == [9, 36, 144, 576, 2304, 9216, 36864]
    assert set(rows[rows["metric"] == "rfid"]["feature_space"]) == {"inception"}
    assert "class_error" not in set(rows["metric"])  # unlabelled faces: no classifier
    for name in ("lowest_rate.md", "figure2_right.png", "reconstructions.png", "table1_interpolations.png", "README.md"):
        assert (out / name).stat().st_size > 0, name
