"""Figures from stored models and the toy experiment: numbers that say what the pictures show."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from baselines import VQVAE
from benchmarks.classifier import train_classifier
from benchmarks.fidelity import classifier_space
from benchmarks.figures import FigureData, interpolations, reconstructions, stochastic_decodes
from benchmarks.toy import MODES, PANELS, ToySettings, claims, panel_metrics, run_seeds, seed_summary, write_figure, write_report
from hqa import HQA
from hqa.data import ImageSet


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, FigureData]:
    from conftest import blobs

    from hqa import HQAConfig

    cfg = HQAConfig(image_size=8, channels=1, num_layers=3, codebook_size=8, code_dim=4,
                    enc_widths=(4, 4, 4), dec_widths=(4, 4, 4), lr=3e-3)
    images = blobs(40)
    labels = (images[:, 0, :4].sum(dim=(1, 2)) > 0).long()  # square in the top half or not
    models = {
        "hqa": HQA(cfg).fit(images, epochs=2, batch_size=8, seed=0, progress=False),
        "vqvae": VQVAE(cfg.replace(quantizer="nearest", codebook_loss="vq")).fit(images, epochs=2, batch_size=8, seed=0, progress=False),
    }
    classifier = train_classifier(ImageSet(images, labels, "blobs"), epochs=2, seed=0, batch_size=8, progress=False)
    path = tmp_path_factory.mktemp("clf") / "classifier.pt"
    classifier.save(path)
    return models, FigureData(images, labels, classifier_space(path, images))


def test_figures_write_pictures_and_numbers(tiny_models: tuple[dict, FigureData], tmp_path: Path) -> None:
    models, data = tiny_models
    table4 = "\n".join(interpolations(models, data, tmp_path / "t4.png"))
    assert "| HQA |" in table4 and "| VQ-VAE |" in table4 and "| real test images |" in table4
    recon = "\n".join(reconstructions(models, data, tmp_path / "rec.png"))
    decodes = "\n".join(stochastic_decodes(models, data, tmp_path / "dec.png"))
    for name in ("t4.png", "rec.png", "dec.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "Reconstructions" in recon
    variance = {line.split("|")[1].strip(): float(line.split("|")[3]) for line in decodes.splitlines() if line.startswith("| ") and "bits" not in line and "---" not in line}
    assert variance["VQ-VAE"] == 0.0  # deterministic: every decode is the same image
    assert variance["HQA"] > 0.0  # stochastic decode through the stack


def test_figures_without_their_systems_link_no_missing_picture(tiny_models: tuple[dict, FigureData], tmp_path: Path) -> None:
    """A sweep of systems Table 4 does not show writes no Table 4 (and no link to one); a sweep
    without a stochastic system shows the decode variances but no grid of identical decodes."""
    models, data = tiny_models
    assert interpolations({"hams-gs": models["hqa"]}, data, tmp_path / "t4.png") == []
    assert not (tmp_path / "t4.png").exists()
    decodes = "\n".join(stochastic_decodes({"vqvae": models["vqvae"]}, data, tmp_path / "dec.png"))
    assert "| VQ-VAE | 3 | 0.00000 |" in decodes
    assert "![Stochastic decodes]" not in decodes and not (tmp_path / "dec.png").exists()


def test_toy_metrics_hand_computed() -> None:
    data = torch.tensor(MODES).repeat(25).view(-1, 1, 1, 1)
    exact = panel_metrics(data, data)
    assert exact["wasserstein"] == pytest.approx(0.0) and exact["realism"] == 1.0 and exact["coverage"] == 1.0
    two = torch.tensor([0.25, 0.75]).repeat(50).view(-1, 1, 1, 1)  # midpoints: mode-covering
    covering = panel_metrics(data, two)
    assert covering["realism"] == 0.0 and covering["coverage"] == 0.0
    assert covering["wasserstein"] == pytest.approx(0.125)
    dropped = panel_metrics(data, torch.tensor([0.375, 0.875]).repeat(50).view(-1, 1, 1, 1))
    assert dropped["realism"] == 1.0 and dropped["coverage"] == 0.5 and dropped["shares"] == [0.0, 0.5, 0.0, 0.5]


@pytest.mark.slow
def test_toy_reproduces_the_claims_of_figure_1_over_five_seeds(tmp_path: Path) -> None:
    """Section 4 on the seed means (5 seeds, as the committed run): the 4-code VQ-VAE matches
    the density, the 2-code VQ-VAE mode-covers, the deterministic hierarchy on its layer 1 is
    realistic but drops modes. HQA on the same layer 1 is realistic and reaches more modes;
    the paper's "every mode" holds in 4 of the 5 seeds (seed 0 drops two: results/toy), so
    its seed mean is 0.9, not 1: checked here as "every mode in at least 4 of 5 seeds"."""
    torch.set_num_threads(1)
    runs, rows = run_seeds(ToySettings.small(), seeds=5)
    summary = seed_summary(rows)
    results = dict(claims(summary))
    texts = list(results)
    assert results[texts[0]] and results[texts[1]] and results[texts[2]], results
    vq4, vq2, det, sto, _ = PANELS
    assert summary[sto]["realism"][0] > 0.9
    assert summary[sto]["coverage"][0] > summary[det]["coverage"][0]
    full = rows[(rows["panel"] == sto) & (rows["metric"] == "coverage")]["value"]
    assert (full == 1.0).sum() >= 4
    write_figure(runs, tmp_path / "figure1.png")
    assert (tmp_path / "figure1.png").stat().st_size > 10_000


def test_toy_report_gives_intervals_and_names_dropped_modes(tmp_path: Path) -> None:
    rows = []
    for seed in range(3):
        for panel in PANELS:
            shares = [0.25, 0.25, 0.25, 0.25] if panel != PANELS[3] or seed != 2 else [0.5, 0.5, 0.0, 0.0]
            cov = sum(v >= 0.1 for v in shares) / 4
            rows += [{"seed": seed, "panel": panel, "metric": m, "mode": "", "value": v}
                     for m, v in (("wasserstein", 0.01 * (seed + 1)), ("realism", 1.0), ("coverage", cov))]
            rows += [{"seed": seed, "panel": panel, "metric": "share", "mode": f"{c:g}", "value": v} for c, v in zip(MODES, shares)]
    frame = pd.DataFrame(rows)
    summary = seed_summary(frame)
    mean, half = summary[PANELS[0]]["wasserstein"]
    assert mean == pytest.approx(0.02) and half == pytest.approx(4.302652729911275 * 0.01 / np.sqrt(3))
    assert summary[PANELS[3]]["coverage"][0] == pytest.approx(5 / 6)
    text = write_report(frame, tmp_path, ToySettings())
    assert "drops at least one mode (under 10% of reconstructions) in seed(s) [2]" in text
    assert "stochastic hierarchy does neither (realism > 0.9, coverage 1): **does not hold**" in text
    assert len(pd.read_csv(tmp_path / "rows.csv")) == len(frame)


def test_image_grid_grows_with_its_cells_and_keeps_them_readable(tmp_path: Path) -> None:
    """An image cell is at least 48 px in the saved PNG, whether a strip holds 4 or 12 images,
    and the file widens with the images per strip."""
    from PIL import Image

    from benchmarks.figures import _grid

    def width(n: int) -> int:
        strip = torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(n))
        _grid([[strip], [strip]], ["a long row label, system #1", "b"], ["a column title"], tmp_path / f"{n}.png", "a title")
        return Image.open(tmp_path / f"{n}.png").size[0]

    narrow, wide = width(4), width(12)
    assert wide > narrow
    assert (wide - narrow) / 8 >= 48  # each extra image adds a cell of >= 48 px


def test_interpolation_blocks_grow_with_systems_and_pairs_and_keep_cells_readable(tmp_path: Path) -> None:
    """Table 4's layout, measured from the saved file: each block adds its rows of >= 48 px
    image cells; a row is 2 ends + the path wide."""
    from PIL import Image

    from benchmarks.figures import interpolation_blocks

    g = torch.Generator().manual_seed(0)

    def size(systems: int, pairs: int) -> tuple[int, int]:
        block = (torch.rand(pairs, 1, 32, 32, generator=g), torch.rand(pairs, 8, 1, 32, 32, generator=g),
                 torch.rand(pairs, 1, 32, 32, generator=g))
        path = tmp_path / f"{systems}-{pairs}.png"
        interpolation_blocks([block] * systems, [f"System {i} with a long name" for i in range(systems)], path, "Table 4")
        return Image.open(path).size

    w1, h1 = size(1, 3)
    w2, h2 = size(2, 3)
    _, h3 = size(2, 4)
    assert w1 >= 10 * 48 and w2 == w1  # 8 path points + 2 ends per row, width set by the row
    assert h2 - h1 >= 3 * 48  # another system: another block of 3 rows
    assert h3 - h2 >= 2 * 48  # one more pair per block, in both blocks
