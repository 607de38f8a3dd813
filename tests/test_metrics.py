"""Metrics against hand-computed values; torch-fidelity paths (classifier and Inception) offline."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity

from benchmarks.classifier import FEATURE_NET_ARCH, FEATURE_NET_SEED, load_or_train_classifier, train_classifier
from benchmarks.fidelity import (
    CLASSIFIER_EXTRACTOR,
    FeatureSpace,
    classifier_space,
    feature_net_space,
    frechet_distance_numpy,
    inception_space,
    to_uint8,
)
from benchmarks.metrics import CLASS_ERROR, RFID, classification_error, mse, no_compression, t_interval
from hqa.data import ImageSet


def test_fid_hand_computed_diagonal_gaussians() -> None:
    # Features with exact sample means and (diagonal) covariances:
    # FID = |mu1 - mu2|^2 + sum_i (s1_i + s2_i - 2 sqrt(s1_i s2_i)).
    base = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # mean 0, cov 4/3 I
    a = base * np.array([1.0, 2.0])
    b = base * np.array([3.0, 1.0]) + np.array([1.0, 0.0])
    c = 4.0 / 3.0
    s1, s2 = np.array([1.0, 4.0]) * c, np.array([9.0, 1.0]) * c
    expected = 1.0 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance_numpy(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_numpy(a, a) == pytest.approx(0.0, abs=1e-6)


def closed_form_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2) for sample covariances (ddof 1),
    with tr sqrt(S1 S2) = ||X1 X2^T||_* / sqrt((n1 - 1)(n2 - 1)) for centred X1, X2: small
    matrices only, no matrix square root (and no torch-fidelity)."""
    x1, x2 = f1 - f1.mean(0), f2 - f2.mean(0)
    n1, n2 = len(f1), len(f2)
    trace_sqrt = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    mean_term = float(((f1.mean(0) - f2.mean(0)) ** 2).sum())
    return mean_term + (x1 ** 2).sum() / (n1 - 1) + (x2 ** 2).sum() / (n2 - 1) - 2 * trace_sqrt


def test_fid_of_two_gaussian_feature_sets_is_the_closed_form_frechet_distance() -> None:
    """FeatureSpace.fid_of_features against scipy's matrix square root of S1 S2 for two
    correlated Gaussian samples (5 features), and against the nuclear-norm form."""
    from scipy.linalg import sqrtm
    from torch_fidelity.metric_fid import fid_features_to_statistics

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 5))
    a = rng.normal(size=(300, 5)) @ mix
    b = rng.normal(size=(200, 5)) @ (mix * np.array([1.5, 1.0, 0.5, 1.0, 2.0])) + np.array([1.0, 0, -2.0, 0, 0.5])
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                     - 2 * np.trace(sqrtm(s1 @ s2).real))
    assert expected == pytest.approx(closed_form_fid(a, b), rel=1e-6)
    space = FeatureSpace("gaussians", torch.nn.Identity(), reference_stats=fid_features_to_statistics(torch.from_numpy(a)))
    assert space.fid_of_features(torch.from_numpy(b)) == pytest.approx(expected, rel=1e-6)
    assert expected > 5  # far from 0: a mean or covariance term left out would show


def test_sweep_intervals_use_students_t_at_three_seeds() -> None:
    """The tables' 95% intervals over 3 seeds: half-width t(0.975, 2) s / sqrt(3) with
    t(0.975, 2) = 4.302653 (the normal's 1.96 would give less than half of it)."""
    import pandas as pd

    from benchmarks.report import summarize

    values = [0.1, 0.4, 0.25]  # mean 0.25, sample standard deviation 0.15
    rows = pd.DataFrame([{"system": "hqa", "layer": 5, "bits": 8, "metric": "mse", "feature_space": "", "seed": s,
                          "value": v} for s, v in enumerate(values)])
    got = summarize(rows).iloc[0]
    half = 4.302653 * 0.15 / np.sqrt(3)
    assert got["n"] == 3 and got["mean"] == pytest.approx(0.25)
    assert got["half"] == pytest.approx(half, rel=1e-6)
    assert (got["lo"], got["hi"]) == (pytest.approx(0.25 - half, rel=1e-6), pytest.approx(0.25 + half, rel=1e-6))
    mean, lo, hi = t_interval(values)
    assert hi - mean == pytest.approx(half, rel=1e-6) and mean - lo == pytest.approx(half, rel=1e-6)


def test_mse_and_interval() -> None:
    x, y = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)
    assert mse(x, y) == pytest.approx(0.25)
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImageSet]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    images = torch.rand(40, 1, 32, 32, generator=g) * 0.2
    images[labels == 1, :, 8:24, 8:24] = 1.0  # class 1: a bright square
    data = ImageSet(images, labels, "synthetic")
    model = train_classifier(data, epochs=5, seed=0, batch_size=8, progress=False)
    path = tmp_path_factory.mktemp("clf") / "classifier.pt"
    model.save(path)
    return path, data


def test_classification_error_hand_computed() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert classification_error(logits, torch.tensor([0, 1, 1, 1])) == 25.0


