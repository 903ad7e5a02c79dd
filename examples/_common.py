"""Shared by the example scripts: the data they run on."""

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def load_data(n_samples, n_test, random_state):
    """Train/test rows in [0, 1] (float32), labels, image shape and the dataset's name.

    MNIST when its files are in ``$SKAE_DATA/mnist/``, else scikit-learn's 8x8 digits.
    ``n_samples`` (None: 10,000 of MNIST or all of digits; 0: all) and ``n_test`` (None:
    all) pick random subsets.
    """
    from sklearn.model_selection import train_test_split

    from skae.datasets import load_mnist

    try:
        X_train, y_train = load_mnist("train", download=False, return_X_y=True)
        X_test, y_test = load_mnist("test", download=False, return_X_y=True)
        name, image_shape = "MNIST", (28, 28)
        n_samples = 10_000 if n_samples is None else n_samples
    except ValueError as exc:  # files there but corrupt or truncated: not a reason to fall back
        sys.exit(f"error: {exc}")
    except OSError as exc:
        print(f"MNIST not available ({type(exc).__name__}); falling back to "
              "scikit-learn's 8x8 digits")
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=random_state)
        name, image_shape = "digits", (8, 8)
    rng = np.random.RandomState(random_state)
    if n_samples and n_samples < len(X_train):
        rows = rng.choice(len(X_train), n_samples, replace=False)
        X_train, y_train = X_train[rows], y_train[rows]
    if n_test and n_test < len(X_test):
        rows = rng.choice(len(X_test), n_test, replace=False)
        X_test, y_test = X_test[rows], y_test[rows]
    return X_train, X_test, y_train, y_test, image_shape, name


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def example_parser(doc, script, *, figure=True):
    """An argument parser with the options every example takes; add its own to it.

    ``figure=False`` leaves out ``--out``, for an example that draws nothing.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if figure:
        parser.add_argument("--out", type=Path, default=Path(script).with_suffix(".png"),
                            help="where to write the PNG")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds: a few epochs on a few hundred rows")
    parser.add_argument("--max-iter", type=positive_int, default=None, help="epochs")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="training rows (default 10,000 of MNIST, all of digits; 0: all)")
    parser.add_argument("--random-state", type=int, default=0)
    return parser


def finish_args(args, *, epochs, quick_epochs=2, quick_rows=500):
    """Fill in the epochs and rows of a normal or a ``--quick`` run."""
    if args.quick:
        args.max_iter = args.max_iter or quick_epochs
        args.n_samples = args.n_samples or quick_rows
    args.max_iter = args.max_iter or epochs
    return args


def save_figure(fig, out, start):
    """Lay out, write and close ``fig``; report the script's time since ``start``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out) if Path(out).suffix else Path(out).with_suffix(".png")  # as savefig does
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"Figure written to {out}; total time {time.perf_counter() - start:.1f} s")
