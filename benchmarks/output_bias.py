"""Why a BCE model's output bias starts at the logit of each feature's mean.

With ``loss="bce"`` (``"auto"`` on data in [0, 1]) skae sets the decoder's output bias, at
the first fit, to ``logit(mean)`` of each feature (of each channel after a conv stack),
clipped to [1e-4, 1 - 1e-4]: the constant output of least cross-entropy, as the zero bias
of the MSE path is for its standardised targets. This script fits each model twice, with
that bias and with the zero bias of Glorot/Keras initialisation, and reports the test R²
(:func:`skae.metrics.reconstruction_r2`) on held-out rows::

    SKAE_DATA=../shared/data python benchmarks/output_bias.py

Digits (pixels / 16) and breast cancer (``MinMaxScaler(clip=True)``, so ``"auto"`` picks
BCE) use a 25% test split and three seeds (the mean is shown); MNIST uses its own test set
and one seed. Results: ``benchmarks/results/output_bias.md`` (``--out`` for another folder).
"""

import datetime
import time
import warnings

import numpy as np
import torch
from _cli import check_out, load_mnist_or_fail, report_parser
from compare_pca import environment_line
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from skae import Autoencoder, ConvAutoencoder, VariationalAutoencoder
from skae.metrics import reconstruction_r2

SEEDS = (0, 1, 2)


def zero_output_bias(cls):
    """``cls`` whose decoder's output bias stays at zero, as before this choice."""

    class ZeroOutputBias(cls):
        def _build_networks(self, seed):
            super()._build_networks(seed)
            with torch.no_grad():
                self.decoder_.output_layer.bias.zero_()

    return ZeroOutputBias


def _splits():
    """``{name: (X_train, X_test)}`` of the small datasets, in [0, 1]."""
    digits = (load_digits().data / 16.0).astype(np.float32)
    cancer_train, cancer_test = train_test_split(load_breast_cancer().data, test_size=0.25,
                                                 random_state=0)
    scaler = MinMaxScaler(clip=True).fit(cancer_train)
    return {"digits": train_test_split(digits, test_size=0.25, random_state=0),
            "breast cancer": (scaler.transform(cancer_train), scaler.transform(cancer_test))}


def _cases():
    """``(data, label, make(cls, seed), seeds)``: the fits this script compares."""
    return [
        ("digits", "Autoencoder(16), defaults", lambda c, s: c(16, random_state=s), SEEDS),
        ("digits", "Autoencoder(16), batch_size=32, max_iter=100",
         lambda c, s: c(16, batch_size=32, max_iter=100, random_state=s), SEEDS),
        ("digits", "ConvAutoencoder(16), batch_size=32, max_iter=100",
         lambda c, s: c(16, image_shape=(8, 8), batch_size=32, max_iter=100, random_state=s),
         SEEDS),
        ("digits", "VariationalAutoencoder(2), batch_size=32, max_iter=100",
         lambda c, s: c(2, batch_size=32, max_iter=100, random_state=s), SEEDS),
        ("breast cancer", "Autoencoder(5), defaults", lambda c, s: c(5, random_state=s), SEEDS),
        ("breast cancer", "Autoencoder(5), batch_size=32, max_iter=300",
         lambda c, s: c(5, batch_size=32, max_iter=300, random_state=s), SEEDS),
        ("MNIST", "Autoencoder(32), max_iter=10 (compare_pca's MNIST budget)",
         lambda c, s: c(32, max_iter=10, random_state=s), (0,)),
        ("MNIST", "Autoencoder(32), defaults", lambda c, s: c(32, random_state=s), (0,)),
    ]


def _class_of(label):
    return {"Autoencoder": Autoencoder, "ConvAutoencoder": ConvAutoencoder,
            "VariationalAutoencoder": VariationalAutoencoder}[label.split("(")[0]]


def main(argv=None):
    args = report_parser(__file__, __doc__, "output_bias.md").parse_args(argv)
    data = _splits()
    data["MNIST"] = load_mnist_or_fail(__file__)
    check_out(__file__, args.out, ["output_bias.md"])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets
    started = time.perf_counter()
    lines = ["| data | model | PCA | zero bias | logit-mean bias |",
             "| --- | --- | ---: | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for name, label, make, seeds in _cases():
        X_train, X_test = data[name]
        n_components = make(_class_of(label), 0).n_components
        pca = PCA(n_components).fit(X_train)
        scores = {}
        for variant, cls in (("zero", zero_output_bias(_class_of(label))),
                             ("mean", _class_of(label))):
            scores[variant] = np.mean([reconstruction_r2(make(cls, seed).fit(X_train), X_test)
                                       for seed in seeds])
        lines.append(f"| {name} | {label} | {reconstruction_r2(pca, X_test):.3f} | "
                     f"{scores['zero']:.3f} | {scores['mean']:.3f} |")
        print(lines[-1], flush=True)
    header = (f"# BCE output bias: zero against logit(feature mean)\n\n{datetime.date.today()}, "
              "`SKAE_DATA=../shared/data python benchmarks/output_bias.py`, "
              f"{environment_line()}. Time of this run: {time.perf_counter() - started:.0f} s."
              "\n\nTest R² (reconstruction_r2; higher is better), the mean over seeds "
              f"{', '.join(map(str, SEEDS))} for digits and breast cancer, seed 0 for MNIST.\n\n")
    (args.out / "output_bias.md").write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
