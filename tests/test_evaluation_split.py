"""The sweep measures the test images (issue 24): one (system, seed) cell run through
``benchmarks.run.run_group`` on a tiny registered system, with train, test (and any other)
images that differ markedly, and its rows compared with the model's own reconstructions of
the test images.

The Context is built from its fields by name and annotation, so fields added to it later
(a validation split, options) get a distinct image set or a neutral value without editing
this test; only ``train`` and ``test`` are named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import torch

from baselines.hams import hams_config
from benchmarks import registry, run
from benchmarks.eval_codes import load_codes
from benchmarks.metrics import MSE, reconstruct_all
from benchmarks.profiles import get_profile
from benchmarks.spaces import SpacesSpec
from benchmarks.store import ResultStore, code_version
from hqa import HQA, HQAConfig
from hqa.data import ImageSet
from hqa.priors import model_hash

from conftest import blobs

NAME = "tiny-hams-mse-for-tests"


class _Manifest(dict):
    """A run manifest: the keys this test knows, and "" for any other a newer runner reads."""

    def __missing__(self, key: str) -> str:
        return ""


def _config() -> HQAConfig:
    # deterministic (nearest code, Eq. 2): the measured values depend on the images alone
    return hams_config("hams-mse", HQAConfig(image_size=8, channels=1, num_layers=2, codebook_size=8, code_dim=4,
                                             enc_widths=(4, 4), dec_widths=(4, 4), lr=3e-3))


def _registered(name: str, config: HQAConfig):
    registry.register(name)(lambda dataset: HQA(config))
    yield name
    registry.SYSTEMS.pop(name, None)
    registry.LABELS.pop(name, None)


@pytest.fixture
def tiny_system():
    yield from _registered(NAME, _config())


@pytest.fixture
def tiny_gumbel_system():
    # HQA proper: Gumbel-softmax posterior, so the evaluated codes are a seeded sample
    yield from _registered("tiny-hqa-for-tests", HQAConfig(image_size=8, channels=1, num_layers=2, codebook_size=8,
                                                           code_dim=4, enc_widths=(4, 4), dec_widths=(4, 4), lr=3e-3))


def _context(tmp_path: Path, train: ImageSet, test: ImageSet, other: ImageSet) -> "run.Context":
    profile = dataclasses.replace(get_profile("smoke"), steps=(3, 3), batch_size=8, curve_points=2, curve_images=4,
                                  compile=False)
    manifest = _Manifest(profile=profile.name, dataset="mnist", train_size=len(train), eval_size=len(test),
                         code_version=code_version())
    known = dict(out=str(tmp_path / "out"), dataset="mnist", profile=profile, train=train, test=test,
                 curve_images=other.images[:4], spaces=SpacesSpec(None, None, None, {}), device="cpu", threads=2, progress=False, compile=False, mixed_precision=False,
                 manifest=manifest)
    values = {}
    for f in fields(run.Context):
        kind = str(f.type)
        if f.name in known:
            values[f.name] = known[f.name]
        elif "ImageSet" in kind:
            values[f.name] = other  # e.g. a validation split
        elif "Tensor" in kind:
            values[f.name] = other.images[:4]
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        elif "bool" in kind:
            values[f.name] = False
        elif "dict" in kind:
            values[f.name] = {}
        else:
            values[f.name] = None
    return run.Context(**values)


def test_a_cell_is_evaluated_on_the_test_images(tiny_system: str, tmp_path: Path) -> None:
    """Train: bright squares on black. Test: mid-grey noise, 12 images. Any other split
    (e.g. validation): dark squares on white. The cell's MSE rows equal the saved model's
    reconstruction error on the test images, and neither the training images' nor the
    other split's."""
    train = ImageSet(blobs(32, seed=0), torch.zeros(32, dtype=torch.long), "train: bright squares")
    noise = 0.4 + 0.2 * torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    test = ImageSet(noise, torch.ones(12, dtype=torch.long), "test: grey noise")
    other = ImageSet(1.0 - blobs(10, seed=1), torch.full((10,), 2, dtype=torch.long), "other: dark squares")
    ctx = _context(tmp_path, train, test, other)

    assert run.run_group([tiny_system], 0, ctx) == [tiny_system]
    store = ResultStore(ctx.out)
    rows = pd.read_csv(store.cell_path(tiny_system, 0), keep_default_na=False)
    model = HQA.load(store.model_path(tiny_system, 0))
    assert model.trained_layers == 2
    for layer in (1, 2):
        measured = rows[(rows["metric"] == MSE) & (rows["layer"] == layer)]["value"].item()
        on = {name: float(((model.reconstruct(s.images, layer) - s.images) ** 2).mean())
              for name, s in (("test", test), ("train", train), ("other", other))}
        assert measured == pytest.approx(on["test"], rel=1e-6), (layer, measured, on)
        assert abs(on["train"] - on["test"]) > 0.1 and abs(on["other"] - on["test"]) > 0.1  # the sets tell apart


@pytest.mark.parametrize("system", ["tiny_system", "tiny_gumbel_system"])
def test_the_kept_codes_are_the_evaluated_codes_of_the_saved_model(system: str, request, tmp_path: Path) -> None:
    """The files step codes what the evaluation sampled: the kept codes equal the saved
    model's own reconstruct_all codes of the test images (for HQA, the sample of the cell's
    seed, not another one), and another model's hash or another image count gets nothing
    (the files step then computes them again)."""
    tiny_system = request.getfixturevalue(system)
    train = ImageSet(blobs(32, seed=0), torch.zeros(32, dtype=torch.long), "train")
    test = ImageSet(blobs(12, seed=3), torch.ones(12, dtype=torch.long), "test")
    other = ImageSet(blobs(10, seed=1), torch.full((10,), 2, dtype=torch.long), "other")
    ctx = _context(tmp_path, train, test, other)
    run.run_group([tiny_system], 0, ctx)
    store = ResultStore(ctx.out)
    model = HQA.load(store.model_path(tiny_system, 0))
    kept = load_codes(store.codes_path(tiny_system, 0), model_hash(model), len(test))
    assert kept is not None and sorted(kept) == [1, 2]
    for layer in (1, 2):
        assert torch.equal(kept[layer], reconstruct_all(model, test.images, layer, 0)[1])
    if model.config.quantizer == "gumbel":  # the codes are a sample: another seed's differ
        assert any(not torch.equal(kept[k], reconstruct_all(model, test.images, k, 1)[1]) for k in (1, 2))
    assert load_codes(store.codes_path(tiny_system, 0), "another model", len(test)) is None
    assert load_codes(store.codes_path(tiny_system, 0), model_hash(model), len(test) + 1) is None
