"""Why the encoder sees standardised data: raw against standardised input on MNIST.

skae standardises the encoder's input (per-feature mean, one global scale) for every loss,
an exact reparameterisation of the first layer (the BCE output bias starts at the logit of
the data's means either way). This script measures what it changes, for
the default ReLU code (20 epochs), for a logistic code (10 epochs), the code of the
sparse and contractive models, and for the VAE (50 epochs; the chapter's 784-256-2
network, the default before skae's VAE became 784-512-256-2)::

    SKAE_DATA=../shared/data python benchmarks/input_standardisation.py

Results: ``benchmarks/results/input_standardisation.md`` (``--out`` for another folder).
"""

import datetime
import platform
import warnings

import numpy as np
from _cli import check_out, load_mnist_or_fail, report_parser
from compare_pca import environment_line
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, VariationalAutoencoder


def raw_input(cls):
    """``cls`` with the same network and training, fed raw pixels (no standardisation)."""

    class RawInput(cls):
        def _initialize(self, X):
            super()._initialize(X)
            self._data_mean, self._x_mean = self._x_mean, np.zeros_like(self._x_mean)
            self._x_scale = 1.0

        def _start_output_bias(self):  # at the data's means, as the standardised model's
            self._x_mean, unscaled = self._data_mean, self._x_mean
            try:
                super()._start_output_bias()
            finally:
                self._x_mean = unscaled

    return RawInput


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
    (args.out / "input_standardisation.md").write_text(
        f"# Raw against standardised encoder input (MNIST)\n\n{datetime.date.today()}, "
        "`SKAE_DATA=../shared/data python benchmarks/input_standardisation.py`, "
        f"{environment_line()}, {platform.machine()}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
