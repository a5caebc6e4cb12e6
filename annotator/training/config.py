"""The settings of an SG-One training run (no torch import: the CLI builds its options from them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """What a run depends on; recorded in the checkpoint."""

    steps: int = 400
    batch: int = 8
    lr: float = 1e-3
    hidden: int = 64
    views: int = 2
    input_size: int = 321
    superpixels: int = 12
    seed: int = 0
    checkpoint_every: int = 50
