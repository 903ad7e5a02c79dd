"""Each loss term against an independent computation (numpy, autograd, Monte Carlo)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from skae import _losses


def _rng_tensor(*shape, seed=0, low=None, high=None):
    rng = np.random.RandomState(seed)
    values = rng.uniform(low, high, size=shape) if low is not None else rng.randn(*shape)
    return torch.tensor(values, dtype=torch.float64)


def test_kl_sparsity_matches_numpy_with_one_mean_per_unit():
    h = _rng_tensor(50, 7, low=0.01, high=0.3)
    rho = 0.05
    rho_hat = h.numpy().mean(axis=0)  # one value per hidden unit, over the samples
    expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    assert float(_losses.kl_sparsity(h, rho)) == pytest.approx(expected, rel=1e-12)
    # not the chapter's log(1 - rho - rho_hat) nor its single scalar mean over all units
    scalar = h.numpy().mean()
    wrong = np.sum(rho * np.log(rho / scalar) + (1 - rho) * np.log(1 - rho - scalar))
    assert abs(expected - wrong) > 1e-3


def test_kl_sparsity_is_zero_at_the_target_and_finite_at_the_edges():
    h = torch.full((10, 4), 0.05, dtype=torch.float64)
    assert float(_losses.kl_sparsity(h, 0.05)) == pytest.approx(0.0, abs=1e-12)
    saturated = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    assert math.isfinite(float(_losses.kl_sparsity(saturated, 0.05)))


def test_kl_sparsity_pushes_a_unit_stuck_at_zero_or_one_back_towards_the_target():
    h = torch.tensor([[1e-9, 1.0, 0.2]] * 4, dtype=torch.float64, requires_grad=True)
    _losses.kl_sparsity(h, 0.05).backward()
    grad = h.grad[0]
    assert grad[0] < -1e3 and grad[1] > 1e3  # gradient descent raises the first, lowers the second
    # the clamp's value: the gradient at eps, d/dm of rho log(rho/m) + ... at m = eps, per row
    eps, rho = 1e-6, 0.05
    assert float(grad[0]) == pytest.approx((-rho / eps + (1 - rho) / (1 - eps)) / 4, rel=1e-9)


def test_l1_activity_matches_numpy():
    h = _rng_tensor(20, 5)
    np.testing.assert_allclose(_losses.l1_activity(h).numpy(), np.abs(h.numpy()).sum(axis=1))


def _sigmoid_layer(seed=0, n_in=8, n_out=5):
    rng = np.random.RandomState(seed)
    weight = torch.tensor(rng.randn(n_out, n_in), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(rng.randn(n_out), dtype=torch.float64)
    return weight, bias, lambda x: torch.sigmoid(x @ weight.T + bias)


def _autograd_jacobian_norms(encode, x):
    """||J||_F^2 per sample from torch.autograd.functional.jacobian, row by row."""
    return np.array([
        float(torch.autograd.functional.jacobian(lambda v: encode(v[None])[0], row).square().sum())
        for row in x
    ])


def test_contractive_closed_form_equals_the_autograd_jacobian_norm():
    weight, bias, encode = _sigmoid_layer()
    x = _rng_tensor(10, 8, seed=1)
    closed = _losses.contractive_closed_form(encode(x), weight)
    np.testing.assert_allclose(closed.detach().numpy(), _autograd_jacobian_norms(encode, x),
                               rtol=1e-10)
    # the live weights get gradients (the chapter copied them into a constant)
    closed.sum().backward()
    assert weight.grad is not None and float(weight.grad.abs().sum()) > 0


def _deep_encoder(seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.Tanh(), torch.nn.Linear(9, 4),
                              torch.nn.Sigmoid()).double()
    for p in net.parameters():
        torch.nn.init.normal_(p, generator=gen)
    return net


def test_exact_jacobian_norm_equals_autograd_functional():
    net = _deep_encoder()
    x = _rng_tensor(7, 6, seed=2)
    exact = _losses.jacobian_frobenius(net, x)
    np.testing.assert_allclose(exact.detach().numpy(), _autograd_jacobian_norms(net, x), rtol=1e-10)
    exact.sum().backward()  # create_graph: the penalty trains the weights
    assert net[0].weight.grad is not None


def test_projection_estimate_is_unbiased_within_its_standard_error():
    net = _deep_encoder(seed=3)
    x = _rng_tensor(5, 6, seed=4)
    exact = _losses.jacobian_frobenius(net, x, create_graph=False).numpy()
    gen = torch.Generator().manual_seed(0)
    randn_like = lambda code: torch.randn(code.shape, generator=gen, dtype=code.dtype)  # noqa: E731
    draws = np.stack([
        _losses.jacobian_frobenius_projection(net, x, randn_like, create_graph=False)
        .detach().numpy() for _ in range(3000)
    ])
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 4 * se)
    assert np.all(draws.std(axis=0) > 0)  # an estimate, not the exact value in disguise


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    mean = _rng_tensor(3, 4, seed=5)
    log_var = _rng_tensor(3, 4, seed=6) * 0.5
    std = np.exp(0.5 * log_var.numpy())
    z = mean.numpy() + std * np.random.RandomState(7).randn(200_000, 3, 4)
    log_q = stats.norm.logpdf(z, mean.numpy(), std).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    mc = (log_q - log_p).mean(axis=0)
    se = (log_q - log_p).std(axis=0) / np.sqrt(len(z))
    closed = _losses.gaussian_kl(mean, log_var).numpy()
    assert np.all(np.abs(closed - mc) < 4 * se)


def test_reconstruction_terms_match_numpy():
    logits = _rng_tensor(6, 5, seed=8)
    target = _rng_tensor(6, 5, seed=9, low=0, high=1)
    p = 1 / (1 + np.exp(-logits.numpy()))
    t = target.numpy()
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(_losses.reconstruction(logits, target, "bce").numpy(), bce,
                               rtol=1e-10)
    np.testing.assert_allclose(_losses.reconstruction(logits, target, "mse").numpy(),
                               ((logits.numpy() - t) ** 2).sum(axis=1), rtol=1e-12)
    nll = -stats.norm.logpdf(t, logits.numpy(), 1.0).sum(axis=1)
    np.testing.assert_allclose(_losses.gaussian_nll(logits, target).numpy(), nll, rtol=1e-10)


def test_bce_from_logits_is_finite_for_saturated_outputs():
    logits = torch.tensor([[100.0, -100.0]])
    target = torch.tensor([[0.0, 1.0]])
    assert torch.isfinite(_losses.reconstruction(logits, target, "bce")).all()
