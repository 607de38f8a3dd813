"""Figures from stored models and the toy experiment: numbers that say what the pictures show."""

from pathlib import Path

import pytest
import torch

from baselines import VQVAE
from benchmarks.classifier import train_classifier
from benchmarks.fidelity import classifier_space
from benchmarks.figures import FigureData, interpolations, reconstructions, stochastic_decodes
from benchmarks.toy import MODES, ToySettings, panel_metrics, run_toy
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
def test_toy_reproduces_the_ordering_of_figure_1() -> None:
    """2-code VQ-VAE mode-covers; HQA's stochastic hierarchy is realistic and reaches more
    modes than the deterministic one. (Whether the 4-code VQ-VAE and the deterministic
    hierarchy reach all their modes depends on the codebook's random start: at seed 0 since
    the initialisation change, two codes share a mode. Issue 14 moves Figure 1 to 5 seeds.)"""
    torch.set_num_threads(1)
    _, _, m = run_toy(ToySettings.small(), seed=0)
    vq4, vq2, det, sto = (m[k] for k in m)
    assert vq2["realism"] < 0.5
    assert sto["realism"] > 0.9 and sto["coverage"] == 1.0
    assert sto["coverage"] > det["coverage"] and sto["realism"] > max(vq2["realism"], det["realism"])

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
