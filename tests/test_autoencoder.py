"""Behaviour of skae.Autoencoder: the network, the methods and what they compute."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from torch import nn

import skae._base
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae._arrays import INFERENCE_BATCH
from skae._training import SOLVERS
from skae.metrics import reconstruction_r2


def _linear_shapes(module):
    return [tuple(m.weight.shape[::-1]) for m in module.modules() if isinstance(m, nn.Linear)]


def test_default_network_is_the_chapters_on_784_features():
    X = np.random.RandomState(0).rand(64, 784).astype(np.float32)
    ae = Autoencoder(max_iter=1, random_state=0).fit(X)
    n_params = sum(p.numel() for net in (ae.encoder_, ae.decoder_) for p in net.parameters())
    assert n_params == 50_992
    assert _linear_shapes(ae.encoder_) == [(784, 32)]
    assert _linear_shapes(ae.decoder_) == [(32, 784)]
    assert isinstance(ae.encoder_[-1], nn.ReLU)
    assert ae.loss_ == "bce" and ae.n_components_ == 32
    X_rec = ae.inverse_transform(ae.transform(X))
    assert X_rec.min() > 0 and X_rec.max() < 1  # sigmoid output


def test_deep_network_mirrors_its_hidden_layers(unit_data):
    ae = Autoencoder(3, hidden_layer_sizes=(16, 8), max_iter=1, random_state=0).fit(unit_data)
    assert _linear_shapes(ae.encoder_) == [(12, 16), (16, 8), (8, 3)]
    assert _linear_shapes(ae.decoder_) == [(3, 8), (8, 16), (16, 12)]


def test_code_activation_defaults_to_activation_and_can_differ(unit_data):
    ae = Autoencoder(3, activation="tanh", max_iter=1, random_state=0).fit(unit_data)
    assert isinstance(ae.encoder_[-1], nn.Tanh)
    ae = Autoencoder(3, code_activation="identity", max_iter=1, random_state=0).fit(unit_data)
    assert isinstance(ae.encoder_[-1], nn.Identity)
    assert (ae.transform(unit_data) < 0).any()


def test_auto_loss_picks_squared_error_for_unscaled_data(tabular_data, unit_data):
    assert Autoencoder(3, max_iter=1, random_state=0).fit(tabular_data).loss_ == "mse"
    assert Autoencoder(3, max_iter=1, random_state=0).fit(unit_data).loss_ == "bce"
    assert Autoencoder(3, loss="mse", max_iter=1, random_state=0).fit(unit_data).loss_ == "mse"


def _untrained(model, X):
    """``model`` fitted for one epoch at a learning rate that leaves its weights as built."""
    return model.set_params(max_iter=1, learning_rate_init=1e-12).fit(X)


def _output_bias(model):
    """The decoder's last parameter: its output layer's bias."""
    return list(model.decoder_.parameters())[-1].detach().numpy()


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _as(kind, X, tmp_path):
    if kind == "csr":
        return sparse.csr_matrix(X)
    if kind == "memmap":
        mapped = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=X.dtype,
                                           shape=X.shape)
        mapped[:] = X
        return mapped
    return X


@pytest.mark.parametrize("model", [
    Autoencoder(3), Autoencoder(3, hidden_layer_sizes=(8,)), DenoisingAutoencoder(3),
    SparseAutoencoder(3), ContractiveAutoencoder(3), VariationalAutoencoder(3)],
    ids=["Autoencoder", "Autoencoder_deep", "DenoisingAutoencoder", "SparseAutoencoder",
         "ContractiveAutoencoder", "VariationalAutoencoder"])
@pytest.mark.parametrize("kind", ["dense", "csr", "memmap"])
def test_a_bce_model_but_the_vae_starts_at_the_feature_means(model, kind, tmp_path):
    # the constant output of least cross-entropy, as MSE's zero bias is for standardised
    # targets; a feature always 0 or 1 gets a finite logit
    X = np.random.RandomState(0).rand(200, 6) * [1, 0.5, 0.05, 0.2, 0, 1]
    X[:, 5] = 1
    X_before = X.copy()
    ae = _untrained(clone(model).set_params(random_state=0), _as(kind, X, tmp_path))
    assert ae.loss_ == "bce"
    bias = _output_bias(ae)
    if isinstance(ae, VariationalAutoencoder):  # its KL term would switch the code off
        assert np.abs(bias).max() < 1e-9
        return
    expected = _logit(np.clip(X.mean(axis=0), 1e-4, 1 - 1e-4))
    np.testing.assert_allclose(bias, expected, rtol=1e-6, atol=1e-6)
    assert np.isfinite(bias).all() and bias[4] < -9 and bias[5] > 9
    np.testing.assert_array_equal(X, X_before)
    # the reconstruction starts near the means (a random code moves it), not at 0.5
    start = ae.inverse_transform(ae.transform(X)).mean(axis=0)
    assert np.abs(start - X.mean(axis=0)).mean() < np.abs(0.5 - X.mean(axis=0)).mean() / 2


def test_a_conv_bce_model_starts_at_each_channels_mean():
    # rows are C-order (height, width, channels): channel c is every third value
    rng = np.random.RandomState(0)
    X = (rng.rand(40, 4, 4, 3) * [0.2, 0.6, 1.0]).reshape(40, -1)
    ae = _untrained(ConvAutoencoder(conv_filters=(2,), image_shape=(4, 4, 3), random_state=0), X)
    np.testing.assert_allclose(_output_bias(ae), _logit(X.reshape(-1, 3).mean(axis=0)),
                               rtol=1e-5)
    start = ae.inverse_transform(ae.transform(X)).reshape(-1, 3).mean(axis=0)
    means = np.array([0.1, 0.3, 0.5])
    assert np.abs(start - means).mean() < np.abs(0.5 - means).mean() / 2  # 0.2 / 2


def test_an_mse_model_and_a_warm_start_keep_their_output_bias(unit_data, tabular_data):
    ae = _untrained(Autoencoder(3, random_state=0), tabular_data)
    assert ae.loss_ == "mse"  # standardised targets: the zero bias is their mean already
    assert np.abs(_output_bias(ae)).max() < 1e-9
    ae = Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    trained = ae.decoder_.output_layer.bias.detach().clone()
    # data of other means train the network on; they do not restart its output bias
    ae.set_params(warm_start=True, learning_rate_init=1e-12).fit(unit_data * 0.1)
    ae.partial_fit(unit_data * 0.1)
    torch.testing.assert_close(ae.decoder_.output_layer.bias.detach(), trained,
                               rtol=0, atol=1e-9)


def test_data_rounded_just_past_the_unit_interval_count_as_in_it(unit_data):
    # MinMaxScaler's maximum can be 1 + 2.2e-16: "auto" must not flip to mse fold by fold
    from sklearn.preprocessing import MinMaxScaler

    scaled = MinMaxScaler().fit_transform(np.exp(unit_data.astype(np.float64) * 3.7))
    above64, above32 = np.nextafter(1.0, 2.0), np.nextafter(np.float32(1), np.float32(2))
    # 1 + 2.2e-16, 1 + 1.2e-7 and, for float32 data far from zero against their range,
    # 1 + 4e-6, as MinMaxScaler can round
    for X, above in ((scaled.copy(), above64), (scaled.astype(np.float32), above32),
                     (scaled.astype(np.float32), np.float32(1 + 4e-6))):
        X[0, 0] = above
        assert X.max() > 1  # the premise
        ae = Autoencoder(3, max_iter=1, random_state=0).fit(X)
        assert ae.loss_ == "bce" and np.isfinite(ae.score(X))
        assert np.isfinite(ae.score_samples(X[:1]))  # one row alone, as in the batch
        Autoencoder(3, loss="bce", max_iter=1).fit(X)  # and bce takes them
        dae = DenoisingAutoencoder(3, noise_level=0.5, max_iter=1, random_state=0).fit(X)
        noisy = dae._corrupt(torch.from_numpy(X.astype(np.float32)), torch.Generator())
        assert 0 <= noisy.min() and noisy.max() <= 1  # clipped as images in [0, 1]
    beyond = scaled.copy()
    beyond[0, 0] = 1 + 2e-5
    for outside in (beyond, scaled + 1e-3, scaled - 1e-3, (scaled - 0.5) * 1e-9):  # tiny
        assert Autoencoder(3, max_iter=1, random_state=0).fit(outside).loss_ == "mse"
        with pytest.raises(ValueError, match="needs data in \\[0, 1\\]"):
            Autoencoder(3, loss="bce", max_iter=1).fit(outside)


def test_unscaled_tabular_data_train_as_well_as_pca(tabular_data):
    """Rank-3 data centred at 50: internal scaling lets a linear code explain it nearly all."""
    ae = Autoencoder(3, code_activation="identity", max_iter=300, batch_size=32,
                     learning_rate_init=3e-3, random_state=0).fit(tabular_data)
    pca = PCA(3).fit(tabular_data)
    ae_err = np.mean((tabular_data - ae.inverse_transform(ae.transform(tabular_data))) ** 2)
    pca_err = np.mean((tabular_data - pca.inverse_transform(pca.transform(tabular_data))) ** 2)
    total = np.var(tabular_data, axis=0).mean()
    assert ae_err < 1e-4 * total  # PCA(3) leaves only the noise: pca_err ~ 1e-7 * total
    assert pca_err < ae_err


def test_training_learns_the_manifold(unit_data):
    ae = Autoencoder(4, code_activation="identity", learning_rate_init=1e-2, batch_size=16,
                     max_iter=100, random_state=0).fit(unit_data)
    error = np.mean((unit_data - ae.inverse_transform(ae.transform(unit_data))) ** 2)
    assert error < 0.02 * unit_data.var(axis=0).mean()
    assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    assert len(ae.loss_curve_) == ae.n_iter_ == len(ae.loss_terms_["reconstruction"])
    # the loss curve is the sum of the named terms; here there is only one
    np.testing.assert_allclose(ae.loss_curve_, ae.loss_terms_["reconstruction"], rtol=1e-6)


def test_score_samples_is_minus_the_squared_error_in_data_units(tabular_data):
    ae = Autoencoder(3, max_iter=20, random_state=0).fit(tabular_data)
    X_rec = ae.inverse_transform(ae.transform(tabular_data))
    expected = -np.sum((tabular_data - X_rec) ** 2, axis=1)
    np.testing.assert_allclose(ae.score_samples(tabular_data), expected, rtol=1e-6, atol=1e-8)
    assert ae.score(tabular_data) == pytest.approx(expected.mean(), rel=1e-6)


def test_score_samples_is_minus_the_cross_entropy_in_nats(unit_data):
    X = unit_data.astype(np.float64)
    ae = Autoencoder(3, max_iter=20, random_state=0).fit(X)
    p = ae.inverse_transform(ae.transform(X))
    expected = np.sum(X * np.log(p) + (1 - X) * np.log1p(-p), axis=1)
    np.testing.assert_allclose(ae.score_samples(X), expected, rtol=1e-6)


def test_better_fit_scores_higher(unit_data):
    short = Autoencoder(4, max_iter=2, batch_size=32, random_state=0).fit(unit_data)
    long = Autoencoder(4, max_iter=80, batch_size=32, random_state=0).fit(unit_data)
    assert long.score(unit_data) > short.score(unit_data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_methods_return_the_input_float_dtype(unit_data, dtype):
    X = unit_data.astype(dtype)
    ae = Autoencoder(3, max_iter=2, random_state=0).fit(X)
    Z = ae.transform(X)
    assert Z.dtype == dtype and Z.shape == (200, 3)
    assert ae.inverse_transform(Z).dtype == dtype
    assert ae.score_samples(X).dtype == dtype
    assert ae.fit_transform(X).dtype == dtype


def test_float32_and_float64_transforms_agree(unit_data):
    ae = Autoencoder(3, max_iter=5, random_state=0).fit(unit_data)
    np.testing.assert_allclose(ae.transform(unit_data.astype(np.float64)),
                               ae.transform(unit_data), rtol=1e-4, atol=1e-5)
    # the float64 path upcasts copies: the fitted networks stay float32
    assert all(p.dtype == torch.float32 for p in ae.encoder_.parameters())


def test_integer_input_is_accepted(unit_data):
    X = (unit_data > 0.5).astype(np.int64)
    Z = Autoencoder(3, max_iter=2, random_state=0).fit(X).transform(X)
    assert Z.dtype == np.float64


def test_same_random_state_gives_bit_identical_codes(unit_data):
    fit = lambda: Autoencoder(3, hidden_layer_sizes=(8,), max_iter=5, batch_size=32,  # noqa
                              random_state=7).fit(unit_data).transform(unit_data)
    assert np.array_equal(fit(), fit())
    other = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=5, batch_size=32,
                        random_state=8).fit(unit_data).transform(unit_data)
    assert not np.array_equal(fit(), other)


def test_fit_leaves_global_rng_states_untouched(unit_data):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    ae = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                     early_stopping=True).fit(unit_data)
    ae.partial_fit(unit_data)
    ae.sample(5, random_state=0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and after[2:] == np_state[2:]
    assert np.array_equal(after[1], np_state[1])


def test_partial_fit_counts_epochs_and_keeps_the_first_loss(unit_data, tabular_data):
    ae = Autoencoder(3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for _ in range(3):
            ae.partial_fit(unit_data)
    assert ae.n_iter_ == 3 and len(ae.loss_curve_) == 3 and ae.loss_ == "bce"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ae.partial_fit(unit_data * 2)
    with pytest.raises(ValueError, match="features"):
        ae.partial_fit(unit_data[:, :5])


def test_partial_fit_epochs_equal_fit_epochs(unit_data):
    """partial_fit is one epoch of fit: n calls give fit(max_iter=n)'s weights exactly."""
    full = Autoencoder(3, max_iter=3, batch_size=50, random_state=0).fit(unit_data)
    inc = Autoencoder(3, batch_size=50, random_state=0)
    for _ in range(3):
        inc.partial_fit(unit_data)
    np.testing.assert_array_equal(full.transform(unit_data), inc.transform(unit_data))


