"""Compare skae autoencoders with PCA: the main job.

For each code size in ``--n-components``, every model of the registry is fitted on
the training split and evaluated on the test split:

- ``mse_per_pixel``: ``mean((X - inverse_transform(transform(X))) ** 2)``;
- ``sq_error_per_image``: the same squared error summed over the pixels of an image
  and averaged over the images (``mse_per_pixel * n_features``);
- ``probe_accuracy``: accuracy of a logistic regression trained on the codes of the
  training split (standardised) and scored on the codes of the test split;
- ``fit_time_s`` and ``transform_time_s`` (transform of the test split).

The results are printed as a Markdown table and written to ``--out`` as
``results_<dataset>.md``, ``results_<dataset>.csv`` and ``results_<dataset>.png``
(reconstruction error against code size, one line per model).

Usage::

    python benchmarks/compare_pca.py                       # digits, a minute or less
    python benchmarks/compare_pca.py --dataset mnist       # needs $SKAE_DATA/mnist/

To compare another estimator, add a factory to ``make_registry``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_MAX_ITER = {"digits": 300, "mnist": 20}

COLUMNS = [
    "dataset",
    "model",
    "n_components",
    "mse_per_pixel",
    "sq_error_per_image",
    "probe_accuracy",
    "fit_time_s",
    "transform_time_s",
    "n_iter",
]


# --------------------------------------------------------------------------- models


def make_registry(*, max_iter, random_state):
    """Return ``{name: factory}``, each factory taking ``n_components``.

    Add an entry here to compare another estimator; it needs ``fit``,
    ``transform`` and ``inverse_transform``.
    """
    from sklearn.decomposition import PCA

    from skae import Autoencoder

    return {
        "PCA": lambda n: PCA(n_components=n, random_state=random_state),
        "Autoencoder": lambda n: Autoencoder(
            n_components=n, max_iter=max_iter, random_state=random_state
        ),
        "Autoencoder (128) linear code": lambda n: Autoencoder(
            n_components=n, hidden_layer_sizes=(128,), code_activation="identity",
            batch_size=32, max_iter=max_iter, random_state=random_state
        ),
    }


# ------------------------------------------------------------------------- datasets


def load_dataset(name, random_state):
    """Return ``X_train, X_test, y_train, y_test`` with pixels in [0, 1] (float32)."""
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        X = (digits.data / 16.0).astype(np.float32)
        return train_test_split(
            X,
            digits.target,
            test_size=0.25,
            random_state=random_state,
            stratify=digits.target,
        )
    if name == "mnist":
        return _load_mnist()
    raise ValueError(f"unknown dataset {name!r}")


def _load_mnist():
    """The official MNIST split (60,000 train, 10,000 test) from skae's loader."""
    from skae.datasets import load_mnist

    X_train, y_train = load_mnist("train", return_X_y=True)
    X_test, y_test = load_mnist("test", return_X_y=True)
    return X_train, X_test, y_train, y_test


# ----------------------------------------------------------------------- evaluation


