"""animegan: train, evaluate and explore GANs that draw anime faces."""

__version__ = "0.1.0"
