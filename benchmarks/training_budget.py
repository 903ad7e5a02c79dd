"""How much training the estimators need on small data: steps, not epochs.

50 epochs of 256-row batches (``max_iter=50``, the default before ``"auto"``) make 11,750
gradient steps on MNIST's 60,000 rows, but a few dozen on a few hundred rows. This script
fits ``Autoencoder(n_components)`` (default network and loss) on three small
datasets for several ``(batch_size, max_iter)`` budgets, three seeds each, and reports the
test R² (:func:`skae.metrics.reconstruction_r2`, mean and range over the seeds), the
gradient steps taken and the fit time, beside ``PCA(n_components)``'s R²:

- breast cancer, ``MinMaxScaler(clip=True)`` (so BCE), 5 components;
- wine, ``StandardScaler`` (so squared error), 3 components;
- digits, pixels / 16 (BCE), 16 components.

Each uses a 25% test split. The fit stops early where ``tol`` and ``n_iter_no_change``
say so (the default criterion), so the steps are those taken. The last budget is the
default, ``max_iter="auto"``: 50 epochs, or on small data as many as make 5,000 steps.

A second table fits every estimator on the digits at its defaults (16 components; the conv
net sees 8x8 images), with ``max_iter=50`` (the default before ``"auto"``) and with
``"auto"``; the conv net, the denoiser and the VAE, whose noisy training loss makes the
``tol`` stop end their fits early, also with that stop off (``n_iter_no_change=10**6``)::

    python benchmarks/training_budget.py        # about 6 minutes on 2 cores, offline

Results: ``benchmarks/results/training_budget.md`` (``--out`` for another folder).
"""

import datetime
import math
import time
import warnings

import numpy as np
from _cli import check_out, report_parser
from compare_pca import environment_line
from output_bias import _splits
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae.metrics import reconstruction_r2

SEEDS = (0, 1, 2)
# (batch_size, max_iter): the default last
BUDGETS = [(256, 50), (32, 50), (256, 200), (32, 200), (256, 1000), (32, 1000), (256, "auto")]
ESTIMATORS = [
    ("Autoencoder(16)", lambda **kw: Autoencoder(16, **kw)),
    ("ConvAutoencoder(16)", lambda **kw: ConvAutoencoder(16, image_shape=(8, 8), **kw)),
    ("DenoisingAutoencoder(16)", lambda **kw: DenoisingAutoencoder(16, **kw)),
    ("SparseAutoencoder(16)", lambda **kw: SparseAutoencoder(16, **kw)),
    ("ContractiveAutoencoder(16)", lambda **kw: ContractiveAutoencoder(16, **kw)),
    ("VariationalAutoencoder(16)", lambda **kw: VariationalAutoencoder(16, **kw)),
]
# the estimators whose "auto" fit the default tol stop ends early (their training loss is
# noisy): each is fitted once more with that stop off, for the full 5,000 steps
UNSTOPPED = ("ConvAutoencoder", "DenoisingAutoencoder", "VariationalAutoencoder")
# (max_iter, n_iter_no_change, only for UNSTOPPED) of the second table
ESTIMATOR_BUDGETS = [(50, 10, False), ("auto", 10, False), ("auto", 10**6, True)]


def datasets():
    """``[(name, n_components, X_train, X_test)]``: ``output_bias.py``'s splits of the breast
    cancer data and the digits, and the wine data standardised."""
    splits = _splits()
    wine_train, wine_test = train_test_split(load_wine().data, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(wine_train)
    return [("breast cancer, MinMaxScaler(clip=True)", 5, *splits["breast cancer"]),
            ("wine, StandardScaler", 3, scaler.transform(wine_train), scaler.transform(wine_test)),
            ("digits / 16", 16, *splits["digits"])]


def _cell(values, digits=3):
    return (f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}, "
            f"{max(values):.{digits}f}]")


def run(say):
    for name, k, X_train, X_test in datasets():
        pca = PCA(k, random_state=0).fit(X_train)
        say(f"\n### {name}: {len(X_train)} training rows, {X_train.shape[1]} features, "
            f"{k} components; PCA's test R² {reconstruction_r2(pca, X_test):.3f}\n")
        say("| batch_size | max_iter | steps per epoch | test R² | steps taken | "
            "fit (s) |")
        say("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for batch_size, max_iter in BUDGETS:
            r2, steps, seconds = _fits(lambda **kw: Autoencoder(k, **kw), X_train, X_test,
                                       batch_size=batch_size, max_iter=max_iter)
            say(f"| {batch_size} | {max_iter} | {math.ceil(len(X_train) / batch_size)} | "
                f"{_cell(r2)} | {_cell(steps, 0)} | {np.mean(seconds):.1f} |")
    name, k, X_train, X_test = datasets()[-1]
    say(f"\n### Every estimator on the {name} at its defaults, max_iter=50 and \"auto\"\n")
    say("| estimator | batch_size | max_iter | n_iter_no_change | test R² | epochs | "
        "steps taken | fit (s) |")
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, make in ESTIMATORS:
        batch_size = make().batch_size
        for max_iter, patience, unstopped_only in ESTIMATOR_BUDGETS:
            if unstopped_only and not label.startswith(UNSTOPPED):
                continue
            r2, steps, seconds = _fits(make, X_train, X_test, max_iter=max_iter,
                                       n_iter_no_change=patience)
            epochs = [s // math.ceil(len(X_train) / batch_size) for s in steps]
            say(f"| {label} | {batch_size} | {max_iter} | {patience:g} | {_cell(r2)} | "
                f"{_cell(epochs, 0)} | {_cell(steps, 0)} | {np.mean(seconds):.1f} |")


def _fits(make, X_train, X_test, **params):
    """``(test R², steps taken, fit seconds)`` of ``make(**params)``, one per seed."""
    r2, steps, seconds = [], [], []
    for seed in SEEDS:
        start = time.perf_counter()
        model = make(random_state=seed, **params).fit(X_train)
        seconds.append(time.perf_counter() - start)
        r2.append(reconstruction_r2(model, X_test))
        steps.append(model.n_iter_ * math.ceil(len(X_train) / model.batch_size))
    return r2, steps, seconds


def main(argv=None):
    args = report_parser(__file__, __doc__, "training_budget.md").parse_args(argv)
    check_out(__file__, args.out, ["training_budget.md"])
    lines = []

    def say(line):
        lines.append(line)
        print(line, flush=True)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run(say)
    header = (f"# Training budget of the default estimators on small data\n\n"
              f"{datetime.date.today()}, `python benchmarks/training_budget.py`, "
              f"{environment_line()}. Test R² and steps: mean [range] over seeds "
              f"{', '.join(map(str, SEEDS))}; fit time: their mean. Time of this run: "
              f"{time.perf_counter() - start:.0f} s.\n")
    (args.out / "training_budget.md").write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
