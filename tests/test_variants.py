"""Each variant does what its name says."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
    _losses,
)
from skae._nn import Architecture, Encoder, ImageView, MaxPool2d, UpsampledConv2d, build_networks


def _mse(a, b):
    return float(np.mean((np.asarray(a, dtype=np.float64) - b) ** 2))


# ---------------------------------------------------------------- convolutional


def test_conv_default_is_the_chapters_network_for_28x28():
    X = np.random.RandomState(0).rand(8, 784).astype(np.float32)
    ae = ConvAutoencoder(max_iter=1, random_state=0).fit(X)
    convs = [m for net in (ae.encoder_, ae.decoder_) for m in net.modules()
             if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 16), (16, 8), (8, 8), (8, 8), (8, 8), (8, 16), (16, 1)]
    assert ae.image_shape_ == (28, 28, 1) and ae.n_components_ == 4 * 4 * 8
    assert ae.transform(X).shape == (8, 128)
    # the chapter's Keras model has 4,385 parameters
    assert sum(p.numel() for net in (ae.encoder_, ae.decoder_) for p in net.parameters()) == 4385
    assert ae.inverse_transform(ae.transform(X)).shape == (8, 784)


@pytest.mark.parametrize("image_shape, code_size", [
    ((8, 8), 2 * 2 * 2),          # 8 -> 4 -> 2
    ((28, 28), 2 * 7 * 7),        # 28 -> 14 -> 7
    ((32, 32, 3), 2 * 8 * 8),     # colour
    ((20, 30), 2 * 5 * 8),        # non-square: 20 -> 10 -> 5, 30 -> 15 -> 8
    ((7, 5), 2 * 2 * 2),          # odd sizes round up: 7 -> 4 -> 2, 5 -> 3 -> 2
])
def test_conv_works_for_any_image_size(image_shape, code_size):
    n_features = int(np.prod(image_shape))
    X = np.random.RandomState(0).rand(6, n_features)
    ae = ConvAutoencoder(conv_filters=(4, 2), image_shape=image_shape, max_iter=1,
                         random_state=0).fit(X)
    assert ae.n_components_ == code_size
    assert ae.inverse_transform(ae.transform(X)).shape == X.shape


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("c_in, c_out, hw", [(16, 1, (7, 7)), (3, 3, (4, 6)), (2, 4, (1, 5))])
def test_upsampled_conv_is_upsample_then_conv(kernel, c_in, c_out, hw):
    torch.manual_seed(0)
    fused = UpsampledConv2d(c_in, c_out, kernel).double()
    plain = nn.Conv2d(c_in, c_out, kernel, padding="same").double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(5, c_in, *hw, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last)
    x_fused, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    high = (2 * hw[0], 2 * hw[1])
    out_fused = fused(x_fused)
    out_plain = plain(nn.functional.interpolate(x_plain, size=high, mode="nearest"))
    torch.testing.assert_close(out_fused, out_plain)
    grad = torch.randn_like(out_plain)
    out_fused.backward(grad)
    out_plain.backward(grad)
    torch.testing.assert_close(x_fused.grad, x_plain.grad)
    for name, param in fused.named_parameters():
        torch.testing.assert_close(param.grad, plain.get_parameter(name).grad)


@pytest.mark.parametrize("window", [(2, 2), (2, 1), (1, 2)])
@pytest.mark.parametrize("hw", [(8, 6), (7, 6), (8, 5), (1, 4), (2, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_pooling_is_max_pool2d(window, hw, layout):
    x = torch.randn(3, 4, *hw).contiguous(memory_format=layout)
    x[0, 0, 0, 0], x[1, 2, -1, -1], x[2, 3, 0, -1] = float("nan"), float("inf"), -float("inf")
    expected = nn.functional.max_pool2d(x, window, ceil_mode=True)
    pool = MaxPool2d(window)
    with torch.inference_mode():
        pooled = pool(x)
    torch.testing.assert_close(pooled, expected, equal_nan=True, rtol=0, atol=0)
    # with gradients it is max_pool2d itself: its backward routes each gradient to one argmax
    x.requires_grad_(True)
    pool(x).sum().backward()
    assert x.grad.sum() == expected.numel()
    with pytest.raises(ValueError, match="windows of 1 or 2 pixels"):
        MaxPool2d((3, 3))


def _chapter_arch(**kw):
    return Architecture(n_features=784, code_width=None, code_size=128, conv_filters=(16, 8, 8),
                        image_shape=(28, 28, 1), **kw)


def test_decoder_fuses_only_the_upsampling_before_few_output_channels():
    _, decoder = build_networks(_chapter_arch(), torch.Generator().manual_seed(0))
    kinds = [type(m).__name__ for m in decoder]
    assert kinds == ["Unflatten", "Conv2d", "ReLU", "Upsample", "Conv2d", "ReLU", "Upsample",
                     "Conv2d", "ReLU", "Identity", "UpsampledConv2d", "ImageView"]
    # (above: 8 -> 16 output channels and the 4 -> 7 upsampling, not 2x, stay as they were)
    _, even_kernel = build_networks(_chapter_arch(kernel_size=4), torch.Generator().manual_seed(0))
    assert not any(isinstance(m, UpsampledConv2d) for m in even_kernel)
    # parameter names do not depend on the fusion
    assert list(decoder.state_dict()) == list(even_kernel.state_dict())
    with pytest.raises(ValueError, match="odd square kernel"):
        UpsampledConv2d(2, 1, 4)


@pytest.mark.parametrize("activation, pool_first", [("relu", True), ("tanh", True),
                                                    ("gelu", False)])
def test_encoder_pools_before_a_non_decreasing_activation(activation, pool_first):
    arch = _chapter_arch(activation=activation)
    encoder = Encoder(arch)
    kinds = [type(m).__name__ for m in encoder][1:4]
    assert (kinds[1] == "MaxPool2d") is pool_first
    # the same function as convolution, activation, then pooling (the textbook order)
    layers, textbook, pooled_first = list(encoder), [], []
    while layers:
        layer = layers.pop(0)
        if not isinstance(layer, nn.Conv2d):
            textbook.append(layer)
            pooled_first.append(layer)
            continue
        first, second = layers.pop(0), layers.pop(0)
        act, pool = (second, first) if isinstance(first, nn.MaxPool2d) else (first, second)
        textbook += [layer, act, pool]
        pooled_first += [layer, pool, act]
    x = torch.randn(4, 784)
    torch.testing.assert_close(encoder(x), nn.Sequential(*textbook)(x))
    if not pool_first:  # GELU dips below zero: pooling first would be another function
        assert not torch.allclose(encoder(x), nn.Sequential(*pooled_first)(x))


def test_conv_one_dimensional_signals_and_inferred_shapes():
    X = np.random.RandomState(0).rand(6, 10)  # not a perfect square: a 1-D signal
    ae = ConvAutoencoder(conv_filters=(3,), max_iter=1, random_state=0).fit(X)
    assert ae.image_shape_ == (1, 10, 1) and ae.n_components_ == 3 * 5
    ae = ConvAutoencoder(conv_filters=(3,), max_iter=1, random_state=0).fit(X[:, :9])
    assert ae.image_shape_ == (3, 3, 1)


def test_conv_int_n_components_adds_a_dense_bottleneck():
    X = np.random.RandomState(0).rand(6, 64)
    ae = ConvAutoencoder(5, conv_filters=(4,), max_iter=1, random_state=0).fit(X)
    assert ae.transform(X).shape == (6, 5)
    assert ae.encoder_.code_layer.in_features == 4 * 4 * 4


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_conv_code_activation_applies_when_a_layer_without_n_components_is_the_code(hidden):
    X = np.random.RandomState(0).rand(30, 64)
    kw = dict(conv_filters=(4, 2), hidden_layer_sizes=hidden, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        relu = ConvAutoencoder(**kw).fit(X)
        tanh = ConvAutoencoder(code_activation="tanh", **kw).fit(X)
    assert relu.transform(X).min() >= 0
    codes = tanh.transform(X)
    assert codes.min() < 0 and np.abs(codes).max() < 1
    kinds = [type(m).__name__ for m in tanh.encoder_]
    # the code's layer only: the last conv stage, else the last hidden layer
    assert kinds.count("Tanh") == 1 and kinds.count("ReLU") == 2 + len(hidden) - 1


def test_conv_image_shape_must_match_n_features():
    with pytest.raises(ValueError, match="image_shape"):
        ConvAutoencoder(image_shape=(28, 28)).fit(np.random.rand(4, 100))


def test_rows_are_the_c_order_flattening_of_height_width_channels():
    X = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 24)
    images = ImageView((3, 4, 2), to_image=True)(torch.from_numpy(X))
    assert images.shape == (2, 2, 3, 4)  # (n, channels, height, width)
    np.testing.assert_array_equal(images.numpy(), X.reshape(2, 3, 4, 2).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ImageView((3, 4, 2), to_image=False)(images).numpy(), X)


def test_conv_autoencoder_learns_digits(digits):
    X_train, X_test = digits
    kw = dict(conv_filters=(8, 4), batch_size=32, learning_rate_init=3e-3, random_state=0)
    error = lambda ae: _mse(ae.inverse_transform(ae.transform(X_test)), X_test)  # noqa: E731
    trained = error(ConvAutoencoder(max_iter=30, **kw).fit(X_train))
    assert trained < 0.5 * X_test.var(axis=0).mean()  # far better than the mean image
    assert trained < 0.7 * error(ConvAutoencoder(max_iter=1, **kw).fit(X_train))


# ---------------------------------------------------------------- denoising


def test_denoiser_removes_noise(digits):
    X_train, X_test = digits
    rng = np.random.RandomState(0)
    noisy = np.clip(X_test + 0.5 * rng.randn(*X_test.shape), 0, 1).astype(np.float32)
    dae = DenoisingAutoencoder(32, hidden_layer_sizes=(128,), noise_level=0.5, max_iter=60,
                               batch_size=32, random_state=0).fit(X_train)
    plain = Autoencoder(32, hidden_layer_sizes=(128,), max_iter=60, batch_size=32,
                        random_state=0).fit(X_train)
    denoised = dae.inverse_transform(dae.transform(noisy))
    assert _mse(denoised, X_test) < 0.5 * _mse(noisy, X_test)
    assert _mse(denoised, X_test) < _mse(plain.inverse_transform(plain.transform(noisy)), X_test)


def test_denoiser_with_zero_noise_is_the_plain_autoencoder(unit_data):
    dae = DenoisingAutoencoder(3, noise_level=0.0, max_iter=3, random_state=0).fit(unit_data)
    ae = Autoencoder(3, max_iter=3, random_state=0).fit(unit_data)
    np.testing.assert_array_equal(dae.transform(unit_data), ae.transform(unit_data))


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_noise_is_fresh_each_epoch_and_only_in_training(unit_data, noise):
    dae = DenoisingAutoencoder(3, noise=noise, noise_level=0.3, max_iter=2,
                               random_state=0).fit(unit_data)
    x = torch.from_numpy(unit_data)
    gen = torch.Generator()
    draws = [dae._corrupt(x, gen.manual_seed(seed)) for seed in (0, 1, 0)]
    assert not torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    np.testing.assert_array_equal(dae.transform(unit_data), dae.transform(unit_data))


def test_noise_kinds_corrupt_as_documented(unit_data):
    x = torch.from_numpy(unit_data)
    gen = torch.Generator().manual_seed(0)
    fit = lambda **kw: DenoisingAutoencoder(3, max_iter=1, random_state=0, **kw).fit(unit_data)  # noqa

    masked = fit(noise="masking", noise_level=0.3)._corrupt(x, gen)
    changed = (masked != x).float().mean()
    assert 0.25 < changed < 0.35 and (masked[masked != x] == 0).all()

    salted = fit(noise="salt_and_pepper", noise_level=0.3)._corrupt(x, gen)
    hit = salted != x
    assert 0.2 < hit.float().mean() < 0.35
    assert ((salted[hit] == 0) | (salted[hit] == 1)).all()  # data in [0, 1]: white or black
    assert 0.4 < (salted[hit] == 1).float().mean() < 0.6

    noisy = fit(noise="gaussian", noise_level=0.5)._corrupt(x, gen)
    assert noisy.min() >= 0 and noisy.max() <= 1  # clipped: the data lie in [0, 1]


def test_salt_and_pepper_takes_each_features_extremes_for_real_valued_data(tabular_data):
    X = tabular_data.astype(np.float32)
    dae = DenoisingAutoencoder(3, noise="salt_and_pepper", noise_level=0.3, max_iter=1,
                               random_state=0).fit(X)
    x = torch.from_numpy(X)
    salted = dae._corrupt(x, torch.Generator().manual_seed(0))
    hit = salted != x
    low, high = torch.from_numpy(X.min(axis=0)), torch.from_numpy(X.max(axis=0))
    assert 0.2 < hit.float().mean() < 0.35
    assert ((salted == low) | (salted == high))[hit].all()


@pytest.mark.parametrize("method", ["partial_fit", "fit"])
def test_the_noise_follows_every_row_trained_on(unit_data, method):
    # a first chunk of pixels in [0, 1], then data beyond it: no more clipping to [0, 1]
    dae = DenoisingAutoencoder(2, loss="mse", noise="gaussian", noise_level=0.1, max_iter=1,
                               warm_start=True, random_state=0).fit(unit_data)
    wider = unit_data * 5
    getattr(dae, method)(wider)
    x = torch.from_numpy(wider)
    noisy = dae._corrupt(x, torch.Generator().manual_seed(0))
    assert float(noisy.max()) > 4 and float((noisy - x).std()) > 0.09
    salted = dae.set_params(noise="salt_and_pepper", noise_level=0.5)
    getattr(salted, method)(unit_data)  # the range keeps the wider rows
    values = salted._corrupt(x, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(salted._feature_range[1], wider.max(axis=0))
    assert float(values.max()) > 4


def test_gaussian_noise_is_not_clipped_for_real_valued_data(tabular_data):
    dae = DenoisingAutoencoder(3, noise_level=5.0, max_iter=1, random_state=0).fit(tabular_data)
    x = torch.from_numpy(tabular_data.astype(np.float32))
    noise = dae._corrupt(x, torch.Generator().manual_seed(0)) - x
    assert 4.5 < float(noise.std()) < 5.5


def test_masking_fraction_above_one_is_rejected(unit_data):
    with pytest.raises(ValueError, match="noise_level"):
        DenoisingAutoencoder(noise="masking", noise_level=1.5).fit(unit_data)


def test_conv_denoiser(digits):
    X_train, _ = digits
    dae = DenoisingAutoencoder(None, conv_filters=(4, 4), max_iter=1, random_state=0).fit(X_train)
    assert dae.n_components_ == 4 * 2 * 2


# ---------------------------------------------------------------- sparse


def test_kl_sparse_code_is_sparse_and_over_complete_works(digits):
    X_train, X_test = digits
    kw = dict(n_components=100, max_iter=40, batch_size=64, learning_rate_init=3e-3, random_state=0)
    sae = SparseAutoencoder(sparsity_weight=3.0, **kw).fit(X_train)  # 100 > 64 features
    dense = Autoencoder(code_activation="logistic", **kw).fit(X_train)  # no penalty
    mean_sparse = sae.transform(X_test).mean()
    assert 0.02 < mean_sparse < 0.12
    assert dense.transform(X_test).mean() > 2 * mean_sparse
    assert set(sae.loss_terms_) == {"reconstruction", "sparsity"}
    np.testing.assert_allclose(
        sae.loss_curve_, np.add(sae.loss_terms_["reconstruction"], sae.loss_terms_["sparsity"]),
        rtol=1e-5)


def test_l1_sparsity_shrinks_the_code(digits):
    X_train, X_test = digits
    kw = dict(n_components=32, sparsity="l1", code_activation="relu", max_iter=20,
              batch_size=64, random_state=0)
    l1 = SparseAutoencoder(sparsity_weight=0.5, **kw).fit(X_train)
    free = SparseAutoencoder(sparsity_weight=0.0, **kw).fit(X_train)
    l1_norm = lambda est: np.abs(est.transform(X_test)).sum(axis=1).mean()  # noqa: E731
    assert l1_norm(l1) < 0.5 * l1_norm(free)


def test_kl_sparsity_needs_a_logistic_code(unit_data):
    with pytest.raises(ValueError, match="logistic"):
        SparseAutoencoder(code_activation="relu").fit(unit_data)


def test_sparsity_penalty_uses_batch_means_per_unit(unit_data):
    sae = SparseAutoencoder(4, sparsity_weight=2.0, max_iter=1, random_state=0).fit(unit_data)
    h = torch.rand(30, 4, dtype=torch.float64)
    expected = 2.0 * _losses.kl_sparsity(h, 0.05)
    assert float(sae._penalties(None, h, None)["sparsity"]) == pytest.approx(float(expected))


# ---------------------------------------------------------------- contractive


@pytest.mark.parametrize("kw, resolved", [
    ({}, "closed_form"),
    ({"hidden_layer_sizes": (8,)}, "exact"),
    ({"hidden_layer_sizes": (8,), "n_components": 20}, "projection"),
    ({"jacobian": "exact"}, "exact"),
])
def test_contractive_penalty_method_resolution(unit_data, kw, resolved):
    kw = {"n_components": 3, **kw}
    cae = ContractiveAutoencoder(max_iter=1, random_state=0, **kw).fit(unit_data)
    assert cae.jacobian_ == resolved


def test_closed_form_needs_one_logistic_layer(unit_data):
    with pytest.raises(ValueError, match="closed_form"):
        ContractiveAutoencoder(3, hidden_layer_sizes=(8,), jacobian="closed_form").fit(unit_data)


@pytest.mark.parametrize("jacobian, hidden", [("closed_form", ()), ("exact", (8,))])
def test_contractive_penalty_is_the_weighted_jacobian_norm(unit_data, jacobian, hidden):
    cae = ContractiveAutoencoder(3, hidden_layer_sizes=hidden, jacobian=jacobian,
                                 contraction_weight=0.7, max_iter=2, random_state=0).fit(unit_data)
    x = torch.from_numpy(unit_data[:20])
    penalty = cae._penalties(x, cae.encoder_(x), None)["contraction"]
    encode = lambda v: cae.encoder_(v[None])[0]  # noqa: E731
    norms = [float(torch.autograd.functional.jacobian(encode, row).square().sum()) for row in x]
    assert float(penalty.detach()) == pytest.approx(0.7 * np.mean(norms), rel=1e-5)


def test_contraction_flattens_the_encoder(digits):
    X_train, X_test = digits
    kw = dict(n_components=16, max_iter=30, batch_size=64, random_state=0)
    cae = ContractiveAutoencoder(contraction_weight=1.0, **kw).fit(X_train)
    free = ContractiveAutoencoder(contraction_weight=0.0, **kw).fit(X_train)
    x = torch.from_numpy(X_test)
    norm = lambda m: float(_losses.jacobian_frobenius(m.encoder_, x, create_graph=False).mean())  # noqa
    assert norm(cae) < 0.5 * norm(free)


# ---------------------------------------------------------------- variational


@pytest.fixture(scope="module")
def fitted_vae():
    from sklearn.datasets import load_digits

    X = (load_digits().data / 16.0)[:600]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = VariationalAutoencoder(2, hidden_layer_sizes=(64,), max_iter=30, batch_size=50,
                                     random_state=0).fit(X)
    return vae, X


def test_vae_training_code_has_the_posterior_spread():
    # z = mean + exp(log_var / 2) * eps: for log variances near 2 ln 3 and 2 ln 0.5 the
    # draws spread by about 3 and 0.5 (exp(log_var) would give 9 and 0.25)
    vae = VariationalAutoencoder(2, beta=0.5)
    raw = np.array([2 * np.log(3.0), 2 * np.log(0.5)])
    encoded = torch.tensor([[1.0, -2.0, *raw]], dtype=torch.float32).repeat(20_000, 1)
    z, terms = vae._sample_code(encoded, torch.Generator().manual_seed(0))
    log_var = 10 * np.tanh(raw / 10)  # the encoder's raw output, bounded to [-10, 10]
    np.testing.assert_allclose(z.mean(0).numpy(), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(z.std(0).numpy(), np.exp(log_var / 2), rtol=0.02)
    kl = 0.5 * (np.array([1.0, 4.0]) + np.exp(log_var) - 1 - log_var).sum()
    assert float(terms["kl"]) == pytest.approx(0.5 * kl, rel=1e-5)  # beta times the KL


def test_vae_score_is_the_one_draw_elbo(fitted_vae):
    """score_samples = -(BCE of the decoded draw + KL), the draw from the fit's seed,
    recomputed here in float64 with numpy's BCE."""
    import copy

    vae, X = fitted_vae
    encoder = copy.deepcopy(vae.encoder_).double()
    decoder = copy.deepcopy(vae.decoder_).double()
    with torch.no_grad():
        mean, log_var = vae._posterior(encoder(vae._scaler(torch.from_numpy(X), "normalize")))
        eps = torch.randn(2, generator=torch.Generator().manual_seed(vae._seed)).double()
        p = torch.sigmoid(decoder(mean + torch.exp(0.5 * log_var) * eps)).numpy()
    mean, log_var = mean.numpy(), log_var.numpy()
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).sum(axis=1)
    bce = -(X * np.log(p) + (1 - X) * np.log1p(-p)).sum(axis=1)
    np.testing.assert_allclose(vae.score_samples(X), -(bce + kl), rtol=1e-5)


