"""The protocol's data: three disjoint subsets, class-balanced training images, fingerprints
that name which images a run used, and the manifest's identity against what is only recorded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from hqa.data import ImageSet

from benchmarks.datasets import balanced_order, split_sweep
from benchmarks.profiles import get_profile
from benchmarks.store import ResultStore, code_version


def labelled(n: int, classes: int = 10, seed: int = 0, sorted_by_class: bool = True) -> ImageSet:
    """n distinct 1x2x2 'images' (pixel 0 holds the index, so images identify themselves)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    if sorted_by_class:
        labels = labels.sort().values
    images = torch.zeros(n, 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(n).float()
    return ImageSet(images, labels, f"synthetic, {n}")


def ids(s: ImageSet) -> set[int]:
    return set(s.images[:, 0, 0, 0].long().tolist())


def test_balanced_order_prefixes_hold_equal_classes() -> None:
    data = labelled(600, classes=3, sorted_by_class=True)
    counts = torch.bincount(data.labels, minlength=3)
    order = balanced_order(data.labels, seed=0)
    assert sorted(order.tolist()) == list(range(600))  # a permutation
    n = 3 * int(counts.min())
    for prefix in (3, 30, n):  # while every class lasts, a prefix of 3m holds m of each class
        assert torch.bincount(data.labels[order[:prefix]], minlength=3).tolist() == [prefix // 3] * 3
    assert not torch.equal(order, balanced_order(data.labels, seed=1))


@pytest.mark.parametrize("profile_name", ["smoke", "quick", "paper"])
def test_the_three_sets_are_disjoint_and_sized_by_the_profile(profile_name: str) -> None:
    profile = get_profile(profile_name)
    train_split, test_split = labelled(6000, seed=1), labelled(10_000, seed=2)
    test_split = ImageSet(test_split.images + 100_000, test_split.labels, "test")  # ids apart from training's
    data = split_sweep(train_split, test_split, profile)
    train, val, test = ids(data.train), ids(data.validation), ids(data.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(data.test) == (profile.eval_size or 10_000)
    assert len(data.validation) == profile.validation_size
    assert all(i >= 100_000 for i in test)
    if profile.validation_from == "test":
        assert all(i >= 100_000 for i in val)
        assert len(data.train) == min(profile.train_size or 6000, 6000)
    else:  # held out of training
        assert all(i < 100_000 for i in val)
        assert len(data.train) == 6000 - profile.validation_size


def test_quick_profile_keeps_the_offline_subset_whole_and_in_file_order() -> None:
    train_split = labelled(5000, sorted_by_class=False)
    data = split_sweep(train_split, labelled(10_000, seed=3), get_profile("quick"))
    assert torch.equal(data.train.images, train_split.images)
    # a 60k split gives a class-balanced 5k instead
    big = labelled(60_000, seed=4, sorted_by_class=True)
    sub = split_sweep(big, labelled(10_000, seed=3), get_profile("quick")).train
    assert len(sub) == 5000 and torch.bincount(sub.labels).tolist() == [500] * 10


def test_fingerprints_change_with_the_images_not_with_reloading() -> None:
    profile = get_profile("smoke")
    a = split_sweep(labelled(5000), labelled(10_000, seed=2), profile).fingerprints
    b = split_sweep(labelled(5000), labelled(10_000, seed=2), profile).fingerprints
    assert a == b
    c = split_sweep(labelled(60_000), labelled(10_000, seed=2), profile).fingerprints
    assert c["train"] != a["train"] and c["test"] == a["test"]
    other = dataclasses.replace(profile, eval_size=200)
    d = split_sweep(labelled(5000), labelled(10_000, seed=2), other).fingerprints
    assert d["test"] != a["test"] and d["validation"] != a["validation"]


def test_a_tiny_test_split_validates_on_held_out_training_images() -> None:
    data = split_sweep(labelled(20), labelled(3, seed=5), get_profile("smoke"))
    assert len(data.test) == 3 and len(data.validation) == 4 and len(data.train) == 16
    assert data.fingerprints["validation"].startswith("train:")


def _manifest(**over: object) -> dict:
    m = {"profile": "smoke", "dataset": "mnist", "train_size": 8, "eval_size": 4, "code_version": "v1",
         "steps": [1], "independent_steps": 1, "batch_size": 8, "curve_images": 4, "preprocess": "resize",
         "images": {"train": "a", "validation": "test:b", "test": "c"}}
    return {**m, **over}


def test_device_and_precision_are_recorded_but_other_images_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.claim(_manifest(), {"device": "cuda", "mixed_precision": True, "compiled": True}) is None
    # evaluating or resuming on a CPU is the same run: accepted, and the record follows the last invocation
    assert store.claim(_manifest(), {"device": "cpu", "mixed_precision": False, "compiled": False}) is None
    assert json.loads((tmp_path / "run.json").read_text())["recorded"]["device"] == "cpu"
    with pytest.raises(ValueError, match="images"):
        store.claim(_manifest(images={"train": "other", "validation": "test:b", "test": "c"}))


def test_the_code_version_covers_the_runner_and_the_subsets(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    for pkg in ("hqa", "baselines", "benchmarks"):
        (tmp_path / pkg).mkdir()
        for f in (root / pkg).glob("*.py"):
            (tmp_path / pkg / f.name).write_bytes(f.read_bytes())
    base = code_version(tmp_path)
    for name, covered in (("run.py", True), ("datasets.py", True), ("report.py", False)):
        path = tmp_path / "benchmarks" / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert (code_version(tmp_path) != base) == covered, name
        path.write_bytes(original)


def test_download_is_announced_only_without_a_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    from benchmarks.run import announce_download

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HQA_DATA_ROOT", raising=False)
    assert announce_download("mnist", None) is True
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "downloading MNIST" in err[0] and str(tmp_path) in err[0]
    assert announce_download("mnist", str(tmp_path)) is False  # a root given: never download
    assert announce_download("celeba", None) is False
    (tmp_path / ".cache" / "hqa-data" / "MNIST" / "raw").mkdir(parents=True)
    assert announce_download("mnist", None) is False  # already there
    monkeypatch.setenv("HQA_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert announce_download("mnist", None) is False


def test_an_offline_download_fails_with_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.datasets

    from hqa.data import DataNotFoundError, load_mnist

    def offline(root: str, train: bool, download: bool):  # torchvision's MNIST without a network
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataNotFoundError, match="could not be downloaded.*--data-root"):
        load_mnist(tmp_path, download=True)
