"""Why the sparse autoencoder's decoder reads code / rho: with and without it, on MNIST.

``SparseAutoencoder(sparsity="kl")`` divides the code by ``sparsity_target`` before the
decoder (a fixed factor; see the README's Design section). This script fits
``SparseAutoencoder(128)`` at its defaults with that factor and without it (a subclass that
sets it to 1, as earlier versions did), for 10, 30 and 60 epochs, and once with weight decay
(``alpha=0.01, sparsity_weight=10``, the settings of ``examples/plot_sparse_filters.py``).
For each it prints the test MSE against a plain ``Autoencoder(128)`` trained as long, the
mean code activation (target 0.05) and the share of code values above 0.5 (how peaked the
code is)::

    SKAE_DATA=../shared/data python benchmarks/sparse_code_scale.py

About 2.5 minutes on 2 cores. Results: ``benchmarks/results/sparse_code_scale.md``.
"""

import dataclasses
import datetime
import platform
import time
import warnings

import numpy as np
from _cli import check_out, load_mnist_or_fail, report_parser
from compare_pca import environment_line
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, SparseAutoencoder


class UnscaledSparseAutoencoder(SparseAutoencoder):
    """The same model with the decoder reading the sigmoid code itself (factor 1)."""

    def _build_architecture(self, n_features, image_shape):
        architecture = super()._build_architecture(n_features, image_shape)
        return dataclasses.replace(architecture, code_scale=1.0)


def main(argv=None):
    args = report_parser(__file__, __doc__, "sparse_code_scale.md").parse_args(argv)
    start = time.perf_counter()
    X_train, X_test = load_mnist_or_fail(__file__)
    check_out(__file__, args.out, ["sparse_code_scale.md"])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets

    def mse(est):
        return float(np.mean((X_test - est.inverse_transform(est.transform(X_test))) ** 2))

    runs = [("code / rho (default)", SparseAutoencoder, {}, 10),
            ("code (factor 1)", UnscaledSparseAutoencoder, {}, 10),
            ("code (factor 1)", UnscaledSparseAutoencoder, {}, 30),
            ("code (factor 1)", UnscaledSparseAutoencoder, {}, 60),
            ("code / rho, alpha=0.01, sparsity_weight=10", SparseAutoencoder,
             {"alpha": 0.01, "sparsity_weight": 10.0}, 10)]
    plain = {}
    header = ("| decoder input | epochs | test MSE | / plain Autoencoder(128) | mean activation "
              "| share > 0.5 |")
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for label, cls, params, epochs in runs:
        if epochs not in plain:
            plain[epochs] = mse(Autoencoder(128, max_iter=epochs, random_state=0).fit(X_train))
        est = cls(128, max_iter=epochs, random_state=0, **params).fit(X_train)
        codes = est.transform(X_test)
        error = mse(est)
        lines.append(f"| {label} | {epochs} | {error:.5f} | {error / plain[epochs]:.2f} | "
                     f"{codes.mean():.4f} | {np.mean(codes > 0.5):.4f} |")
        print(lines[-1], flush=True)
    (args.out / "sparse_code_scale.md").write_text(
        f"`SKAE_DATA=../shared/data python benchmarks/sparse_code_scale.py`, "
        f"{datetime.date.today()}\n\n{environment_line()}, {platform.machine()}. Time of this "
        f"run: {time.perf_counter() - start:.0f} s.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