def test_denoiser_encodes_the_clean_input(unit_data):
    # corruption is for training only: transform encodes X as it is
    dae = DenoisingAutoencoder(3, noise="masking", noise_level=0.5, max_iter=3,
                               random_state=0).fit(unit_data)
    with torch.no_grad():
        expected = dae.encoder_(dae._scaler(torch.from_numpy(unit_data), "normalize")).numpy()
    np.testing.assert_allclose(dae.transform(unit_data), expected, rtol=1e-4, atol=1e-5)


def test_each_epoch_corrupts_afresh(unit_data, monkeypatch):
    masks = []
    corrupt = DenoisingAutoencoder._corrupt

    def spy(self, x, generator):
        out = corrupt(self, x, generator)
        masks.append((out == 0) & (x != 0))
        return out

    monkeypatch.setattr(DenoisingAutoencoder, "_corrupt", spy)
    DenoisingAutoencoder(3, noise="masking", noise_level=0.3, max_iter=2, batch_size=200,
                         shuffle=False, random_state=0).fit(unit_data)
    assert len(masks) == 2 and not torch.equal(masks[0], masks[1])


def test_the_projection_penalty_of_the_estimator_is_unbiased(unit_data):
    # the estimator's own draws (not a test's randn_like) average to the exact norm
    cae = ContractiveAutoencoder(3, hidden_layer_sizes=(8,), jacobian="projection",
                                 contraction_weight=1.0, max_iter=1, random_state=0)
    cae.fit(unit_data)
    x = torch.from_numpy(unit_data[:20])
    exact = float(_losses.jacobian_frobenius(cae.encoder_, x, create_graph=False).mean())
    generator = torch.Generator().manual_seed(0)
    draws = np.array([float(cae._penalties(x, None, generator)["contraction"].detach())
                      for _ in range(2000)])
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(len(draws))


