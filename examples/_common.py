"""Shared by the example scripts: their options, their data and their figures."""

import argparse
import math
import sys
import tempfile
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


def _number(text, kind):
    """``kind(text)``, or argparse's own one-line message for text that is not one."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None


def int_in(low, high=None):
    """An argparse type: an integer from ``low`` to ``high`` (None: no upper bound)."""
    def check(text):
        value = _number(text, int)
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {value}")
        return value
    return check


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def seed(text):
    """An argparse type: a random seed, an integer from 0 to 2**32 - 1 (as numpy takes)."""
    return int_in(0, 2**32 - 1)(text)


def row_count(minimum=1):
    """An argparse type: a number of rows, 0 (all) or at least ``minimum``."""
    def check(text):
        value = _number(text, int)
        if value != 0 and value < max(minimum, 1):
            raise argparse.ArgumentTypeError(
                f"must be 0 (all rows) or at least {max(minimum, 1)}, got {value}")
        return value
    return check


def non_negative_float(text):
    """An argparse type: a finite number of at least 0."""
    value = _number(text, float)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def figure_path(name):
    """An argparse type for ``--out``: where the figure goes, checked before any training.

    An existing folder gets ``name`` in it; a path without a suffix gets ``.png`` (as
    ``savefig`` would add). Missing folders are made when the figure is written.
    """
    def check(text):
        out = Path(text).expanduser()
        if out.is_dir():
            out = out / name
        elif not out.suffix:
            out = out.with_suffix(".png")
        _check_format(out)
        _check_writable(out)
        return out
    return check


def _check_format(out):
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise argparse.ArgumentTypeError(
            f"cannot write a figure as {out.suffix!r}; use one of "
            f"{', '.join('.' + f for f in sorted(formats))}")


def _check_writable(out):
    if out.exists():
        try:
            open(out, "r+b").close()  # not truncated
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot write {out}: {exc.strerror}") from None
        return
    folder = out.parent
    while not folder.exists():  # write_figure makes the missing ones
        folder = folder.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {out}: {folder} is not a folder")
    # os.access says yes to root even where nothing can be made (/proc): try it.
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot write {out}: {folder}: {exc.strerror}") from None


def example_parser(doc, script, *, figure=True, min_rows=1):
    """An argument parser with the options every example takes; add its own to it.

    ``figure=False`` leaves out ``--out``, for an example that draws nothing;
    ``min_rows`` is the fewest training rows (``--n-samples``) the example runs on.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if figure:
        default = Path(script).with_suffix(".png")
        # A str default goes through the type too, so it is checked before training.
        parser.add_argument("--out", type=figure_path(default.name), default=str(default),
                            help="where to write the figure: a file (.png if no suffix) or a "
                                 f"folder ({default.name} in it)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds: a few epochs on a few hundred rows")
    parser.add_argument("--max-iter", type=positive_int, default=None, help="epochs")
    parser.add_argument("--n-samples", type=row_count(min_rows), default=None,
                        help="training rows (default 10,000 of MNIST, all of digits; 0: all)")
    parser.add_argument("--random-state", type=seed, default=0)
    return parser


def finish_args(args, *, epochs, quick_epochs=2, quick_rows=500):
    """Fill in the epochs and rows of a normal or a ``--quick`` run that were not given."""
    if args.quick:
        args.max_iter = quick_epochs if args.max_iter is None else args.max_iter
        args.n_samples = quick_rows if args.n_samples is None else args.n_samples
    args.max_iter = epochs if args.max_iter is None else args.max_iter
    return args


def save_figure(fig, out, start):
    """Lay out, write and close ``fig``; report the script's time since ``start``."""
    fig.tight_layout()
    write_figure(fig, out)
    print(f"Figure written to {out}; total time {time.perf_counter() - start:.1f} s")


def write_figure(fig, out):
    """Write ``fig`` to ``out`` (a :func:`figure_path`), making its folders, and close it."""
    import matplotlib.pyplot as plt

    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except OSError as exc:  # checked at parse time, but the disk can still fill up
        sys.exit(f"error: cannot write {out}: {exc.strerror or exc}")
    finally:
        plt.close(fig)
