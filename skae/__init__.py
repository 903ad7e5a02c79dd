"""skae: autoencoders as scikit-learn transformers, on PyTorch."""

from ._autoencoders import Autoencoder

__version__ = "0.1.0.dev0"

__all__ = ["Autoencoder", "__version__"]
