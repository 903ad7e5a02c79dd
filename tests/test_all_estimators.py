"""The foundation's guarantees, for every estimator: determinism, RNG hygiene, persistence,
partial_fit, warm start, early stopping, dtypes and bad input."""

import pickle

import numpy as np
import pytest
import torch

import skae
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae._base import _validation_split

FACTORIES = {
    "Autoencoder": lambda **kw: Autoencoder(3, hidden_layer_sizes=(8,), **kw),
    "ConvAutoencoder": lambda **kw: ConvAutoencoder(conv_filters=(3, 2), image_shape=(4, 4), **kw),
    "DenoisingAutoencoder": lambda **kw: DenoisingAutoencoder(3, noise="masking", noise_level=0.2,
                                                              **kw),
    "SparseAutoencoder": lambda **kw: SparseAutoencoder(20, **kw),
    "ContractiveAutoencoder": lambda **kw: ContractiveAutoencoder(3, hidden_layer_sizes=(6,),
                                                                  jacobian="projection", **kw),
    "VariationalAutoencoder": lambda **kw: VariationalAutoencoder(2, hidden_layer_sizes=(8,), **kw),
}
parametrize = pytest.mark.parametrize("name", list(FACTORIES))


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    return rng.rand(120, 16).astype(np.float32)


def make(name, **kw):
    return FACTORIES[name](**{"batch_size": 40, "random_state": 0, **kw})


@parametrize
def test_bit_identical_refits_and_untouched_global_rngs(name, X):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = make(name, max_iter=3).fit(X)
    second = make(name, max_iter=3).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(first.score_samples(X), second.score_samples(X))
    first.sample(3, random_state=0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


@parametrize
def test_pickle_and_save_load_round_trips(name, X, tmp_path):
    est = make(name, max_iter=2).fit(X)
    for restored in (pickle.loads(pickle.dumps(est)), _save_load(est, tmp_path)):
        np.testing.assert_array_equal(restored.transform(X), est.transform(X))
        np.testing.assert_array_equal(restored.score_samples(X), est.score_samples(X))
        np.testing.assert_array_equal(restored.sample(4, random_state=1),
                                      est.sample(4, random_state=1))
        assert restored.get_params() == est.get_params()


def _save_load(est, tmp_path):
    skae.save(est, tmp_path / "model.skae")
    return skae.load(tmp_path / "model.skae")


@parametrize
def test_partial_fit_epochs_and_warm_start_reproduce_one_fit(name, X):
    once = make(name, max_iter=4).fit(X)
    warm = make(name, max_iter=2, warm_start=True).fit(X).fit(X)
    incremental = make(name)
    for _ in range(4):
        incremental.partial_fit(X)
    for other in (warm, incremental):
        assert other.n_iter_ == 4
        np.testing.assert_array_equal(other.transform(X), once.transform(X))


@parametrize
def test_early_stopping_keeps_the_best_validation_weights(name, X):
    est = make(name, max_iter=8, early_stopping=True, n_iter_no_change=2,
               learning_rate_init=0.03).fit(X)
    _, val = _validation_split(len(X), 0.1, est._seed)
    assert est.score(X[val]) == pytest.approx(max(est.validation_scores_), rel=1e-5)


@parametrize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(name, X, dtype):
    est = make(name, max_iter=1).fit(X.astype(dtype))
    Z = est.transform(X.astype(dtype))
    assert Z.dtype == dtype and est.inverse_transform(Z).dtype == dtype
    assert est.score_samples(X.astype(dtype)).dtype == dtype


@parametrize
def test_bad_input_is_refused_clearly(name, X):
    est = make(name, max_iter=1)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    est.fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :5])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        est.score_samples(X * 3)
    before = X.copy()
    est.partial_fit(X)
    est.transform(X)
    np.testing.assert_array_equal(X, before)


@parametrize
def test_training_is_finite_and_recorded(name, X):
    est = make(name, max_iter=3).fit(X)
    assert len(est.loss_curve_) == 3 and np.all(np.isfinite(est.loss_curve_))
    assert "reconstruction" in est.loss_terms_
    total = np.sum([est.loss_terms_[k] for k in est.loss_terms_], axis=0)
    np.testing.assert_allclose(total, est.loss_curve_, rtol=1e-5)
    assert np.isfinite(est.transform(X)).all()
