"""Learning-curve reports: the last-quarter fall, the still-improving verdict, curves.png."""

from pathlib import Path

import pandas as pd
from PIL import Image

from benchmarks.curves import PIXEL, TARGET_MSE, TRAIN_LOSS, curves_figure, improving_table, last_quarter_drop


def _curve(system: str, layer: int, metric: str, values: list[float], seeds: int = 2) -> list[dict]:
    steps = [25 * (i + 1) for i in range(len(values))]  # 25 .. 25 n
    return [
        dict(system=system, seed=s, layer=layer, step=st, metric=metric, value=v + 0.001 * s)
        for s in range(seeds)
        for st, v in zip(steps, values)
    ]


def test_last_quarter_drop_is_hand_computed() -> None:
    # 8 points at steps 25..200: the point at 75% is step 150 (value 0.5), the last 0.4.
    rows = pd.DataFrame(_curve("hqa", 2, TARGET_MSE, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4], seeds=1))
    drop = last_quarter_drop(rows)
    assert drop["steps"].item() == 200
    assert abs(drop["drop"].item() - (0.5 - 0.4) / 0.4) < 1e-12


def test_still_improving_uses_the_own_target_and_a_flat_curve_is_converged() -> None:
    rows = pd.DataFrame(
        _curve("hqa", 1, PIXEL, [0.1, 0.05, 0.04, 0.04])  # flat at the end: converged
        + _curve("hqa", 2, PIXEL, [0.1, 0.09, 0.09, 0.09])
        + _curve("hqa", 2, TARGET_MSE, [1.0, 0.8, 0.6, 0.4])  # its own target still falls
    )
    table = improving_table(rows)
    verdict = dict(zip(table["Layer"], table["Still improving"]))
    assert verdict == {1: "no", 2: "yes"}
    assert list(table["Own target"]) == ["pixel_mse", "target_mse"]


def test_curves_figure_has_a_column_per_layer(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        _curve("hqa", 1, PIXEL, [0.1, 0.05]) + _curve("hqa", 1, TRAIN_LOSS, [1.0, 0.5])
        + _curve("hqa", 2, PIXEL, [0.1, 0.09]) + _curve("hqa", 2, TARGET_MSE, [1.0, 0.9])
        + _curve("vqvae", 2, PIXEL, [0.2, 0.1])
    )
    curves_figure(rows, tmp_path / "two.png")
    rows3 = pd.concat([rows, pd.DataFrame(_curve("hqa", 3, PIXEL, [0.2, 0.1]))])
    curves_figure(rows3, tmp_path / "three.png")
    assert Image.open(tmp_path / "three.png").size[0] > Image.open(tmp_path / "two.png").size[0]


def test_curves_figure_draws_only_rows_with_data(tmp_path: Path) -> None:
    """Single-rate systems log no own-target MSE: their figure has two rows, not an empty gap."""
    single = pd.DataFrame(_curve("fsq", 1, PIXEL, [0.1, 0.05]) + _curve("fsq", 1, TRAIN_LOSS, [1.0, 0.5]))
    curves_figure(single, tmp_path / "single.png")
    with_target = pd.concat([single, pd.DataFrame(_curve("hqa", 1, TARGET_MSE, [1.0, 0.9]))])
    curves_figure(with_target, tmp_path / "target.png")
    h_single, h_target = Image.open(tmp_path / "single.png").size[1], Image.open(tmp_path / "target.png").size[1]
    assert h_single < 0.8 * h_target, (h_single, h_target)


def test_fit_log_falls_reads_each_layers_own_target_and_pixels() -> None:
    from benchmarks.curves import fit_log_falls

    pts = lambda **m: [{"step": s, **{k: v[i] for k, v in m.items()}} for i, s in enumerate((25, 50, 75, 100))]
    log = [{"layer": 1, "curve": pts(heldout_pixel_mse=[4.0, 3.0, 2.0, 1.0])},
           {"layer": 2, "curve": pts(heldout_pixel_mse=[5.0, 5.0, 5.0, 4.0], heldout_target_mse=[9.0, 8.0, 6.0, 3.0])}]
    # the point at 75% of 100 steps against the last: (2 - 1) / 1, (6 - 3) / 3, (5 - 4) / 4
    assert fit_log_falls(log) == {1: {"own": 100.0, "pixel": 100.0}, 2: {"own": 100.0, "pixel": 25.0}}