def test_vae_transform_is_the_posterior_mean(fitted_vae):
    vae, X = fitted_vae
    x_net = vae._scaler(torch.from_numpy(X[:10]).float(), "normalize")  # the encoder's input
    encoded = vae.encoder_(x_net).detach().numpy()
    np.testing.assert_allclose(vae.transform(X[:10].astype(np.float32)), encoded[:, :2], rtol=1e-5)
    np.testing.assert_array_equal(vae.transform(X), vae.transform(X))


def test_vae_score_is_deterministic_and_row_independent(fitted_vae):
    vae, X = fitted_vae
    batch = vae.score_samples(X[:20])
    alone = np.array([vae.score_samples(X[i : i + 1])[0] for i in range(20)])
    np.testing.assert_allclose(alone, batch, rtol=1e-7)
    np.testing.assert_array_equal(vae.score_samples(X[:20]), batch)


def test_vae_elbo_lower_bounds_the_importance_sampled_likelihood(fitted_vae):
    vae, X = fitted_vae
    single = np.mean([vae.log_likelihood(X[:100], n_samples=1, random_state=s).mean()
                      for s in range(30)])
    iwae = vae.log_likelihood(X[:100], n_samples=500, random_state=0).mean()
    elbo = vae.score(X[:100])
    assert iwae > single  # more importance samples: a tighter bound
    assert abs(single - elbo) < 0.05 * abs(elbo)  # both estimate the same ELBO
    assert iwae < 0  # a log-likelihood of binary-ish data in nats


