"""The files step: real file sizes of a cell's evaluation codes under each prior, and the
reports' real-bits column and figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from hqa import HQA, HQAConfig
from hqa.codec import HEADER_BYTES
from hqa.priors import ContextConfig

from benchmarks.files import SINGLE_IMAGES, cell_files
from benchmarks.report import REAL_BITS_LABEL, figure3_real_bits, rate_table, real_bits_points, summarize
from benchmarks.store import ResultStore

from conftest import blobs


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[HQA, torch.Tensor, torch.Tensor]:
    cfg = HQAConfig(image_size=8, channels=1, num_layers=3, codebook_size=8, code_dim=4, enc_widths=(4, 4, 4),
                    dec_widths=(4, 4, 4), lr=3e-3)
    train, test = blobs(96, seed=0), blobs(40, seed=1)
    model = HQA(cfg).fit(train, epochs=2, batch_size=16, seed=0, progress=False, compile=False)
    return model, train, test


def test_cell_rows_measure_the_sweeps_codes_under_every_prior(trained, tmp_path: Path) -> None:
    model, train, test = trained
    store = ResultStore(tmp_path)
    rows = pd.DataFrame(cell_files(model, "hqa", 0, train, test, store, {"profile": "smoke"}, ContextConfig(steps=3)))
    value = lambda metric, layer: rows[(rows["metric"] == metric) & (rows["layer"] == layer)]["value"].item()  # noqa: E731
    n = len(test)
    for layer, nominal in zip((1, 2, 3), model.rates):
        # uniform: the nominal bits of all n images in one stream, in whole 32-bit words (+1), and the header
        words = (nominal * n) // 32 + 1
        assert value("file_bits_uniform", layer) == pytest.approx((8 * HEADER_BYTES + 32 * words) / n)
        assert value("payload_bits_uniform", layer) == pytest.approx(32 * words / n)
        assert n <= SINGLE_IMAGES  # every image also coded in a file of its own
        assert value("single_file_bits_uniform", layer) == pytest.approx(8 * HEADER_BYTES + 32 * (nominal // 32 + 1))
        for kind in ("factorized", "context", "progressive"):
            assert value(f"file_bits_{kind}", layer) - value(f"payload_bits_{kind}", layer) == pytest.approx(8 * HEADER_BYTES / n)
    # the factorized prior learned the skewed code usage of a trained layer
    assert value("payload_bits_factorized", 1) < value("payload_bits_uniform", 1)
    # progressive: the top layer alone, then more bits for every refinement down to layer 1
    assert value("payload_bits_progressive", 3) < value("payload_bits_progressive", 2) < value("payload_bits_progressive", 1)
    # priors are saved beside the models, and loaded (not refitted) the next time
    folder = tmp_path / "models" / "priors"
    saved = sorted(p.name for p in folder.iterdir())
    assert "hqa-seed0-layer1.context" in saved and "hqa-seed0.progressive" in saved
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = pd.DataFrame(cell_files(model, "hqa", 0, train, test, store, {"profile": "smoke"}, ContextConfig(steps=3)))
    pd.testing.assert_series_equal(again[again["metric"] != "files_seconds"]["value"].reset_index(drop=True),
                                   rows[rows["metric"] != "files_seconds"]["value"].reset_index(drop=True))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # loaded, not fitted and saved again


def _rows(system: str, seed: int, layer: int, bits: int, values: dict[str, float]) -> list[dict]:
    return [{"system": system, "seed": seed, "layer": layer, "bits": bits, "metric": m, "feature_space": "", "value": v}
            for m, v in values.items()]


def test_reports_put_real_bits_beside_nominal_and_classical_codecs_in_the_rates_only(tmp_path: Path) -> None:
    rows = []
    for seed, mse in ((0, 0.05), (1, 0.06)):
        rows += _rows("hqa", seed, 1, 2048, {"mse": mse / 10, "class_error": 5.0, **({"file_bits_context": 1000.0} if seed == 0 else {})})
        rows += _rows("hqa", seed, 2, 8, {"mse": mse, "class_error": 20.0, **({"file_bits_context": 40.0} if seed == 0 else {})})
    rows += _rows("jpeg", 0, 1, 1600, {"mse": 0.009, "class_error": 4.8, "file_bits": 1600.0})
    frame = pd.DataFrame(rows)
    points = real_bits_points(frame)
    top = points[(points["system"] == "hqa") & (points["layer"] == 2) & (points["metric"] == "mse")].iloc[0]
    assert top["x"] == 40.0 and top["mean"] == pytest.approx(0.055)  # x from seed 0's file, y over both seeds
    assert set(points[points["system"] == "jpeg"]["x"]) == {1600.0}
    assert figure3_real_bits(frame, tmp_path / "f.png") and (tmp_path / "f.png").stat().st_size > 0
    summary = summarize(frame)
    rates = rate_table(summary, None)
    assert "JPEG (Pillow)" in set(rates["System"])
    assert rates.loc[rates["System"] == "JPEG (Pillow)", REAL_BITS_LABEL].item().startswith("1600.0")
    table3 = rate_table(summary, 2, paper_values=False)
    assert list(table3["System"]) == ["HQA"] and table3[REAL_BITS_LABEL].item().startswith("40.0")
    assert not figure3_real_bits(frame[~frame["metric"].str.startswith("file_bits")], tmp_path / "g.png")
