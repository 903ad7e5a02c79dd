"""Loss terms as small pure functions of tensors.

Convention: every function returns one value per sample (shape ``(n,)``) unless it is
defined on a whole batch (the KL sparsity penalty, which needs the mean activation of each
unit over the batch). Reconstruction terms are summed over features, so a penalty weight means
the same for any number of features and per-sample values are log-likelihoods in nats.
"""

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def reconstruction(output, target, loss):
    """Per-sample reconstruction loss, summed over features.

    ``output`` is the decoder's pre-activation output: logits for ``"bce"`` (binary
    cross-entropy with a sigmoid link, computed stably from the logits) and the mean for
    ``"mse"`` (squared error).
    """
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(output, target, reduction="none").sum(dim=1)
    return (output - target).square().sum(dim=1)


def gaussian_nll(output, target):
    """Per-sample negative log-likelihood of a Gaussian decoder with unit variance."""
    return 0.5 * (output - target).square().sum(dim=1) + 0.5 * target.shape[1] * LOG_2PI


def gaussian_kl(mean, log_var):
    """Per-sample KL(N(mean, exp(log_var)) || N(0, I)) in closed form."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)


KL_CLAMP = 1e-6  # batch means are held this far from 0 and 1 in the KL sparsity penalty


def kl_sparsity(activations, target, eps=KL_CLAMP):
    """Sum over units j of KL(target || rho_hat_j), rho_hat_j the batch mean of unit j.

    ``activations`` must lie in [0, 1] (a sigmoid code). Means are clamped away from 0 and
    1 for the value only: the gradient passes the clamp unchanged, so a unit whose mean is
    stuck at 0 or 1 is still pushed back towards the target (a plain clamp stops it).
    """
    mean = activations.mean(dim=0)
    rho_hat = mean + (mean.clamp(eps, 1.0 - eps) - mean).detach()
    rho = target
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def l1_activity(activations):
    """Per-sample L1 norm of the code."""
    return activations.abs().sum(dim=1)


def contractive_closed_form(code, weight):
    """Per-sample ||J||_F^2 of ``code = sigmoid(x @ weight.T + b)`` with respect to ``x``.

    For one sigmoid layer J = diag(h (1 - h)) W, so ||J||_F^2 = sum_j (h_j (1 - h_j))^2
    sum_i W_ji^2. ``weight`` is the live parameter, so the penalty has gradients through it.
    """
    return (code * (1 - code)).square() @ weight.square().sum(dim=1)


def jacobian_frobenius(encode, x, create_graph=True):
    """Per-sample exact ||d encode(x) / dx||_F^2 by one backward pass per code unit."""
    x = x.detach().requires_grad_(True)
    code = encode(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for j in range(code.shape[1]):
        (grad,) = torch.autograd.grad(code[:, j].sum(), x, create_graph=create_graph,
                                      retain_graph=True)
        total = total + grad.flatten(1).square().sum(dim=1)
    return total


def jacobian_frobenius_projection(encode, x, randn_like, n_projections=1, create_graph=True):
    """Per-sample unbiased estimate of ||J||_F^2 by random projections.

    For v ~ N(0, I) over the code, E ||v^T J||^2 = ||J||_F^2: one backward pass per
    projection instead of one per code unit. ``randn_like(code)`` draws each ``v``.
    """
    x = x.detach().requires_grad_(True)
    code = encode(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(n_projections):
        v = randn_like(code)
        (grad,) = torch.autograd.grad(code, x, grad_outputs=v, create_graph=create_graph,
                                      retain_graph=True)
        total = total + grad.flatten(1).square().sum(dim=1)
    return total / n_projections