def test_each_epoch_shuffles_afresh(unit_data, monkeypatch):
    # re-seeding with the seed alone (not seed + epoch) would repeat one order every epoch
    import skae._training as training

    orders = []
    batch_indices = training.batch_indices

    def spy(indices, batch_size, generator=None):
        batches = batch_indices(indices, batch_size, generator)
        orders.append(np.concatenate(batches))
        return batches

    monkeypatch.setattr(training, "batch_indices", spy)
    Autoencoder(3, max_iter=2, batch_size=50, random_state=0).fit(unit_data)
    assert len(orders) == 2
    assert sorted(orders[0]) == list(range(200)) and sorted(orders[1]) == list(range(200))
    assert not np.array_equal(orders[0], orders[1])


def test_warm_start_continues_with_the_optimizer_state(unit_data):
    """2 + 2 warm-started epochs are exactly 4 epochs: weights *and* Adam's moments carry."""
    four = Autoencoder(3, max_iter=4, batch_size=50, random_state=0).fit(unit_data)
    warm = Autoencoder(3, max_iter=2, batch_size=50, random_state=0, warm_start=True)
    warm.fit(unit_data).fit(unit_data)
    assert warm.n_iter_ == 4 and len(warm.loss_curve_) == 4
    np.testing.assert_array_equal(four.transform(unit_data), warm.transform(unit_data))
    cold = Autoencoder(3, max_iter=2, batch_size=50, random_state=0).fit(unit_data)
    assert cold.fit(unit_data).n_iter_ == 2  # without warm_start, fit starts over