def evaluate(estimator, X_train, X_test, y_train, y_test):
    """Fit on the training split, return the metrics on the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    estimator.fit(X_train)
    fit_time = time.perf_counter() - start

    start = time.perf_counter()
    Z_test = estimator.transform(X_test)
    transform_time = time.perf_counter() - start

    X_rec = estimator.inverse_transform(Z_test)
    mse = float(np.mean((np.asarray(X_test, dtype=np.float64) - X_rec) ** 2))

    # Linear probe: how much of the label a linear model reads from the code.
    # Standardising the codes makes the probe's regularisation mean the same
    # thing for PCA scores and for autoencoder activations.
    Z_train = estimator.transform(X_train)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(Z_train, y_train)
    accuracy = float(probe.score(Z_test, y_test))

    return {
        "mse_per_pixel": mse,
        "sq_error_per_image": mse * X_test.shape[1],
        "probe_accuracy": accuracy,
        "fit_time_s": fit_time,
        "transform_time_s": transform_time,
        "n_iter": getattr(estimator, "n_iter_", ""),
    }


# -------------------------------------------------------------------------- reports


FORMATS = {"mse_per_pixel": "{:.5f}", "sq_error_per_image": "{:.3f}",
           "probe_accuracy": "{:.3f}", "fit_time_s": "{:.2f}", "transform_time_s": "{:.4f}"}


def _fmt(key, value):
    return FORMATS.get(key, "{}").format(value)


def markdown_table(rows):
    header = ["model", "n_components", "MSE per pixel", "squared error per image",
              "probe accuracy", "fit time (s)", "transform time (s)", "epochs"]
    keys = ["model", "n_components", "mse_per_pixel", "sq_error_per_image",
            "probe_accuracy", "fit_time_s", "transform_time_s", "n_iter"]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(k, row[k]) for k in keys) + " |")
    return "\n".join(lines)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_plot(rows, path, dataset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(row["model"] for row in rows):
        points = sorted((r["n_components"], r["mse_per_pixel"])
                        for r in rows if r["model"] == model)
        ax.plot(*zip(*points), marker="o", label=model)
    ax.set_yscale("log")
    ax.set_xlabel("n_components")
    ax.set_ylabel("test reconstruction MSE per pixel")
    ax.set_title(f"{dataset}: reconstruction error against code size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def environment_line():
    import sklearn
    import torch

    import skae

    return (f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
            f"skae {skae.__version__}, {torch.get_num_threads()} torch threads")


# ------------------------------------------------------------------------------ cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 8, 16, 32],
                        metavar="N", help="code sizes to compare (default: 2 8 16 32)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="autoencoder epochs (default: 300 for digits, 20 for mnist)")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="models of the registry to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="directory for the results (default: benchmarks/results)")
    parser.add_argument("--random-state", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # every model trains for a fixed number of epochs: stopping at max_iter is the plan
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    max_iter = args.max_iter or DEFAULT_MAX_ITER[args.dataset]
    registry = make_registry(max_iter=max_iter, random_state=args.random_state)
    names = args.models or list(registry)
    unknown = sorted(set(names) - set(registry))
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; known: {sorted(registry)}")

    X_train, X_test, y_train, y_test = load_dataset(args.dataset, args.random_state)
    print(f"{args.dataset}: {X_train.shape[0]} train and {X_test.shape[0]} test samples, "
          f"{X_train.shape[1]} features; autoencoder max_iter={max_iter}, "
          f"random_state={args.random_state}", flush=True)

    rows = []
    total = time.perf_counter()
    for n in args.n_components:
        for name in names:
            metrics = evaluate(registry[name](n), X_train, X_test, y_train, y_test)
            row = {"dataset": args.dataset, "model": name, "n_components": n, **metrics}
            rows.append(row)
            print(f"  {name:>12} n_components={n:<3} mse/pixel={row['mse_per_pixel']:.5f} "
                  f"probe acc={row['probe_accuracy']:.3f} fit={row['fit_time_s']:.2f}s "
                  f"transform={row['transform_time_s']:.3f}s", flush=True)
    total = time.perf_counter() - total

    table = markdown_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"results_{args.dataset}"
    with open(f"{stem}.md", "w") as f:
        f.write(f"# skae against PCA on {args.dataset}\n\n")
        command = " ".join(["python benchmarks/compare_pca.py",
                            *(sys.argv[1:] if argv is None else argv)])
        f.write(f"Command: `{command}`\n\n")
        f.write(f"Test split: {X_test.shape[0]} samples of {X_test.shape[1]} features in "
                f"[0, 1]; autoencoder epochs: {max_iter}; random_state: "
                f"{args.random_state}.\n\n")
        f.write(f"Environment: {environment_line()}. Total time: {total:.1f} s.\n\n")
        f.write(table + "\n")
    write_csv(rows, f"{stem}.csv")
    write_plot(rows, f"{stem}.png", args.dataset)

    print()
    print(table)
    print(f"\nwrote {stem}.md, {stem}.csv and {stem}.png in {total:.1f} s", flush=True)


if __name__ == "__main__":
    main()
