"""Select a dimensionality reduction with Pipeline and GridSearchCV: PCA or an autoencoder?

scikit-learn's example "Selecting dimensionality reduction with Pipeline and GridSearchCV"
with skae's autoencoders among the reducers. Two searches over the same reducers and code
sizes (``n_components`` in 4, 8, 16):

1. **With labels**: ``MinMaxScaler -> reducer -> LogisticRegression``, ranked by the
   cross-validated accuracy of the classifier on the codes. The best pipeline is then
   scored on a held-out test split.
2. **Without labels**: ``MinMaxScaler -> reducer``, ranked by
   :func:`skae.metrics.reconstruction_r2_scorer`, the fraction of the pixel variance the
   reconstruction explains (the autoencoder analogue of PCA's
   ``explained_variance_ratio_.sum()``). Each estimator's own ``score`` would not do here:
   PCA's is a Gaussian log-likelihood, an autoencoder's minus its training loss.

It prints the best parameters and a table of mean test scores per (reducer,
n_components) for each search, and draws both as grouped bars to a PNG.

Usage::

    python examples/grid_search_pipeline.py         # digits, offline: ~1 min on 2 idle cores
    python examples/grid_search_pipeline.py --dataset mnist --n-samples 5000
    python examples/grid_search_pipeline.py --quick  # a smoke run: 2 epochs, 300 samples
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from _common import figure_path, int_in, positive_int, row_count, seed, write_figure

N_COMPONENTS = [4, 8, 16]
DATASET_ROWS = {"digits": 1797, "mnist": 60_000}
DEFAULTS = {"digits": {"max_iter": 100, "n_samples": 0, "cv": 3, "n_jobs": 2},
            "mnist": {"max_iter": 20, "n_samples": 5000, "cv": 3, "n_jobs": 2}}
QUICK = {"max_iter": 2, "n_samples": 300, "cv": 2, "n_jobs": 1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--n-samples", type=row_count(), default=None,
                        help="random subset of the data, stratified by digit (default: all "
                             "of digits, 5000 of MNIST's training set; 0: all)")
    parser.add_argument("--max-iter", type=positive_int, default=None,
                        help="autoencoder epochs (default: 100 on digits, 20 on MNIST)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--cv", type=int_in(2), default=None,
                        help="cross-validation folds (default: 3)")
    parser.add_argument("--n-jobs", type=n_jobs, default=None,
                        help="GridSearchCV workers (default: 2, or 1 with --quick; "
                             "-1: all cores)")
    parser.add_argument("--random-state", type=seed, default=0)
    parser.add_argument("--out", type=figure_path("grid_search_pipeline.png"),
                        default=str(Path(__file__).with_name("grid_search_pipeline.png")),
                        help="where to write the plot: a file (.png if no suffix) or a "
                             "folder (grid_search_pipeline.png in it)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 epochs, 300 samples, 2 folds, 1 worker, where "
                             "those options are not given")
    args = parser.parse_args(argv)
    defaults = {**DEFAULTS[args.dataset], **(QUICK if args.quick else {})}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    available = DATASET_ROWS[args.dataset]
    rows = min(args.n_samples or available, available)
    if rows < min_rows(args.cv):
        fix = "lower --cv" if rows == available else "raise --n-samples or lower --cv"
        parser.error(f"{rows} samples are too few for {args.cv}-fold CV, which needs "
                     f"{min_rows(args.cv)}: {fix}")
    return args


def n_jobs(text):
    """An argparse type: joblib's n_jobs, an integer other than 0."""
    value = int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0 (1: one worker, -1: all cores)")
    return value


def min_rows(cv):
    """The fewest samples for a search with ``cv`` folds.

    Enough for a stratified 25% test split with every digit in it, every digit in each
    training fold, and at least 16 rows (the largest ``n_components``) to fit on in each.
    """
    return max(50, 20 * cv)


def load_data(dataset, n_samples, random_state):
    from sklearn.utils import resample

    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
    else:
        from skae.datasets import load_mnist

        X, y = load_mnist("train", return_X_y=True)
    if n_samples and n_samples < len(X):
        X, y = resample(X, y, n_samples=n_samples, replace=False, stratify=y,
                        random_state=random_state)
    return X, y


def make_reducers(*, max_iter, batch_size, random_state):
    """The reducers to compare; each takes ``n_components``. Add one here to compare it."""
    from sklearn.decomposition import PCA

    from skae import Autoencoder, DenoisingAutoencoder, VariationalAutoencoder

    common = {"max_iter": max_iter, "batch_size": batch_size, "random_state": random_state}
    # One hidden layer of 128 and a linear code (as in Hinton's deep autoencoders): on
    # digits it reconstructs far better than the default single ReLU code layer, at about
    # the same cost. The VAE keeps its defaults (hidden layers of 512 and 256).
    network = {"hidden_layer_sizes": (128,), "code_activation": "identity"}
    return [
        PCA(random_state=random_state),
        Autoencoder(**network, **common),
        DenoisingAutoencoder(noise="masking", noise_level=0.3, **network, **common),
        VariationalAutoencoder(**common),
    ]


