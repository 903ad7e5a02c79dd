"""scikit-learn's own estimator checks, over every public estimator, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import Autoencoder

ESTIMATORS = [
    Autoencoder(n_components=3, max_iter=20),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
