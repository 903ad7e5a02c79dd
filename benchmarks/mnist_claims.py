"""Each model does what its name says, measured on MNIST (test set).

Every claim the README makes about a model's quality comes from this script:

- ``quality``: the default ``Autoencoder(32)`` (784-32-784, 20 epochs) against PCA(32):
  test MSE at most 0.85x PCA's;
- ``deep``: ``Autoencoder(32, hidden_layer_sizes=(256, 128), code_activation="identity")``,
  20 epochs: test MSE at most 0.45x PCA(32)'s;
- ``denoising``: a convolutional denoiser (``conv_filters=(32, 32)``, ``n_components=None``,
  Gaussian noise 0.5, 10 epochs) against PCA(32) fitted on clean digits, both given noisy
  test digits (noise 0.5, clipped): the denoiser's MSE to the clean digits at most 0.5x PCA's;
- ``sparse``: ``SparseAutoencoder(128)`` at its default (recommended) weight, 10 epochs: mean
  code activation on test in [0.025, 0.1], MSE at most 1.5x a plain ``Autoencoder(128)``;
- ``contractive``: ``ContractiveAutoencoder(32)`` (one logistic layer) at its default weight,
  10 epochs, against ``Autoencoder(32, code_activation="logistic")``: squared Frobenius norm
  of the encoder's Jacobian on test at most 0.5x, MSE at most 1.5x;
- ``vae``: ``VariationalAutoencoder(2, batch_size=100)``, 50 epochs: test -ELBO at most
  147 nats.

Usage::

    SKAE_DATA=../shared/data python benchmarks/mnist_claims.py            # all (~15 min)
    SKAE_DATA=../shared/data python benchmarks/mnist_claims.py --only vae sparse

Results are appended to ``benchmarks/results/mnist_claims.md`` (one section per run).
"""

import argparse
import datetime
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _cli import check_out, load_mnist_or_fail
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae._losses import jacobian_frobenius

RESULTS = Path(__file__).resolve().parent / "results"  # the default --out, from any cwd


def mse(est, X_in, X_target):
    return float(np.mean((X_target - est.inverse_transform(est.transform(X_in))) ** 2))


def jacobian_norm(est, X):
    """Mean squared Frobenius norm of d code / d pixel over the rows of ``X`` (autograd)."""
    x = torch.from_numpy(X)
    encode = lambda v: est.encoder_(est._scaler(v, "normalize"))  # noqa: E731
    return float(np.mean([jacobian_frobenius(encode, x[i:i + 500], create_graph=False).mean()
                          for i in range(0, len(x), 500)]))


def timed_fit(est, X):
    start = time.perf_counter()
    est.fit(X)
    return est, time.perf_counter() - start


def claim_quality(data):
    X_train, X_test = data
    pca = PCA(32, random_state=0).fit(X_train)
    ae, seconds = timed_fit(Autoencoder(32, max_iter=20, random_state=0), X_train)
    ratio = mse(ae, X_test, X_test) / mse(pca, X_test, X_test)
    return [("PCA(32) test MSE per pixel", f"{mse(pca, X_test, X_test):.5f}"),
            ("Autoencoder(32), 20 epochs: test MSE per pixel", f"{mse(ae, X_test, X_test):.5f}"),
            ("ratio to PCA (target <= 0.85)", f"{ratio:.3f}"),
            ("fit time", f"{seconds:.0f} s")], ratio <= 0.85


def claim_deep(data):
    X_train, X_test = data
    pca = PCA(32, random_state=0).fit(X_train)
    ae, seconds = timed_fit(Autoencoder(32, hidden_layer_sizes=(256, 128),
                                        code_activation="identity", max_iter=20,
                                        random_state=0), X_train)
    ratio = mse(ae, X_test, X_test) / mse(pca, X_test, X_test)
    return [("PCA(32) test MSE per pixel", f"{mse(pca, X_test, X_test):.5f}"),
            ("Autoencoder(32, hidden_layer_sizes=(256, 128), code_activation='identity'), "
             "20 epochs: test MSE per pixel", f"{mse(ae, X_test, X_test):.5f}"),
            ("ratio to PCA (target <= 0.45)", f"{ratio:.3f}"),
            ("fit time", f"{seconds:.0f} s")], ratio <= 0.45


def claim_denoising(data):
    X_train, X_test = data
    rng = np.random.RandomState(0)
    noisy = np.clip(X_test + 0.5 * rng.randn(*X_test.shape), 0, 1).astype(np.float32)
    pca = PCA(32, random_state=0).fit(X_train)
    dae, seconds = timed_fit(DenoisingAutoencoder(
        None, conv_filters=(32, 32), image_shape=(28, 28), noise="gaussian", noise_level=0.5,
        max_iter=10, random_state=0), X_train)
    ratio = mse(dae, noisy, X_test) / mse(pca, noisy, X_test)
    return [("noisy test digits: MSE to clean", f"{np.mean((noisy - X_test) ** 2):.5f}"),
            ("PCA(32) of noisy digits: MSE to clean", f"{mse(pca, noisy, X_test):.5f}"),
            ("conv denoiser (32, 32), 10 epochs: MSE to clean", f"{mse(dae, noisy, X_test):.5f}"),
            ("ratio to PCA (target <= 0.5)", f"{ratio:.3f}"),
            ("fit time", f"{seconds:.0f} s")], ratio <= 0.5


