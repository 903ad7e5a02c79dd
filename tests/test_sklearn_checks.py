"""scikit-learn's own estimator checks, over every public estimator, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)

ESTIMATORS = [
    Autoencoder(max_iter=20),
    Autoencoder(n_components=3, hidden_layer_sizes=(8,), early_stopping=True, max_iter=20),
    ConvAutoencoder(conv_filters=(4, 2), max_iter=10),
    DenoisingAutoencoder(n_components=3, max_iter=20),
    DenoisingAutoencoder(n_components=3, noise="salt_and_pepper", noise_level=0.2, max_iter=20),
    SparseAutoencoder(n_components=8, max_iter=20),
    ContractiveAutoencoder(n_components=3, max_iter=20),
    ContractiveAutoencoder(n_components=3, hidden_layer_sizes=(8,), jacobian="projection",
                           max_iter=20),
    VariationalAutoencoder(hidden_layer_sizes=(8,), max_iter=20),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
