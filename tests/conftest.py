import warnings

import numpy as np
import pytest


@pytest.fixture
def unit_data():
    """Data in [0, 1] on a 2-D non-linear manifold: 200 samples x 12 features."""
    rng = np.random.RandomState(0)
    t = rng.rand(200, 2)
    basis = rng.rand(4, 12)
    features = np.hstack([t, np.sin(3 * t)]) @ basis
    return (features / features.max()).astype(np.float32)


@pytest.fixture
def tabular_data():
    """Unscaled real-valued data (mean 50, spread 10) of rank 3 plus noise: 200 x 10."""
    rng = np.random.RandomState(1)
    return 50 + 10 * rng.randn(200, 3) @ rng.randn(3, 10) + 0.01 * rng.randn(200, 10)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    """Short test fits stop at max_iter; the warning itself is tested on purpose."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits in [0, 1], split 1500 / 297 (float32)."""
    from sklearn.datasets import load_digits

    X = (load_digits().data / 16.0).astype(np.float32)
    return X[:1500], X[1500:]
