"""Why a BCE model's output bias starts at the logit of each feature's mean, but the VAE's.

With ``loss="bce"`` (``"auto"`` on data in [0, 1]) skae sets the decoder's output bias, at
the first fit, to ``logit(mean)`` of each feature (of each channel after a conv stack),
clipped to [1e-4, 1 - 1e-4]: the constant output of least cross-entropy, as the zero bias
of the MSE path is for its standardised targets. The VAE keeps the zero bias. This script
fits each model twice, with that bias and with the zero bias of Glorot/Keras
initialisation, and reports the test R² (:func:`skae.metrics.reconstruction_r2`) on
held-out rows::

    SKAE_DATA=../shared/data python benchmarks/output_bias.py

Digits (pixels / 16) and breast cancer (``MinMaxScaler(clip=True)``, so ``"auto"`` picks
BCE) use a 25% test split and three seeds (the mean and the range are shown); MNIST uses
its own test set and one seed. The small datasets' dense models are also trained with
``loss="mse"``, the other choice a user of data in [0, 1] has. Results:
``benchmarks/results/output_bias.md`` (``--out`` for another folder).
"""

import datetime
import time
import warnings

import numpy as np
from _cli import check_out, load_mnist_or_fail, report_parser
from compare_pca import environment_line
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from skae import Autoencoder, ConvAutoencoder, VariationalAutoencoder
from skae._base import BaseAutoencoder
from skae.metrics import reconstruction_r2

SEEDS = (0, 1, 2)


def zero_output_bias(cls):
    """``cls`` whose decoder's output bias stays at zero, as before this choice."""

    class ZeroOutputBias(cls):
        def _start_output_bias(self):
            pass

    return ZeroOutputBias


def mean_output_bias(cls):
    """``cls`` whose BCE output bias starts at the logit-mean, the VAE's too."""

    class MeanOutputBias(cls):
        def _start_output_bias(self):
            BaseAutoencoder._start_output_bias(self)

    return MeanOutputBias


def _splits():
    """``{name: (X_train, X_test)}`` of the small datasets, in [0, 1]."""
    digits = (load_digits().data / 16.0).astype(np.float32)
    cancer_train, cancer_test = train_test_split(load_breast_cancer().data, test_size=0.25,
                                                 random_state=0)
    scaler = MinMaxScaler(clip=True).fit(cancer_train)
    return {"digits": train_test_split(digits, test_size=0.25, random_state=0),
            "breast cancer": (scaler.transform(cancer_train), scaler.transform(cancer_test))}


def _cases():
    """``(data, label, make(cls, seed), seeds, with_mse)``: the fits this script compares;
    ``with_mse`` adds the same model trained with ``loss="mse"``."""
    return [
        ("breast cancer", "Autoencoder(5), max_iter=50",
         lambda c, s, **k: c(5, max_iter=50, random_state=s, **k), SEEDS, True),
        ("breast cancer", "Autoencoder(5), batch_size=32, max_iter=300",
         lambda c, s, **k: c(5, batch_size=32, max_iter=300, random_state=s, **k), SEEDS, True),
        ("digits", "Autoencoder(16), max_iter=50",
         lambda c, s, **k: c(16, max_iter=50, random_state=s, **k), SEEDS, True),
        ("digits", "Autoencoder(16), batch_size=32, max_iter=100",
         lambda c, s, **k: c(16, batch_size=32, max_iter=100, random_state=s, **k), SEEDS, True),
        ("digits", "ConvAutoencoder(16), batch_size=32, max_iter=100",
         lambda c, s, **k: c(16, image_shape=(8, 8), batch_size=32, max_iter=100,
                             random_state=s, **k), SEEDS, False),
        ("digits", "VariationalAutoencoder(2), batch_size=32, max_iter=100",
         lambda c, s, **k: c(2, batch_size=32, max_iter=100, random_state=s, **k), SEEDS, False),
        ("digits", "VariationalAutoencoder(64), batch_size=32, max_iter=100",
         lambda c, s, **k: c(64, batch_size=32, max_iter=100, random_state=s, **k), SEEDS, False),
        ("MNIST", "Autoencoder(32), max_iter=10 (compare_pca's MNIST budget)",
         lambda c, s, **k: c(32, max_iter=10, random_state=s, **k), (0,), False),
        ("MNIST", "Autoencoder(32), max_iter=50",
         lambda c, s, **k: c(32, max_iter=50, random_state=s, **k), (0,),
         False),
    ]


def _class_of(label):
    return {"Autoencoder": Autoencoder, "ConvAutoencoder": ConvAutoencoder,
            "VariationalAutoencoder": VariationalAutoencoder}[label.split("(")[0]]


def _cell(fits, X_test):
    """Mean test R² of ``fits`` (lowest to highest in brackets for several) and their mean
    number of epochs (the default stopping rule may end a fit before ``max_iter``)."""
    scores = [reconstruction_r2(est, X_test) for est in fits]
    spread = f" ({min(scores):.3f} to {max(scores):.3f})" if len(scores) > 1 else ""
    return f"{np.mean(scores):.3f}{spread}", np.mean([est.n_iter_ for est in fits])


def _row(name, label, make, seeds, with_mse, X_train, X_test):
    cls = _class_of(label)
    pca = PCA(make(cls, 0).n_components).fit(X_train)
    variants = tuple([make(variant(cls), seed) for seed in seeds]
                     for variant in (zero_output_bias, mean_output_bias))
    if with_mse:
        variants += ([make(cls, seed, loss="mse") for seed in seeds],)
    cells = [_cell([est.fit(X_train) for est in fits], X_test) for fits in variants]
    scores = " | ".join(score for score, _ in cells) + (" | –" if not with_mse else "")
    epochs = " / ".join(f"{n:.0f}" for _, n in cells)
    return f"| {name} | {label} | {reconstruction_r2(pca, X_test):.3f} | {scores} | {epochs} |"


def main(argv=None):
    args = report_parser(__file__, __doc__, "output_bias.md").parse_args(argv)
    mnist = load_mnist_or_fail(__file__)
    check_out(__file__, args.out, ["output_bias.md"])
    data = {**_splits(), "MNIST": mnist}
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets
    started = time.perf_counter()
    lines = ["| data | model | PCA | BCE, zero bias | BCE, logit-mean bias | MSE | epochs |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for name, label, make, seeds, with_mse in _cases():
        lines.append(_row(name, label, make, seeds, with_mse, *data[name]))
        print(lines[-1], flush=True)
    header = (f"# BCE output bias: zero against logit(feature mean)\n\n{datetime.date.today()}, "
              "`SKAE_DATA=../shared/data python benchmarks/output_bias.py`, "
              f"{environment_line()}. Time of this run: {time.perf_counter() - started:.0f} s."
              "\n\nTest R² (reconstruction_r2; higher is better): the mean over seeds "
              f"{', '.join(map(str, SEEDS))} (lowest to highest in brackets) for digits and "
              "breast cancer, seed 0 alone for MNIST. MSE: the same model with loss=\"mse\" "
              "(standardised targets, zero output bias). epochs: the mean number of epochs "
              "trained, in the columns' order.\n\n")
    (args.out / "output_bias.md").write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
