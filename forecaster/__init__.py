"""stockcast forecasting core: providers -> storage -> windows -> model -> registry -> predictions."""

__version__ = "0.1.0"