def test_classifier_learns_and_one_pass_gives_error_and_fid(classifier_file: tuple[Path, ImageSet]) -> None:
    path, data = classifier_file
    space = classifier_space(path, data.images)
    feats, logits = space.outputs(data.images)
    assert feats.shape == (40, 128) and logits.shape == (40, 2)
    rows = {m.metric: m.value for m in no_compression(data.images, data.labels, [space])}
    assert rows[CLASS_ERROR] == 0.0 and rows[RFID] == pytest.approx(0.0, abs=1e-3)
    flipped = {m.metric: m.value for m in no_compression(data.images, 1 - data.labels, [space])}
    assert flipped[CLASS_ERROR] == 100.0


def test_space_without_reference_gives_outputs_but_names_the_missing_fid(classifier_file: tuple[Path, ImageSet]) -> None:
    """The figures build the classifier space without featurising the test set again."""
    path, data = classifier_file
    space = classifier_space(path)
    feats, logits = space.outputs(data.images[:5])
    assert feats.shape == (5, 128) and logits.shape == (5, 2)
    with pytest.raises(ValueError, match="without reference images"):
        space.fid(data.images)


def test_classifier_fid_matches_torch_fidelity_end_to_end(classifier_file: tuple[Path, ImageSet]) -> None:
    path, data = classifier_file
    real, fake = data.images[:20], data.images[20:].flip(-1) * 0.7
    space = classifier_space(path, real)
    ours = space.fid(fake)

    class Images(torch.utils.data.Dataset):
        def __init__(self, x: torch.Tensor) -> None:
            self.x = to_uint8(x)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.x[i]

    theirs = torch_fidelity.calculate_metrics(
        input1=Images(real), input2=Images(fake), fid=True, cuda=False, verbose=False, batch_size=7,
        feature_extractor=CLASSIFIER_EXTRACTOR, feature_extractor_weights_path=str(path), cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes
    )["frechet_inception_distance"]
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert ours > 0
    assert space.fid(real) == pytest.approx(0.0, abs=1e-3)


def test_fid_is_batch_size_independent(classifier_file: tuple[Path, ImageSet]) -> None:
    path, data = classifier_file
    space = classifier_space(path, data.images[:20])
    small = FeatureSpace("classifier", space.extractor, data.images[:20], batch_size=3)
    fake = data.images[20:].flip(-1) * 0.7
    assert small.fid(fake) == pytest.approx(space.fid(fake), rel=1e-4)  # float32 convs differ by batch only in rounding


def test_inception_path_with_stand_in_weights(tmp_path: Path) -> None:
    """The real torch-fidelity Inception extractor, loading weights from a local file."""
    from conftest import inception_stand_in

    weights = inception_stand_in(tmp_path / "inception-stand-in.pth")
    # Random Inception weights at PyTorch's default scale shrink the signal ~6x in second moment
    # per conv + ReLU: the 2048 features come out ~1e-7 and any FID is ~0. Scaled by sqrt(6),
    # the features carry the images (rFID of the two sets below ~100).
    state = torch.load(weights)
    torch.save({k: v * 6 ** 0.5 if k.endswith("conv.weight") else v for k, v in state.items()}, weights)

    real = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    space, note = inception_space(real, weights)
    assert space is not None and note == "Inception rFID available"
    f1 = space.features(real).numpy()
    assert f1.shape == (6, 2048)
    # The FID of other images against the closed form, computed apart from torch-fidelity:
    # with centred features X1 [n1, F], X2 [n2, F], tr sqrt(S1 S2) is the nuclear norm of
    # X1 X2^T / sqrt((n1 - 1)(n2 - 1)) (same nonzero eigenvalues), exact for n << F.
    fake = real.flip(-1).roll(5, dims=-2) * 0.6
    f2 = space.features(fake)
    expected = closed_form_fid(f1, f2.numpy())
    assert expected > 10  # the two sets differ in this space
    assert space.fid_of_features(f2) == pytest.approx(expected, rel=1e-3)
    missing, why = inception_space(real, tmp_path / "nope.pth")
    assert missing is None and "not found" in why


def test_independent_feature_net_is_another_network_cached_apart(
    classifier_file: tuple[Path, ImageSet], tmp_path: Path
) -> None:
    path, data = classifier_file
    a, a_path = load_or_train_classifier(data, epochs=2, cache=tmp_path, progress=False)
    b, b_path = load_or_train_classifier(data, epochs=2, seed=FEATURE_NET_SEED, cache=tmp_path, progress=False,
                                         arch=FEATURE_NET_ARCH)
    assert a_path != b_path and a.arch == "small-cnn" and b.arch == "gap-cnn"
    assert {type(m) for m in b.body} != {type(m) for m in a.body}  # another architecture, not another seed only
    again, _ = load_or_train_classifier(data, epochs=2, seed=FEATURE_NET_SEED, cache=tmp_path, progress=False,
                                        arch=FEATURE_NET_ARCH)
    assert all(torch.equal(x, y) for x, y in zip(again.state_dict().values(), b.state_dict().values()))  # from the cache
    indep = feature_net_space(b_path, data.images)
    assert indep.name == "independent" and not indep.provides_logits
    assert indep.features(data.images).shape == (40, 256)
    # the classification error comes from the classifier, whichever order the spaces are in
    rows = no_compression(data.images, 1 - data.labels, [indep, classifier_space(path, data.images)])
    assert {(m.metric, m.feature_space) for m in rows} == {("mse", ""), (RFID, "independent"), (RFID, "classifier"),
                                                           (CLASS_ERROR, "")}
    assert next(m.value for m in rows if m.metric == CLASS_ERROR) == 100.0
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        train_classifier(data, epochs=1, seed=0, arch="resnet-9000")
