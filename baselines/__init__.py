"""Baselines on HQA's backbones: the VQ-VAE family and the HAMs family."""

from .hams import SWITCHES, hams_config
from .kmeans import KMeansVQ
from .vqvae import VQVAE, single_vqvae, vqvae_config

__all__ = ["KMeansVQ", "VQVAE", "single_vqvae", "vqvae_config", "hams_config", "SWITCHES"]