def grid_over(reducers):
    """One sub-grid per reducer, so that each is tried with every code size."""
    return [{"reduce": [reducer], "reduce__n_components": N_COMPONENTS}
            for reducer in reducers]


def score_table(search, metric="score"):
    """``{reducer name: {n_components: (mean, std)}}`` of the search's test scores."""
    results = search.cv_results_
    table = {}
    for params, mean, std in zip(results["params"], results[f"mean_test_{metric}"],
                                 results[f"std_test_{metric}"]):
        name = type(params["reduce"]).__name__
        table.setdefault(name, {})[params["reduce__n_components"]] = (mean, std)
    return table


def format_table(table, title):
    header = "| reducer | " + " | ".join(f"n_components={k}" for k in N_COMPONENTS) + " |"
    lines = [title, "", header, "| --- |" + " ---: |" * len(N_COMPONENTS)]
    for name, row in table.items():
        cells = [f"{row[k][0]:.3f} ± {row[k][1]:.3f}" for k in N_COMPONENTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_best(search):
    best = search.best_params_
    return (f"{type(best['reduce']).__name__}(n_components={best['reduce__n_components']})"
            f", mean CV score {search.best_score_:.3f}")


def plot(tables, titles, ylabels, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4.5), squeeze=False)
    x = np.arange(len(N_COMPONENTS))
    for ax, table, title, ylabel in zip(axes[0], tables, titles, ylabels):
        width = 0.8 / len(table)
        lowest = 0.0
        for i, (name, row) in enumerate(table.items()):
            means = np.array([row[k][0] for k in N_COMPONENTS])
            stds = np.array([row[k][1] for k in N_COMPONENTS])
            ax.bar(x + (i - (len(table) - 1) / 2) * width, means, width, yerr=stds,
                   capsize=2, label=name)
            lowest = min(lowest, float(np.min(means - stds)))
        ax.set_xticks(x, [str(k) for k in N_COMPONENTS])
        ax.set_xlabel("n_components")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(lowest - 0.05 if lowest < 0 else 0.0, 1.0)  # R² can be negative
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    write_figure(fig, out)


def main(argv=None):
    args = parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    from skae.metrics import neg_reconstruction_mse_scorer, reconstruction_r2_scorer

    # Short autoencoder fits stop at max_iter by design; keep the output readable
    # (scikit-learn >= 1.7 passes this filter on to the GridSearchCV workers).
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    start = time.perf_counter()
    X, y = load_data(args.dataset, args.n_samples, args.random_state)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.random_state)
    reducers = make_reducers(max_iter=args.max_iter, batch_size=args.batch_size,
                             random_state=args.random_state)
    print(f"{args.dataset}: {len(X_train)} training / {len(X_test)} test samples of "
          f"{X.shape[1]} features; autoencoders: {args.max_iter} epochs, batch "
          f"{args.batch_size}; {args.cv}-fold CV, n_jobs={args.n_jobs}\n")

    # 1. With labels: which reducer feeds the classifier best?
    classify = Pipeline([("scale", MinMaxScaler()), ("reduce", "passthrough"),
                         ("clf", LogisticRegression(max_iter=2000))])
    search = GridSearchCV(classify, grid_over(reducers), cv=args.cv, n_jobs=args.n_jobs)
    search.fit(X_train, y_train)
    accuracy = score_table(search)
    print(format_table(accuracy, "Mean CV accuracy of LogisticRegression on the codes"))
    print(f"\nBest: {describe_best(search)}; held-out test accuracy "
          f"{search.score(X_test, y_test):.3f}\n")

    # 2. Without labels: which reducer reconstructs the pixels best?
    reconstruct = Pipeline([("scale", MinMaxScaler()), ("reduce", "passthrough")])
    scoring = {"r2": reconstruction_r2_scorer, "mse": neg_reconstruction_mse_scorer}
    unsupervised = GridSearchCV(reconstruct, grid_over(reducers), cv=args.cv,
                                n_jobs=args.n_jobs, scoring=scoring, refit="r2")
    unsupervised.fit(X_train)
    r2 = score_table(unsupervised, "r2")
    print(format_table(r2, "Mean CV reconstruction R² (fraction of pixel variance "
                           "explained), no labels used"))
    print(f"\nBest: {describe_best(unsupervised)}; held-out test R² "
          f"{unsupervised.score(X_test):.3f}")

    plot([accuracy, r2],
         [f"{args.dataset}: classifier on the codes", f"{args.dataset}: reconstruction"],
         ["mean CV accuracy", "mean CV reconstruction R²"], args.out)
    print(f"\nPlot written to {args.out}; total time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