def test_vae_samples_decode_prior_draws(fitted_vae):
    vae, X = fitted_vae
    draws = vae._draw_codes(20_000, np.random.RandomState(0))
    np.testing.assert_allclose(draws.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), np.eye(2), atol=0.03)
    samples = vae.sample(5, random_state=0)
    assert samples.shape == (5, 64) and samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(samples, vae.sample(5, random_state=0))


def test_vae_training_never_encodes_x_for_code_statistics(unit_data, monkeypatch):
    # sample() draws from the prior, so fit and partial_fit need no pass over X afterwards
    def no_encoding(*args, **kwargs):
        raise AssertionError("X was encoded after training")

    monkeypatch.setattr(VariationalAutoencoder, "_encode", no_encoding)
    vae = VariationalAutoencoder(2, max_iter=2, random_state=0).fit(unit_data)
    vae.partial_fit(unit_data)
    assert vae.sample(3, random_state=0).shape == (3, unit_data.shape[1])
    monkeypatch.setattr(Autoencoder, "_encode", no_encoding)
    with pytest.raises(AssertionError, match="encoded"):  # the others do gather them
        Autoencoder(2, max_iter=2, random_state=0).fit(unit_data)


def test_vae_records_a_weighted_kl_term(fitted_vae, unit_data):
    vae, _ = fitted_vae
    assert set(vae.loss_terms_) == {"reconstruction", "kl"}
    assert all(v > 0 for v in vae.loss_terms_["kl"])
    no_kl = VariationalAutoencoder(beta=0.0, hidden_layer_sizes=(8,), max_iter=2,
                                   random_state=0).fit(unit_data)
    assert no_kl.loss_terms_["kl"] == [0.0, 0.0]


