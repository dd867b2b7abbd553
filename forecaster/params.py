"""The network's hyperparameters: one frozen object, built from settings and passed whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelParams:
    """Every hyperparameter of the network, in one frozen object passed whole (settings -> fit)."""

    units: tuple[int, ...] = (32, 16)
    epochs: int = 200  # a cap: early stopping on the most recent validation slice decides
    batch_size: int = 64
    patience: int = 5
    learning_rate: float = 3e-4  # chosen on validation data (see bench/accuracy.py)
    seed: int = 42
    loss: str = "mae"  # MAE loss: matches the headline metric

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "units": list(self.units)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelParams:
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        if "units" in known:
            known["units"] = tuple(int(u) for u in known["units"])
        return cls(**known)
