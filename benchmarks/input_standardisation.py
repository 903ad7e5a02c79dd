"""Why the encoder sees standardised data: raw against standardised input.

skae standardises the encoder's input (per-feature mean, one global scale) for every loss,
an exact reparameterisation of the first layer (the BCE output bias starts at the logit of
the data's means either way). This script measures what it changes on MNIST, for the
default ReLU code (20 epochs), for a logistic code (10 epochs), the code of the sparse and
contractive models, and for the VAE (50 epochs; the chapter's 784-256-2 network, the
default before skae's VAE became 784-512-256-2); then for every estimator with BCE, its
defaults but ``n_components`` (and the conv net's ``image_shape``): on MNIST (10 epochs,
one seed) and on scikit-learn's 8x8 digits (pixels / 16, a 25% test split,
``batch_size=32``, 100 epochs, three seeds, their mean and range). The contractive
penalty is the squared norm of the Jacobian with respect to the network's input: on raw
input it is that of the standardised model divided by the global scale squared, so the
raw model's penalty is multiplied by that square, which makes the two objectives the same
function of the same encoder::

    SKAE_DATA=../shared/data python benchmarks/input_standardisation.py

Results: ``benchmarks/results/input_standardisation.md`` (``--out`` for another folder).
"""

import datetime
import platform
import warnings

import numpy as np
from _cli import check_out, load_mnist_or_fail, report_parser
from compare_pca import environment_line
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)


def raw_input(cls):
    """``cls`` with the same network and training, fed raw pixels (no standardisation)."""

    class RawInput(cls):
        def _initialize(self, X):
            super()._initialize(X)
            self._data_mean, self._x_mean = self._x_mean, np.zeros_like(self._x_mean)
            self._data_scale, self._x_scale = self._x_scale, 1.0

        def _start_output_bias(self):  # at the data's means, as the standardised model's
            self._x_mean, unscaled = self._data_mean, self._x_mean
            try:
                super()._start_output_bias()
            finally:
                self._x_mean = unscaled

        def _penalties(self, net_input, encoded, generator):
            terms = super()._penalties(net_input, encoded, generator)
            if "contraction" in terms:  # d code / d raw x = (d code / d standardised x) / s
                terms["contraction"] = terms["contraction"] * self._data_scale ** 2
            return terms

    RawInput.__name__ = f"RawInput{cls.__name__}"
    return RawInput


# every estimator with BCE, its defaults but n_components; images of the dataset's shape
VARIANTS = [
    ("Autoencoder", lambda shape, **kw: Autoencoder(16, **kw)),
    ("ConvAutoencoder", lambda shape, **kw: ConvAutoencoder(image_shape=shape, **kw)),
    ("DenoisingAutoencoder", lambda shape, **kw: DenoisingAutoencoder(16, **kw)),
    ("SparseAutoencoder", lambda shape, **kw: SparseAutoencoder(32, **kw)),
    ("ContractiveAutoencoder", lambda shape, **kw: ContractiveAutoencoder(16, **kw)),
    ("VariationalAutoencoder", lambda shape, **kw: VariationalAutoencoder(8, **kw)),
]
SEEDS = (0, 1, 2)


def _test_error(est, X_test):
    """The VAE's test -ELBO in nats, the others' test MSE per pixel."""
    if isinstance(est, VariationalAutoencoder):
        return -est.score(X_test)
    return float(np.mean((X_test - est.inverse_transform(est.transform(X_test))) ** 2))


def _variants(say, data):
    """Raw against standardised input for every estimator: ``data`` is
    ``[(name, X_train, X_test, shape, seeds, fit_params)]``."""
    say("\n| data | estimator | standardised | raw [0, 1] | raw / standardised |")
    say("| --- | --- | ---: | ---: | ---: |")
    for name, X_train, X_test, shape, seeds, fit_params in data:
        for label, make in VARIANTS:
            errors = {"standardised": [], "raw": []}
            for seed in seeds:
                est = make(shape, random_state=seed, **fit_params)
                raw = raw_input(type(est))(**est.get_params())
                errors["standardised"].append(_test_error(est.fit(X_train), X_test))
                errors["raw"].append(_test_error(raw.fit(X_train), X_test))
            cells = [_mean_range(errors[k]) for k in ("standardised", "raw")]
            ratios = [r / s for r, s in zip(errors["raw"], errors["standardised"])]
            say(f"| {name} | {label} | {cells[0]} | {cells[1]} | {_mean_range(ratios, 3)} |")


def _mean_range(values, digits=4):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def main(argv=None):
    args = report_parser(__file__, __doc__, "input_standardisation.md").parse_args(argv)
    X_train, X_test = load_mnist_or_fail(__file__)
    check_out(__file__, args.out, ["input_standardisation.md"])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets
    lines = []

    def say(line):
        lines.append(line)
        print(line, flush=True)

    say("| code | epochs | input | test MSE per pixel |")
    say("| --- | ---: | --- | ---: |")
    for code, epochs in (("relu", 20), ("logistic", 10)):
        for label, cls in (("raw [0, 1]", raw_input(Autoencoder)), ("standardised", Autoencoder)):
            est = cls(32, code_activation=code, max_iter=epochs, random_state=0).fit(X_train)
            error = np.mean((X_test - est.inverse_transform(est.transform(X_test))) ** 2)
            say(f"| {code} | {epochs} | {label} | {error:.4f} |")
    say(f"\npixel variance (the error of predicting the mean image): {X_test.var(0).mean():.4f}")
    say("\n| VariationalAutoencoder(2, hidden_layer_sizes=(256,)), 50 epochs | test -ELBO "
        "(nats) |\n| --- | ---: |")
    for label, cls in (("raw [0, 1]", raw_input(VariationalAutoencoder)),
                       ("standardised", VariationalAutoencoder)):
        est = cls(2, hidden_layer_sizes=(256,), batch_size=100, max_iter=50,
                  random_state=0).fit(X_train)
        say(f"| {label} | {-est.score(X_test):.2f} |")
    say("\nEvery estimator with BCE, its defaults but n_components (16; the sparse model 32, "
        "the VAE 8, the conv net its feature map): test MSE per pixel, the VAE's test -ELBO "
        "in nats; lower is better. MNIST: 10 epochs, seed 0. Digits: batch_size=32, 100 "
        "epochs, seeds 0 to 2 (mean [range]).")
    digits = (load_digits().data / 16.0).astype(np.float32)
    _variants(say, [
        ("MNIST", X_train, X_test, (28, 28), (0,), {"max_iter": 10}),
        ("digits", *train_test_split(digits, test_size=0.25, random_state=0), (8, 8), SEEDS,
         {"max_iter": 100, "batch_size": 32}),
    ])
    (args.out / "input_standardisation.md").write_text(
        f"# Raw against standardised encoder input (MNIST and the digits)\n\n"
        f"{datetime.date.today()}, "
        "`SKAE_DATA=../shared/data python benchmarks/input_standardisation.py`, "
        f"{environment_line()}, {platform.machine()}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