def test_convergence_warning_at_max_iter_and_not_when_converged(unit_data):
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    # it counts the steps, which small data need more of: 180 training rows of 200
    with pytest.warns(ConvergenceWarning, match=r"\(2\) reached .*\(6 gradient steps, 3 per "
                                                r"epoch of batch_size=64; raise max_iter"):
        Autoencoder(3, max_iter=2, batch_size=64, early_stopping=True, n_iter_no_change=5,
                    random_state=0).fit(unit_data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae = Autoencoder(3, max_iter=50, tol=1e9, n_iter_no_change=2, random_state=0).fit(unit_data)
    # as in MLPRegressor: epoch 1 improves on inf, then more than n_iter_no_change epochs don't
    assert ae.n_iter_ == 4


@pytest.mark.parametrize("params, epochs", [
    (dict(batch_size=64), 75),  # 4 steps an epoch: 300 steps take 75 epochs
    (dict(batch_size=64, early_stopping=True), 100),  # 180 training rows: 3 steps an epoch
    (dict(batch_size=20), 50),  # 10 steps an epoch: never fewer than 50 epochs
    (dict(batch_size=64, max_iter=7), 7),  # an int is the epochs, whatever the data
])
def test_max_iter_auto_trains_small_data_for_enough_steps(unit_data, monkeypatch, params,
                                                          epochs):
    monkeypatch.setattr(skae._base, "_AUTO_STEPS", 300)  # 5,000 by default: a quicker test
    ae = Autoencoder(3, n_iter_no_change=10**6, random_state=0, **params)
    warning = (r"\(75 epochs, max_iter=auto\) reached .*\(300 gradient steps, 4 per epoch"
               r" of batch_size=64; pass an int max_iter above 75 for more\)")
    with pytest.warns(ConvergenceWarning, match=warning if epochs == 75 else "Maximum"):
        ae.fit(unit_data)
    assert ae.n_iter_ == epochs and len(ae.loss_curve_) == epochs


def test_a_default_autoencoder_beats_pca_on_the_digits(digits):
    """The default budget trains small data: 50 epochs of 1,500 digits (300 steps) fall well
    short of PCA, "auto"'s 834 epochs (5,004 steps) pass it."""
    train, test = digits
    pca = reconstruction_r2(PCA(16).fit(train), test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        default = Autoencoder(16, random_state=0).fit(train)
        short = Autoencoder(16, max_iter=50, random_state=0).fit(train)
    assert reconstruction_r2(short, test) < pca - 0.1
    assert reconstruction_r2(default, test) > pca + 0.01
    assert default.n_iter_ > 100


def test_a_convergence_warning_made_an_error_leaves_a_whole_model(unit_data):
    # the warning comes last: a filter that raises it leaves the code statistics of sample
    ae = Autoencoder(3, max_iter=2, random_state=0, warm_start=True)
    for max_iter in (2, 3):  # a first fit, then a warm start that changes the weights
        ae.set_params(max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            with pytest.raises(ConvergenceWarning):
                ae.fit(unit_data)
        codes = ae.transform(unit_data)
        np.testing.assert_allclose(ae._code_stats[1], codes.mean(axis=0), rtol=1e-4, atol=1e-6)
        assert ae.sample(2, random_state=0).shape == (2, unit_data.shape[1])


def test_early_stopping_restores_the_best_weights(unit_data):
    from skae._base import _validation_split

    ae = Autoencoder(3, max_iter=40, early_stopping=True, n_iter_no_change=3,
                     learning_rate_init=0.05, batch_size=16, random_state=0).fit(unit_data)
    assert len(ae.validation_scores_) == ae.n_iter_
    assert ae.best_validation_score_ == max(ae.validation_scores_)
    assert ae.best_loss_ is None
    _, val = _validation_split(len(unit_data), 0.1, ae._seed)
    assert len(val) == 20
    assert ae.score(unit_data[val]) == pytest.approx(ae.best_validation_score_, rel=1e-5)


@pytest.mark.parametrize("make", [
    lambda: Autoencoder(3),
    lambda: __import__("skae").VariationalAutoencoder(2, hidden_layer_sizes=(8,)),
], ids=["squared-error", "vae"])
def test_early_stopping_decides_alike_at_any_scale_of_x(tabular_data, make):
    runs = {}
    for factor in (1e-3, 1.0, 1e3):
        ae = make().set_params(max_iter=80, early_stopping=True, n_iter_no_change=2,
                               tol=0.1, learning_rate_init=1e-2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            runs[factor] = ae.fit(tabular_data * factor)
    n_iter = {factor: ae.n_iter_ for factor, ae in runs.items()}
    assert len(set(n_iter.values())) == 1 and n_iter[1.0] < 80, n_iter
    gains = np.diff(runs[1.0].validation_scores_)
    if runs[1.0].loss_ == "mse" and not hasattr(runs[1.0], "log_likelihood"):
        for factor, ae in runs.items():  # scores in the data's units, gains scaled alike
            np.testing.assert_allclose(np.diff(ae.validation_scores_), gains * factor**2,
                                       rtol=1e-2, atol=1e-6 * np.abs(gains).max() * factor**2)


def test_divergence_stops_with_a_warning_and_finite_weights(tabular_data):
    ae = Autoencoder(3, solver="sgd", learning_rate_init=1e4, max_iter=20, random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        ae.fit(tabular_data)
    assert np.isfinite(ae.transform(tabular_data)).all()
    assert np.isfinite(ae.inverse_transform(ae.transform(tabular_data))).all()
    assert all(np.isfinite(v) for v in ae.loss_curve_)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_a_diverged_epoch_restores_the_weights_and_optimizer_state_of_the_last(
        tabular_data, monkeypatch, solver):
    """Weights made non-finite by epoch 3 leave the model, and the optimizer state that a
    warm start continues from, exactly as after epoch 2."""
    import skae._training as training

    run_epoch, epochs = training.Trainer.run_epoch, []

    def diverging_at_3(self, *args, **kwargs):
        terms = run_epoch(self, *args, **kwargs)
        epochs.append(terms)
        if len(epochs) == 3:  # after the epoch's steps changed the weights and the state
            with torch.no_grad():
                next(self.module.parameters()).view(-1)[0] = float("nan")
        return terms

    params = dict(solver=solver, learning_rate_init=1e-3, batch_size=32, random_state=0)
    monkeypatch.setattr(training.Trainer, "run_epoch", diverging_at_3)
    with pytest.warns(RuntimeWarning, match="diverged at epoch 3"):
        diverged = Autoencoder(3, max_iter=5, warm_start=True, **params).fit(tabular_data)
    monkeypatch.undo()
    two = Autoencoder(3, max_iter=2, warm_start=True, **params).fit(tabular_data)
    assert diverged.n_iter_ == two.n_iter_ == 2
    np.testing.assert_array_equal(diverged.transform(tabular_data), two.transform(tabular_data))
    for model in (diverged, two):  # one more epoch each, from the restored optimizer state
        model.set_params(max_iter=1).fit(tabular_data)
    np.testing.assert_array_equal(diverged.transform(tabular_data), two.transform(tabular_data))


def test_a_non_finite_validation_score_is_a_divergence(digits):
    # epoch 1's weights are finite but so large that the validation rows' logits overflow
    X = digits[0][:200].astype(np.float32)
    ae = Autoencoder(4, max_iter=5, solver="sgd", learning_rate_init=1e20, early_stopping=True,
                     random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged at epoch 1.*validation score"):
        ae.fit(X)
    assert ae.n_iter_ == 0 and not ae.validation_scores_
    assert np.isfinite(ae.score_samples(X)).all()


def test_training_snapshot_is_an_independent_copy_in_the_same_layout(digits):
    from skae import ConvAutoencoder
    from skae._training import Snapshot, make_optimizer

    ae = ConvAutoencoder(conv_filters=(4,), image_shape=(8, 8, 1), max_iter=1,
                         random_state=0).partial_fit(digits[0])
    networks = nn.ModuleDict({"encoder": ae.encoder_, "decoder": ae.decoder_})
    optimizer = make_optimizer("adam", networks.parameters(), 1e-3, ae._optimizer_state[1])
    snapshot = Snapshot(networks, optimizer)
    for round_ in range(2):  # the first take allocates the copies, the next overwrites them
        snapshot.take()
        if round_ == 0:
            first_copy = snapshot._weights[0]
        assert snapshot._weights[0] is first_copy
        before = {name: value.clone() for name, value in networks.state_dict().items()}
        moments = [state["exp_avg"].clone() for state in optimizer.state.values()]
        with torch.no_grad():
            for param in networks.parameters():
                param.add_(1.0)
        for param_state in optimizer.state.values():
            param_state["exp_avg"].add_(1.0)
        # untouched by the in-place updates, in the live tensors' layout
        for saved, (name, value) in zip(snapshot._weights, networks.state_dict().items(),
                                        strict=True):
            torch.testing.assert_close(saved, before[name], rtol=0, atol=0)
            assert saved.stride() == value.stride()
        snapshot.restore()
        for name, value in networks.state_dict().items():
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)
        for state, want in zip(optimizer.state.values(), moments, strict=True):
            torch.testing.assert_close(state["exp_avg"], want, rtol=0, atol=0)
    assert any(p.stride() != p.contiguous().stride() for p in networks.parameters())


def test_ctrl_c_while_saving_the_best_weights_keeps_the_last_best_whole(unit_data,
                                                                       monkeypatch):
    """Ctrl-C in the middle of copying a new best leaves the previous best to restore:
    the fit ends with weights that score best_validation_score_, not a mix."""
    import skae._training as training
    from skae._base import _validation_split

    made, armed = [], {"on": False, "copies": 0}
    init, take, copy_ = training.Snapshot.__init__, training.Snapshot.take, torch.Tensor.copy_

    def recording_init(self, *args):
        init(self, *args)
        made.append(self)

    def interrupted_copy(self, source, *args, **kwargs):
        if armed["on"]:
            armed["copies"] += 1
            if armed["copies"] == 2:  # one tensor copied, then Ctrl-C
                raise KeyboardInterrupt
        return copy_(self, source, *args, **kwargs)

    def interrupted_take(self):
        # made[0] holds each epoch's start; made[1:] the best weights, in turns
        armed["on"] = self is not made[0] and self._layout is not None and not armed["copies"]
        try:
            return take(self)
        finally:
            armed["on"] = False

    monkeypatch.setattr(training.Snapshot, "__init__", recording_init)
    monkeypatch.setattr(training.Snapshot, "take", interrupted_take)
    monkeypatch.setattr(torch.Tensor, "copy_", interrupted_copy)
    ae = Autoencoder(3, max_iter=40, early_stopping=True, n_iter_no_change=40,
                     learning_rate_init=0.01, batch_size=16, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        ae.fit(unit_data)
    assert armed["copies"] == 2  # the interruption happened, in a take that overwrote
    assert ae.best_validation_score_ < ae.validation_scores_[-1]  # of a new best, unsaved
    _, val = _validation_split(len(unit_data), 0.1, ae._seed)
    assert ae.score(unit_data[val]) == pytest.approx(ae.best_validation_score_, rel=1e-5)


def test_a_snapshot_before_the_first_step_restores_no_optimizer_state(unit_data):
    """A first epoch that diverges leaves the optimizer as it was: without state."""
    from skae._training import Snapshot, make_optimizer

    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    networks = nn.ModuleDict({"encoder": ae.encoder_, "decoder": ae.decoder_})
    optimizer = make_optimizer("adam", networks.parameters(), 1e-3, None)
    before = [p.detach().clone() for p in networks.parameters()]
    snapshot = Snapshot(networks, optimizer).take()
    sum(p.square().sum() for p in networks.parameters()).backward()
    optimizer.step()
    assert optimizer.state
    snapshot.restore()
    assert not optimizer.state
    for param, want in zip(networks.parameters(), before, strict=True):
        torch.testing.assert_close(param.detach(), want, rtol=0, atol=0)


def test_keyboard_interrupt_stops_training_and_keeps_a_usable_model(unit_data, monkeypatch):
    from skae import _training

    calls = {"n": 0}
    original = _training.Trainer.run_epoch

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_training.Trainer, "run_epoch", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        ae = Autoencoder(3, max_iter=10, random_state=0).fit(unit_data)
    assert ae.n_iter_ == 2
    assert np.isfinite(ae.transform(unit_data)).all()


def test_a_ctrl_c_while_scoring_an_epoch_undoes_that_epoch(unit_data, monkeypatch):
    calls = {"n": 0}
    original = Autoencoder._validation_score

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Autoencoder, "_validation_score", interrupted)
    kw = dict(max_iter=10, early_stopping=True, n_iter_no_change=50, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        ae = Autoencoder(3, **kw).fit(unit_data)
    monkeypatch.undo()
    assert ae.n_iter_ == len(ae.loss_curve_) == len(ae.validation_scores_) == 2
    two = Autoencoder(3, **{**kw, "max_iter": 2}).fit(unit_data)
    np.testing.assert_array_equal(ae.transform(unit_data), two.transform(unit_data))


def test_a_warm_start_with_early_stopping_ends_on_the_best_weights(tabular_data):
    from skae._base import _validation_split

    ae = Autoencoder(2, hidden_layer_sizes=(8,), batch_size=16, max_iter=60,
                     early_stopping=True, validation_fraction=0.2, n_iter_no_change=2,
                     learning_rate_init=0.05, random_state=1, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(tabular_data)
    _, val = _validation_split(len(tabular_data), 0.2, ae._seed)
    first = ae.n_iter_
    for _ in range(2):  # each warm fit stops at once (the count carries over, as sklearn's)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ae.fit(tabular_data)
        assert ae.n_iter_ > first
        assert ae.score(tabular_data[val]) == pytest.approx(ae.best_validation_score_,
                                                            rel=1e-6)
        assert ae.best_validation_score_ >= max(ae.validation_scores_[:first])


def test_best_validation_score_is_that_of_the_starting_weights_when_none_beat_them(
        tabular_data):
    # as documented: no epoch of this warm fit (a diverging rate, on new rows) beats the
    # starting weights, which are kept, with their score on the new split
    from skae._base import _validation_split

    ae = Autoencoder(2, max_iter=5, early_stopping=True, warm_start=True, random_state=0)
    ae.fit(tabular_data[:100])
    start = [p.detach().clone() for p in ae.encoder_.parameters()]
    ae.set_params(learning_rate_init=1.0, max_iter=3).fit(tabular_data[100:])
    _, val = _validation_split(100, ae.validation_fraction, ae._seed)
    assert ae.best_validation_score_ not in ae.validation_scores_
    assert ae.best_validation_score_ > max(ae.validation_scores_[5:])
    assert ae.score(tabular_data[100:][val]) == pytest.approx(ae.best_validation_score_,
                                                              rel=1e-6)
    for kept, before in zip(ae.encoder_.parameters(), start):
        torch.testing.assert_close(kept.detach(), before, rtol=0, atol=0)


def test_a_term_added_by_a_warm_start_counts_zero_before_it(unit_data):
    ae = Autoencoder(3, max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(unit_data).set_params(alpha=0.1, max_iter=2).fit(unit_data)
    terms = ae.loss_terms_
    assert len(terms["weight_decay"]) == len(ae.loss_curve_) == 5
    assert terms["weight_decay"][:3] == [0.0] * 3 and min(terms["weight_decay"][3:]) > 0
    np.testing.assert_allclose(np.sum([terms[name] for name in terms], axis=0),
                               ae.loss_curve_, rtol=1e-6)
    with warnings.catch_warnings():  # and a term dropped later counts 0 after
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.set_params(alpha=0.0).fit(unit_data)
    terms = ae.loss_terms_
    assert len(terms["weight_decay"]) == len(ae.loss_curve_) == 7
    assert terms["weight_decay"][5:] == [0.0] * 2
    np.testing.assert_allclose(np.sum([terms[name] for name in terms], axis=0),
                               ae.loss_curve_, rtol=1e-6)


def test_training_warnings_point_at_the_callers_line(tabular_data):
    from skae import ContractiveAutoencoder, DenoisingAutoencoder

    ae = Autoencoder(3, solver="sgd", learning_rate_init=1e4, max_iter=20, random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged") as caught:
        ae.fit(tabular_data)
    assert {w.filename for w in caught if "diverged" in str(w.message)} == {__file__}
    for cls in (Autoencoder, DenoisingAutoencoder, ContractiveAutoencoder):  # overrides too
        with pytest.warns(UserWarning) as caught:
            cls(3, max_iter=1, random_state=0).fit(tabular_data + 1e8)
        assert {w.filename for w in caught} == {__file__}, cls  # rounding, max_iter


def test_verbose_prints_one_line_per_epoch(unit_data, capsys):
    Autoencoder(3, max_iter=3, verbose=1, early_stopping=True, random_state=0).fit(unit_data)
    out = capsys.readouterr().out
    assert out.count("Epoch") == 3 and "loss" in out and "validation score" in out and "s" in out


def test_sample_draws_from_a_gaussian_fitted_to_the_training_codes(unit_data):
    ae = Autoencoder(3, code_activation="identity", max_iter=20, random_state=0).fit(unit_data)
    codes = ae.transform(unit_data).astype(np.float64)
    draws = ae._draw_codes(50_000, np.random.RandomState(0))
    np.testing.assert_allclose(draws.mean(0), codes.mean(0), atol=0.02 * codes.std())
    np.testing.assert_allclose(np.cov(draws.T), np.cov(codes.T), atol=0.03 * codes.var(0).max())
    X_new = ae.sample(10, random_state=0)
    assert X_new.shape == (10, 12)
    np.testing.assert_array_equal(X_new, ae.sample(10, random_state=0))
    assert not np.array_equal(X_new, ae.sample(10, random_state=1))
    assert X_new.min() >= 0 and X_new.max() <= 1


def test_running_code_statistics_equal_the_batch_statistics(unit_data):
    ae = Autoencoder(3, max_iter=3, random_state=0).fit(unit_data)
    ae._update_code_distribution(unit_data[:70], reset=True)
    ae._update_code_distribution(unit_data[70:], reset=False)
    count, mean, scatter = ae._code_stats
    codes = ae.transform(unit_data).astype(np.float64)
    assert count == 200
    np.testing.assert_allclose(mean, codes.mean(0), rtol=1e-10)
    np.testing.assert_allclose(scatter / (count - 1), np.cov(codes.T), rtol=1e-8, atol=1e-12)


def test_code_statistics_never_hold_all_codes_at_once(monkeypatch):
    X = np.random.RandomState(0).rand(2 * INFERENCE_BATCH + 10, 6)
    ae = Autoencoder(2, max_iter=1, random_state=0).fit(X[:100])
    encoded_rows = []
    encode = ae._encode
    monkeypatch.setattr(ae, "_encode", lambda rows, *a: encoded_rows.append(len(rows))
                        or encode(rows, *a))
    ae._update_code_distribution(X, reset=True)
    assert encoded_rows == [INFERENCE_BATCH, INFERENCE_BATCH, 10]
    count, mean, scatter = ae._code_stats
    codes = ae.transform(X).astype(np.float64)
    assert count == len(X)
    np.testing.assert_allclose(mean, codes.mean(0), rtol=1e-10)
    np.testing.assert_allclose(scatter / (count - 1), np.cov(codes.T), rtol=1e-8)


@pytest.mark.parametrize("n_samples", [0, -1, 1.5, "3"])
def test_sample_rejects_bad_n_samples(unit_data, n_samples):
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    with pytest.raises(ValueError, match="n_samples"):
        ae.sample(n_samples)


def test_dataframe_input_and_pandas_output(unit_data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(unit_data, columns=[f"f{i}" for i in range(12)])
    ae = Autoencoder(3, max_iter=2, random_state=0).fit(df)
    assert list(ae.feature_names_in_) == list(df.columns)
    assert list(ae.get_feature_names_out()) == ["autoencoder0", "autoencoder1", "autoencoder2"]
    out = ae.set_output(transform="pandas").transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["autoencoder0", "autoencoder1",
                                                                   "autoencoder2"]
    np.testing.assert_array_equal(out.to_numpy(), ae.set_output(transform="default").transform(df))


def test_sparse_input_is_densified_per_batch(unit_data):
    sp = pytest.importorskip("scipy.sparse")
    X = np.where(unit_data > 0.4, unit_data, 0)
    dense = Autoencoder(3, max_iter=3, batch_size=32, random_state=0).fit(X)
    sparse = Autoencoder(3, max_iter=3, batch_size=32, random_state=0).fit(sp.csr_matrix(X))
    # the scaling statistics of sparse data are computed without densifying: equal up to rounding
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(X)), dense.transform(X), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(sparse.score_samples(sp.csc_matrix(X)), dense.score_samples(X),
                               rtol=1e-4)


def test_inputs_are_never_modified(unit_data, tabular_data):
    for X in (unit_data, tabular_data):
        before = X.copy()
        ae = Autoencoder(3, max_iter=2, random_state=0).fit(X)
        Z = ae.transform(X)
        Z_before = Z.copy()
        ae.inverse_transform(Z)
        ae.score_samples(X)
        ae.partial_fit(X)
        np.testing.assert_array_equal(X, before)
        np.testing.assert_array_equal(Z, Z_before)


def test_fit_does_not_change_parameters(unit_data):
    ae = Autoencoder(hidden_layer_sizes=[8], max_iter=1, random_state=0)
    params = ae.get_params()
    ae.fit(unit_data)
    assert ae.get_params() == params and ae.hidden_layer_sizes == [8]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_transforms_from_many_threads(unit_data, dtype):
    from concurrent.futures import ThreadPoolExecutor

    X = unit_data.astype(dtype)
    ae = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    expected = ae.transform(X)
    chunks = [X[i::16] for i in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ae.transform, chunks * 4))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, expected[i % 16 :: 16], rtol=1e-6)


def test_alpha_adds_an_l2_penalty_on_the_weights_only(unit_data):
    ae = Autoencoder(3, hidden_layer_sizes=(8,), alpha=0.5, max_iter=1, shuffle=False,
                     batch_size=200, random_state=0).fit(unit_data)
    # the term the objective computes now equals alpha/2 times the squared weights in numpy
    weights = [v.numpy() for net in (ae.encoder_, ae.decoder_)
               for k, v in net.state_dict().items() if k.endswith("weight")]
    expected = 0.5 * 0.5 * sum(float(np.square(w.astype(np.float64)).sum()) for w in weights)
    with torch.no_grad():
        assert float(ae._weight_decay()["weight_decay"]) == pytest.approx(expected, rel=1e-5)
    assert set(ae.loss_terms_) == {"reconstruction", "weight_decay"}
    assert ae.loss_curve_[0] == pytest.approx(
        ae.loss_terms_["reconstruction"][0] + ae.loss_terms_["weight_decay"][0], rel=1e-5)
    plain = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    assert set(plain.loss_terms_) == {"reconstruction"}


def test_alpha_shrinks_the_weights(unit_data):
    def weight_norm(alpha):
        ae = Autoencoder(3, alpha=alpha, max_iter=30, learning_rate_init=0.01,
                         random_state=0).fit(unit_data)
        return float(ae.encoder_[0].weight.detach().square().sum())

    assert weight_norm(1.0) < 0.5 * weight_norm(0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_folds_the_standardisation_into_the_first_layer_exactly(tabular_data, dtype):
    # MSE data are standardised (mean 0, one global scale); transform folds that into the
    # first dense layer, and must give the codes of the training-time computation
    X = tabular_data.astype(dtype)
    ae = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X)
    encoder = ae._networks_for(X.dtype)[0]
    with torch.no_grad():
        expected = encoder(ae._scaler(torch.from_numpy(X), "normalize")).numpy()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ae.transform(X), expected, rtol=rtol, atol=rtol)


def test_data_near_zero_are_standardised_in_one_fused_op(unit_data, tabular_data):
    # the exact two-op path is for means far from zero only: MNIST-like data keep the fold
    for X in (unit_data, tabular_data):
        ae = Autoencoder(3, max_iter=1, random_state=0).fit(X)
        assert ae._scaling_tensors(torch.float32, "cpu")[2]


@pytest.mark.parametrize("offset", [1e4, 1e6, 1e9])
def test_a_feature_far_from_zero_keeps_its_digits_in_float32(tabular_data, offset):
    # standardising as x / s - m / s cancels two large terms when a mean is many spreads
    # from zero: a constant float32 column of 1e6 moved the codes by 0.5 (the codes'
    # spread); far out, skae subtracts the mean first, which is exact there
    X = tabular_data.astype(np.float32)
    X[:, 0] = 0.0
    shifted = X.copy()
    shifted[:, 0] = offset  # exact in float32: the same data, one constant feature moved
    make = lambda: Autoencoder(3, loss="mse", max_iter=3, random_state=0)  # noqa: E731
    ae, ae_shifted = make().fit(X), make().fit(shifted)
    for a, b in zip(_weights(ae), _weights(ae_shifted)):  # trained alike
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    codes = ae_shifted.transform(shifted)
    np.testing.assert_allclose(codes, ae_shifted.transform(shifted.astype(np.float64)),
                               atol=1e-5)
    np.testing.assert_allclose(codes, ae.transform(X), atol=1e-4)
    np.testing.assert_allclose(ae_shifted.inverse_transform(codes)[:, 1:],
                               ae.inverse_transform(ae.transform(X))[:, 1:], rtol=1e-4)


def test_partial_fit_pools_code_statistics_over_calls(unit_data):
    # each partial_fit adds its chunk's codes (by the network after that call) to the pool
    ae = Autoencoder(3, random_state=0).partial_fit(unit_data[:120])
    first = ae.transform(unit_data[:120]).astype(np.float64)  # network as after call 1
    ae.partial_fit(unit_data[120:])
    second = ae.transform(unit_data[120:]).astype(np.float64)
    codes = np.vstack([first, second])
    count, mean, scatter = ae._code_stats
    assert count == 200
    np.testing.assert_allclose(mean, codes.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scatter / (count - 1), np.cov(codes.T), rtol=1e-5, atol=1e-9)


def test_sample_uses_the_unbiased_code_covariance(unit_data):
    # the covariance is the scatter over count - 1 (here exactly I): draws are mean + N(0, I)
    ae = Autoencoder(2, max_iter=1, random_state=0).fit(unit_data)
    ae._code_stats = (3, np.array([1.0, -2.0]), 2.0 * np.eye(2))  # covariance exactly I
    draws = ae._draw_codes(5, np.random.RandomState(0))
    expected = np.array([1.0, -2.0]) + np.random.RandomState(0).standard_normal((5, 2))
    np.testing.assert_allclose(draws, expected, rtol=1e-5)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_training_inside_no_grad_or_inference_mode_still_trains(unit_data, context):
    reference = Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    with context():  # a caller's evaluation block, or a notebook cell that wraps everything
        ae = Autoencoder(3, max_iter=2, warm_start=True, random_state=0).fit(unit_data)
        copied = pickle.loads(pickle.dumps(ae))
    assert ae.loss_curve_ == reference.loss_curve_
    ae.partial_fit(unit_data)  # the weights it built still train outside the block
    copied.partial_fit(unit_data)  # and so do the weights of one unpickled inside it
    assert ae.loss_curve_ == copied.loss_curve_ and ae.n_iter_ == 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_callers_autocast_changes_nothing(unit_data, dtype):
    # autocast would run the products in half precision and hand back what numpy refuses
    X = unit_data.astype(np.float32)
    reference = Autoencoder(3, hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X)
    codes = reference.transform(X)
    with torch.autocast("cpu", dtype=dtype):
        ae = Autoencoder(**reference.get_params()).fit(X)
        outputs = [ae.transform(X), ae.inverse_transform(codes), ae.score_samples(X),
                   reference.transform(X), ae.sample(3, random_state=0)]
    assert ae.loss_curve_ == reference.loss_curve_
    expected = [codes, reference.inverse_transform(codes), reference.score_samples(X), codes,
                reference.sample(3, random_state=0)]
    for output, wanted in zip(outputs, expected):
        assert output.dtype == wanted.dtype
        np.testing.assert_array_equal(output, wanted)


@pytest.mark.parametrize("make", [
    lambda: Autoencoder(3, hidden_layer_sizes=(6,), max_iter=2, random_state=0),
    lambda: __import__("skae").ConvAutoencoder(4, conv_filters=(4,), image_shape=(3, 4),
                                               max_iter=2, random_state=0),
    lambda: __import__("skae").VariationalAutoencoder(2, hidden_layer_sizes=(6,), max_iter=2,
                                                      random_state=0),
], ids=["dense", "conv", "vae"])
def test_training_is_float32_whatever_torchs_default_dtype(unit_data, make):
    reference = make().fit(unit_data)
    saved = pickle.dumps(reference)
    torch.set_default_dtype(torch.float64)  # common in scientific code
    try:
        ae = make().fit(unit_data)
        loaded = pickle.loads(saved)
        codes = loaded.transform(unit_data.astype(np.float32))
        scores = loaded.score_samples(unit_data.astype(np.float64))  # the VAE's draw too
        loaded.partial_fit(unit_data)
    finally:
        torch.set_default_dtype(torch.float32)
    assert ae.loss_curve_ == reference.loss_curve_
    np.testing.assert_array_equal(scores, reference.score_samples(unit_data.astype(np.float64)))
    assert codes.dtype == np.float32 and loaded.n_iter_ == 3


def _weights(model):
    return [p.detach().numpy() for net in (model.encoder_, model.decoder_)
            for p in net.parameters()]


def test_full_precision_turns_off_the_callers_autocast_on_every_device_type():
    from skae._base import _full_precision

    # set the flags directly: no GPU is needed to see that CUDA's autocast is turned off
    before = torch.is_autocast_enabled("cuda"), torch.is_autocast_enabled("cpu")
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_enabled("cpu", True)
    try:
        with _full_precision():
            assert not torch.is_autocast_enabled("cuda")
            assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cuda") and torch.is_autocast_enabled("cpu")
    finally:
        torch.set_autocast_enabled("cuda", before[0])
        torch.set_autocast_enabled("cpu", before[1])


@pytest.mark.parametrize("value", [-np.inf, np.inf, np.nan])
def test_an_infinite_validation_score_is_a_divergence_too(unit_data, monkeypatch, value):
    # a finite but huge error overflows to a score of -inf, not NaN
    monkeypatch.setattr(Autoencoder, "_validation_score", lambda self, source, idx: value)
    ae = Autoencoder(3, max_iter=3, early_stopping=True, random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged at epoch 1.*validation score"):
        ae.fit(unit_data)
    assert ae.n_iter_ == 0 and not ae.validation_scores_


def test_the_deferred_parameter_check_leaves_no_flag_behind(unit_data):
    # what _validate_params leaves in a data-parallel group; _prepare_training consumes it
    ae = Autoencoder(3, max_iter=1, random_state=0)
    ae._params_unchecked = True
    ae.fit(unit_data)
    assert "_params_unchecked" not in vars(ae)
