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
from _common import positive_int

N_COMPONENTS = [4, 8, 16]
DEFAULT_MAX_ITER = {"digits": 100, "mnist": 20}
DEFAULT_N_SAMPLES = {"digits": None, "mnist": 5000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="random subset of the data (default: all of digits, 5000 of "
                             "MNIST's training set)")
    parser.add_argument("--max-iter", type=positive_int, default=None,
                        help="autoencoder epochs (default: 100 on digits, 20 on MNIST)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--cv", type=positive_int, default=3)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="GridSearchCV workers (default: 2, or 1 with --quick)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("grid_search_pipeline.png"),
                        help="where to write the plot")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 epochs, 300 samples, 2 folds")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_iter = args.max_iter or 2
        args.n_samples = args.n_samples or 300
        args.cv = 2
    args.max_iter = args.max_iter or DEFAULT_MAX_ITER[args.dataset]
    args.n_samples = args.n_samples or DEFAULT_N_SAMPLES[args.dataset]
    args.n_jobs = args.n_jobs or (1 if args.quick else 2)
    return args


def load_data(dataset, n_samples, random_state):
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
    else:
        from skae.datasets import load_mnist

        X, y = load_mnist("train", return_X_y=True)
    if n_samples is not None and n_samples < len(X):
        rows = np.random.RandomState(random_state).choice(len(X), n_samples, replace=False)
        X, y = X[rows], y[rows]
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
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


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