def test_vae_log_variance_is_bounded():
    vae = VariationalAutoencoder()
    _, log_var = vae._posterior(torch.tensor([[0.0, 0.0, 1e6, -1e6]]))
    assert float(log_var.max()) <= 10 and float(log_var.min()) >= -10


def test_vae_gaussian_score_is_a_density_in_data_units(tabular_data):
    """Scaling the data by c scales the density by c^-d: scores shift by -d log c."""
    kw = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    vae = VariationalAutoencoder(**kw).fit(tabular_data)
    scaled = VariationalAutoencoder(**kw).fit(tabular_data * 10)
    assert vae.loss_ == "mse"
    d = tabular_data.shape[1]
    np.testing.assert_allclose(scaled.score_samples(tabular_data * 10),
                               vae.score_samples(tabular_data) - d * np.log(10), rtol=1e-4)


def test_vae_rejects_none_components_and_non_linear_code(unit_data):
    with pytest.raises(ValueError, match="n_components"):
        VariationalAutoencoder(n_components=None).fit(unit_data)
    with pytest.raises(ValueError, match="linear"):
        VariationalAutoencoder(code_activation="relu").fit(unit_data)


def test_kl_sparse_decoder_reads_the_code_over_its_target(unit_data):
    sae = SparseAutoencoder(4, sparsity_target=0.1, max_iter=2, random_state=0).fit(unit_data)
    code = sae.transform(unit_data)
    linear = sae.decoder_[0]
    logits = (code / 0.1) @ linear.weight.detach().numpy().T + linear.bias.detach().numpy()
    expected = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(sae.inverse_transform(code), expected, rtol=1e-5, atol=1e-6)
    # weight decay sees the decoder's weights as the code does: W / rho
    sae.set_params(alpha=0.5)
    enc_w = sae.encoder_[0].weight.detach().numpy().astype(np.float64)
    dec_w = linear.weight.detach().numpy().astype(np.float64) / 0.1
    expected_decay = 0.25 * (np.square(enc_w).sum() + np.square(dec_w).sum())
    with torch.no_grad():
        assert float(sae._weight_decay()["weight_decay"]) == pytest.approx(expected_decay, rel=1e-5)
    l1 = SparseAutoencoder(4, sparsity="l1", code_activation="relu", max_iter=2,
                           random_state=0).fit(unit_data)
    assert l1.decoder_.code_scale == 1.0