def claim_sparse(data):
    X_train, X_test = data
    plain, _ = timed_fit(Autoencoder(128, max_iter=10, random_state=0), X_train)
    sae, seconds = timed_fit(SparseAutoencoder(128, max_iter=10, random_state=0), X_train)
    codes = sae.transform(X_test)
    activation = float(codes.mean())
    ratio = mse(sae, X_test, X_test) / mse(plain, X_test, X_test)
    return [(f"SparseAutoencoder(128), weight {sae.sparsity_weight}: mean code activation "
             "(target 0.05, within [0.025, 0.1])", f"{activation:.4f}"),
            ("share of code values above 0.5 (how peaked the code is; not a target)",
             f"{np.mean(codes > 0.5):.4f}"),
            ("Autoencoder(128) test MSE per pixel", f"{mse(plain, X_test, X_test):.5f}"),
            ("SparseAutoencoder(128) test MSE per pixel", f"{mse(sae, X_test, X_test):.5f}"),
            ("ratio (target <= 1.5)", f"{ratio:.3f}"),
            ("fit time", f"{seconds:.0f} s")], 0.025 <= activation <= 0.1 and ratio <= 1.5


def claim_contractive(data):
    X_train, X_test = data
    plain, _ = timed_fit(Autoencoder(32, code_activation="logistic", max_iter=10,
                                     random_state=0), X_train)
    cae, seconds = timed_fit(ContractiveAutoencoder(32, max_iter=10, random_state=0), X_train)
    j_ratio = jacobian_norm(cae, X_test) / jacobian_norm(plain, X_test)
    e_ratio = mse(cae, X_test, X_test) / mse(plain, X_test, X_test)
    return [(f"ContractiveAutoencoder(32), weight {cae.contraction_weight}: ||J||_F^2",
             f"{jacobian_norm(cae, X_test):.3f}"),
            ("Autoencoder(32, logistic code): ||J||_F^2", f"{jacobian_norm(plain, X_test):.3f}"),
            ("Jacobian ratio (target <= 0.5)", f"{j_ratio:.3f}"),
            ("MSE ratio (target <= 1.5)", f"{e_ratio:.3f}"),
            ("fit time", f"{seconds:.0f} s")], j_ratio <= 0.5 and e_ratio <= 1.5


def claim_vae(data):
    X_train, X_test = data
    vae, seconds = timed_fit(VariationalAutoencoder(2, batch_size=100, max_iter=50,
                                                    random_state=0), X_train)
    neg_elbo = -vae.score(X_test)
    return [("VariationalAutoencoder(2), 50 epochs: test -ELBO (target <= 147 nats)",
             f"{neg_elbo:.2f}"),
            ("importance-sampled -log p(x), 100 samples",
             f"{-vae.log_likelihood(X_test, n_samples=100, random_state=0).mean():.2f}"),
            ("fit time", f"{seconds:.0f} s")], neg_elbo <= 147


CLAIMS = {"quality": claim_quality, "deep": claim_deep, "denoising": claim_denoising,
          "sparse": claim_sparse, "contractive": claim_contractive, "vae": claim_vae}


def main(argv=None):
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(CLAIMS), default=list(CLAIMS),
                        metavar="CLAIM", help=f"claims to measure (default: all of "
                        f"{', '.join(CLAIMS)})")
    parser.add_argument("--out", type=Path, default=RESULTS / "mnist_claims.md",
                        help="Markdown file that the results are appended to, one section per "
                        "run (a file, not a folder; default: results/mnist_claims.md beside "
                        "this script)")
    args = parser.parse_args(argv)
    args.only = list(dict.fromkeys(args.only))  # each claim once
    data = load_mnist_or_fail(__file__)
    check_out(__file__, args.out.parent, [args.out.name])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets
    lines = [f"## {datetime.date.today()} — `python benchmarks/mnist_claims.py --only "
             f"{' '.join(args.only)}`", "",
             f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
             f"threads, torch {torch.__version__}", ""]
    for name in args.only:
        print(f"{name} ...", flush=True)
        rows, passed = CLAIMS[name](data)
        lines += [f"### {name}: {'PASS' if passed else 'FAIL'}", "", "| measure | value |",
                  "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in rows] + [""]
        print("\n".join(lines[-len(rows) - 4:]), flush=True)
    with open(args.out, "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
