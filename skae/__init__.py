"""skae: autoencoders as scikit-learn transformers, on PyTorch."""

from ._autoencoders import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from ._persistence import load, save

__version__ = "0.1.0.dev0"

__all__ = [
    "Autoencoder",
    "ContractiveAutoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "VariationalAutoencoder",
    "load",
    "save",
    "__version__",
]