def test_only_steps_run_under_cuda_graph_capture_are_replayed(unit_data):
    from types import SimpleNamespace

    from skae._training import GraphedStep, Trainer, make_optimizer

    fitted = {jacobian: ContractiveAutoencoder(3, jacobian=jacobian, max_iter=1,
                                               random_state=0).fit(unit_data)
              for jacobian in ("closed_form", "exact", "projection")}
    assert [m._replayable_steps() for m in fitted.values()] == [True, False, False]
    assert Autoencoder(3, max_iter=1).fit(unit_data)._replayable_steps()

    module = torch.nn.Linear(2, 2)
    optimizer = make_optimizer("adam", module.parameters(), 1e-3)
    on_gpu = SimpleNamespace(on_gpu=True)  # stands in for rows held on a GPU
    trainer = Trainer(module, None, optimizer, batch_size=4, graphs=False)
    assert not GraphedStep.supports(trainer, on_gpu, 4)
    trainer.graphs = True
    fused = all(group.get("fused") for group in optimizer.param_groups)
    assert GraphedStep.supports(trainer, on_gpu, 4) == fused
    assert not GraphedStep.supports(trainer, on_gpu, 3)  # an epoch's last, shorter batch
    assert not GraphedStep.supports(trainer, SimpleNamespace(on_gpu=False), 4)
