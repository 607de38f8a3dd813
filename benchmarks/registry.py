"""The one registry of systems: a name -> a builder for a dataset preset.

Add a system by writing a class that answers the interface of
:class:`hqa.system.CompressionSystem` and one decorated builder here::

    @register("my-system")
    def _my_system(dataset: str) -> CompressionSystem:
        return MySystem(HQAConfig.preset(dataset))
"""

from __future__ import annotations

from typing import Callable

from baselines.hams import hams_config
from baselines.kmeans import KMeansVQ
from baselines.vqvae import VQVAE, fsq_config, rvq_config, vqvae_config
from hqa import HQA, HQAConfig
from hqa.system import CompressionSystem

Builder = Callable[[str], CompressionSystem]
SYSTEMS: dict[str, Builder] = {}
DATASETS: tuple[str, ...] = ("mnist", "celeba")
# Labels used in tables and plots (the paper's row names).
LABELS: dict[str, str] = {}


def register(name: str, label: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name``; a name registered twice is an error."""

    def add(builder: Builder) -> Builder:
        if name in SYSTEMS:
            raise ValueError(f"system {name!r} is already registered")
        SYSTEMS[name] = builder
        LABELS[name] = label or name
        return builder

    return add


def build_system(name: str, dataset: str = "mnist") -> CompressionSystem:
    """A fresh, untrained system ``name`` for the preset ``dataset``.

    Raises ValueError naming the known systems or datasets when either is unknown.
    """
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(SYSTEMS)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    return SYSTEMS[name](dataset)


def parse_systems(spec: str) -> list[str]:
    """``"hqa,hams"`` -> ["hqa", "hams"]; ``"all"`` -> every registered system; a set's name
    (``"paper"``, ``"modern"``; :data:`SYSTEM_SETS`) -> its systems."""
    spec = spec.strip()
    if spec == "all":
        names = list(SYSTEMS)
    elif spec in SYSTEM_SETS:
        names = list(SYSTEM_SETS[spec])
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        raise ValueError(f"unknown system(s) {unknown or spec!r}; known systems: {', '.join(SYSTEMS)} "
                         f"(or 'all', {', '.join(repr(s) for s in SYSTEM_SETS)})")
    return names


def _hierarchy(variant: str) -> Builder:
    return lambda dataset: HQA(hams_config(variant, HQAConfig.preset(dataset)))


register("hqa", "HQA")(_hierarchy("hqa"))
register("vqvae", "VQ-VAE")(lambda dataset: VQVAE(vqvae_config(HQAConfig.preset(dataset))))
register("hams", "HAMs")(_hierarchy("hams"))
register("hams-gs", "HAMs + GS")(_hierarchy("hams-gs"))
register("hams-mse", "HAMs + MSE")(_hierarchy("hams-mse"))
register("hams-gs-mse", "HAMs + GS + MSE")(_hierarchy("hams-gs-mse"))
register("kmeans", "k-means VQ (classical)")(lambda dataset: KMeansVQ(HQAConfig.preset(dataset)))
# Quantizers that came after the paper, on the VQ-VAE baseline's single-rate models.
register("fsq", "FSQ")(lambda dataset: VQVAE(fsq_config(HQAConfig.preset(dataset))))
register("rvq", "Residual VQ")(lambda dataset: VQVAE(rvq_config(HQAConfig.preset(dataset))))

# Named sets for --systems: the paper's Table 3 rows, and the quantizers that came after it.
SYSTEM_SETS: dict[str, tuple[str, ...]] = {
    "paper": ("hqa", "vqvae", "hams", "hams-gs", "hams-mse", "hams-gs-mse", "kmeans"),
    "modern": ("fsq", "rvq"),
}
