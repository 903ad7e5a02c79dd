"""The training engine as the estimators drive it: batches, epoch losses, stopping, the
validation split (from a mutation audit: each test fails on a one-line bug that no other
test caught)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, DenoisingAutoencoder
from skae._base import _validation_split
from skae._training import Trainer, _total_dtype

# a learning rate so small that Adam's steps (about lr per weight) leave float32 weights as
# they are: every epoch sees the same network, so its loss is the initial model's loss
FROZEN = dict(learning_rate_init=1e-30, shuffle=False, random_state=0)


def test_epoch_loss_is_the_mean_over_all_rows_with_a_partial_last_batch(unit_data):
    # 200 rows in batches of 150 and 50: the epoch's loss is the mean over the 200 rows,
    # which is -score (BCE), not the mean of the 150 rows of the first batch nor the mean
    # of the two batch means
    ae = Autoencoder(3, batch_size=150, max_iter=1, **FROZEN).fit(unit_data)
    assert ae.loss_curve_[0] == pytest.approx(-ae.score(unit_data), rel=1e-6)
    assert ae.loss_curve_[0] != pytest.approx(-ae.score(unit_data[:150]), rel=1e-5)


def test_every_row_is_trained_on_once_per_epoch_including_a_partial_last_batch(
        unit_data, monkeypatch):
    seen = []
    original = Trainer.batch_step

    def spy(self, batch):
        seen.append(batch.shape[0])
        return original(self, batch)

    monkeypatch.setattr(Trainer, "batch_step", spy)
    Autoencoder(3, batch_size=64, max_iter=2, random_state=0).fit(unit_data)
    assert seen == [64, 64, 64, 8] * 2


def test_a_loss_equal_to_the_best_counts_as_an_improvement_of_tol_zero(unit_data):
    # tol is the minimum improvement that resets the count: an improvement of exactly tol
    # (here 0: the loss stays where it is) resets it, as in MLPRegressor, so no convergence
    ae = Autoencoder(3, batch_size=50, tol=0.0, n_iter_no_change=2, max_iter=6, **FROZEN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ae.fit(unit_data)
    assert len(set(ae.loss_curve_)) == 1  # the premise: the same loss every epoch
    assert ae.n_iter_ == 6
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


def test_validation_rows_are_never_trained_on(unit_data, monkeypatch):
    trained, validated = [], []
    run_epoch, validation_score = Trainer.run_epoch, Autoencoder._validation_score

    def spy_epoch(self, source, indices, epoch=0):
        trained.append(np.array(indices))
        return run_epoch(self, source, indices, epoch)

    def spy_score(self, source, indices):
        validated.append(np.array(indices))
        return validation_score(self, source, indices)

    monkeypatch.setattr(Trainer, "run_epoch", spy_epoch)
    monkeypatch.setattr(Autoencoder, "_validation_score", spy_score)
    Autoencoder(3, max_iter=2, early_stopping=True, validation_fraction=0.2,
                random_state=0).fit(unit_data)
    train, val = trained[0], validated[0]
    assert len(val) == 40 and len(train) == 160
    assert not set(train) & set(val)
    assert sorted(set(train) | set(val)) == list(range(200))
    assert all(np.array_equal(t, train) for t in trained)


def test_the_validation_split_follows_random_state(unit_data, monkeypatch):
    validated = {}
    validation_score = Autoencoder._validation_score

    def spy_score(self, source, indices):
        validated.setdefault(self.random_state, np.array(indices))
        return validation_score(self, source, indices)

    monkeypatch.setattr(Autoencoder, "_validation_score", spy_score)
    for seed in (0, 1):
        ae = Autoencoder(3, max_iter=1, early_stopping=True, random_state=seed).fit(unit_data)
        np.testing.assert_array_equal(validated[seed],
                                      _validation_split(200, 0.1, ae._seed)[1])
    assert not np.array_equal(validated[0], validated[1])
    # and for the same seed, the same split every time
    a, b = _validation_split(200, 0.1, 123), _validation_split(200, 0.1, 123)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_sparse_input_draws_the_same_noise_per_row_as_dense_input(unit_data):
    # a sparse batch is densified row for row in the order asked for: a random variant's
    # per-row noise lands on the same rows as for the dense array
    sp = pytest.importorskip("scipy.sparse")
    X = np.where(unit_data > 0.4, unit_data, 0)
    params = dict(n_components=3, max_iter=3, batch_size=32, random_state=0)
    dense = DenoisingAutoencoder(**params).fit(X)
    sparse = DenoisingAutoencoder(**params).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X), rtol=1e-4, atol=1e-5)


def test_the_epoch_loss_is_summed_in_float64(monkeypatch):
    # 20,000 batch losses of one row: a float32 running sum drifts by about the default tol
    rng = np.random.RandomState(0)
    losses = (40 + 20 * rng.rand(20_000)).astype(np.float32)  # as BCE sums per image
    X = rng.rand(len(losses), 2).astype(np.float32)
    steps = iter(losses)

    def batch_step(self, batch):
        value = torch.tensor(next(steps))
        return {"loss": value, "reconstruction": value}

    monkeypatch.setattr(Trainer, "batch_step", batch_step)
    ae = Autoencoder(1, batch_size=1, max_iter=1, shuffle=False, random_state=0).fit(X)
    expected = losses.astype(np.float64).mean()
    float32_sum = np.float32(0)
    for value in losses:
        float32_sum += value
    assert abs(float32_sum / len(losses) - expected) > 1e-5  # the premise: float32 drifts
    assert ae.loss_curve_[0] == pytest.approx(expected, rel=1e-12)


def test_epoch_totals_are_float64_where_the_device_has_it():
    # torch.device needs no such hardware: the choice is by device type
    assert _total_dtype(torch.device("cpu")) == torch.float64
    assert _total_dtype(torch.device("cuda")) == torch.float64
    assert _total_dtype(torch.device("mps")) == torch.float32  # MPS has no float64


@pytest.mark.parametrize("key, make", [
    ("step", lambda param: torch.zeros(3)),                    # a step count is a scalar
    ("exp_avg", lambda param: torch.zeros(param.shape[::-1])),  # the same size, transposed
])
def test_optimizer_state_of_another_shape_is_refused(unit_data, key, make):
    ae = Autoencoder(3, hidden_layer_sizes=(5,), max_iter=1, random_state=0).fit(unit_data)
    param = next(ae.encoder_.parameters())
    assert param.dim() == 2 and param.shape[0] != param.shape[1]
    ae._optimizer_state[1]["state"][0][key] = make(param)
    with pytest.raises(ValueError, match="does not fit the network"):
        ae.partial_fit(unit_data)
