"""Compare skae autoencoders with PCA: the main job.

For each code size in ``--n-components``, every model of the registry (PCA,
IncrementalPCA, KernelPCA and each skae estimator) is fitted on the training split and
evaluated on the test split:

- ``mse_per_pixel``: ``mean((X - inverse_transform(transform(X))) ** 2)``;
- ``sq_error_per_image``: the same squared error summed over the pixels of an image and
  averaged over the images;
- ``probe_accuracy``: accuracy of a logistic regression trained on the codes of the
  training split (standardised) and scored on the codes of the test split;
- ``fit_time_s``, ``transform_time_s`` (transform of the test split) and
  ``peak_fit_mb``, the growth of the peak resident set size during ``fit`` over the
  resident size just before it;
- ``train_rows``: KernelPCA's inverse map is a kernel ridge regression over the training
  rows, so on MNIST it is fitted on a subset (``--kernel-rows``);
- ``settings``: hyperparameters chosen for the cell. KernelPCA's ``gamma`` and ``alpha``
  are tuned by ``GridSearchCV`` on its training rows (one split: 80% to fit, 20% to score
  the reconstruction error), never on the test split; the search is not part of the fit
  time. The autoencoders run at their defaults.

Every cell runs in a fresh process forked from the one that loaded the data (on Linux;
KernelPCA's search in another before it), so no cell reuses memory that an earlier one
freed. Before the timed fit, a copy of the model is fitted on a few rows and transforms
them (``warm_up``), so one-time set-up is counted for no model: the memory column is what
fitting that one model costs a program that has loaded its data and used its libraries.

Results go to ``--out`` as ``results_<dataset>.md``, ``.csv`` and ``.png`` (error against
code size, one line per model). A run refits every cell it is asked for (``--models``,
``--n-components``) and replaces those cells in the CSV; the table and the plot show every
cell of the CSV, and the table's header says how many come from earlier runs (which keep
the settings they were fitted with; the ``epochs`` column shows each cell's). Each finished
cell is written to the CSV at once, so ``--resume`` continues an interrupted run, skipping
the cells already there.

Usage::

    python benchmarks/compare_pca.py                       # digits, offline, ~4 minutes
    SKAE_DATA=../shared/data python benchmarks/compare_pca.py --dataset mnist

To compare another estimator, add a factory to ``make_registry``.
"""

import argparse
import csv
import multiprocessing
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from _cli import check_out, fail, positive_int

RESULTS = Path(__file__).resolve().parent / "results"  # the default --out, from any cwd

# epochs and batch size of the autoencoders, per dataset
TRAINING = {"digits": dict(max_iter=100, batch_size=32), "mnist": dict(max_iter=10, batch_size=256)}

COLUMNS = ["dataset", "model", "n_components", "train_rows", "mse_per_pixel",
           "sq_error_per_image", "probe_accuracy", "fit_time_s", "transform_time_s",
           "peak_fit_mb", "n_iter", "settings"]

# KernelPCA's search: gamma as a multiple of sklearn's default 1 / n_features, and the
# ridge penalty of its inverse map. Wider searches at 2 and 32 components (digits: gamma
# from 1/8 to 128 times the default, alpha from 1e-7 to 1; MNIST's 2,000 rows: 1/4 to 64
# times, alpha from 1e-5 to 0.1) chose 4 to 16 times the default gamma and alpha 1e-4 or
# 1e-3; at 64 components of the digits' 64 pixels this grid chooses half the default.
# Below alpha 1e-5 the inverse map's system is often singular.
KERNEL_GAMMA_FACTORS = tuple(2.0**k for k in range(-2, 7))
KERNEL_ALPHAS = tuple(10.0**k for k in range(-5, 0))


# --------------------------------------------------------------------------- models


def make_registry(*, image_shape, training, random_state):
    """Return ``{name: factory}``, each factory taking ``n_components``.

    Add an entry here to compare another estimator; it needs ``fit``, ``transform`` and
    ``inverse_transform``.
    """
    from sklearn.decomposition import PCA, IncrementalPCA, KernelPCA

    from skae import (
        Autoencoder,
        ContractiveAutoencoder,
        ConvAutoencoder,
        DenoisingAutoencoder,
        SparseAutoencoder,
        VariationalAutoencoder,
    )

    common = dict(random_state=random_state, **training)
    # the chapter's three pooling stages suit 28x28; an 8x8 digit takes two (8 -> 4 -> 2)
    conv_filters = (16, 8, 8) if image_shape[0] >= 16 else (16, 8)
    return {
        "PCA": lambda n: PCA(n, random_state=random_state),
        "IncrementalPCA": lambda n: IncrementalPCA(n, batch_size=max(n, 1000)),
        # gamma and alpha are tuned per cell on the training rows (tune_kernel_pca)
        "KernelPCA": lambda n: KernelPCA(n, kernel="rbf", fit_inverse_transform=True,
                                         random_state=random_state),
        "Autoencoder": lambda n: Autoencoder(n, **common),
        "Autoencoder (256, 128)": lambda n: Autoencoder(
            n, hidden_layer_sizes=(256, 128), code_activation="identity", **common),
        "ConvAutoencoder": lambda n: ConvAutoencoder(n, image_shape=image_shape,
                                                     conv_filters=conv_filters, **common),
        "DenoisingAutoencoder": lambda n: DenoisingAutoencoder(n, **common),
        "SparseAutoencoder": lambda n: SparseAutoencoder(n, **common),
        "ContractiveAutoencoder": lambda n: ContractiveAutoencoder(n, **common),
        "VariationalAutoencoder": lambda n: VariationalAutoencoder(n, **common),
    }


# ------------------------------------------------------------------------- datasets


def load_dataset(name, random_state):
    """Return ``X_train, X_test, y_train, y_test, image_shape`` with pixels in [0, 1]."""
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        X = (digits.data / 16.0).astype(np.float32)
        split = train_test_split(X, digits.target, test_size=0.25, random_state=random_state,
                                 stratify=digits.target)
        return (*split, (8, 8))
    from skae.datasets import load_mnist

    X_train, y_train = load_mnist("train", return_X_y=True)
    X_test, y_test = load_mnist("test", return_X_y=True)
    return X_train, X_test, y_train, y_test, (28, 28)


# ----------------------------------------------------------------------- evaluation


def _status_mb(field):
    """A field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_rss():
    """Set the kernel's peak resident size (VmHWM) to the current one (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_growth(function):
    """Run ``function()``; return its seconds and the growth of the peak RSS in MB.

    The growth is the kernel's own high-water mark, reset just before: no sampling, so
    no peak between two samples is missed. ``nan`` where ``/proc`` does not offer it.
    """
    try:
        _reset_peak_rss()
        before = _status_mb("VmRSS")
    except (OSError, KeyError):
        before = None
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    growth = float("nan") if before is None else _status_mb("VmHWM") - before
    return seconds, growth


def reconstruction_mse(estimator, X):
    """Scorer for the searches: minus the mean squared reconstruction error of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    return -float(((X - estimator.inverse_transform(estimator.transform(X))) ** 2).mean())


def tune_kernel_pca(estimator, X, random_state):
    """``gamma`` and ``alpha`` of a KernelPCA, chosen on a split of its training rows.

    Returns the parameters, and the names of those the search chose at an end of its
    grid (where a wider grid might do better).
    """
    from sklearn.model_selection import GridSearchCV, ShuffleSplit

    default_gamma = 1.0 / X.shape[1]
    grid = {"gamma": [factor * default_gamma for factor in KERNEL_GAMMA_FACTORS],
            "alpha": list(KERNEL_ALPHAS)}
    split = ShuffleSplit(n_splits=1, test_size=0.2, random_state=random_state)
    search = GridSearchCV(estimator, grid, scoring=reconstruction_mse, cv=split, refit=False)
    with warnings.catch_warnings():
        # the smallest alphas can make the inverse map's system singular: those fits fail
        # and score NaN, which the search ranks last
        warnings.simplefilter("ignore")
        search.fit(X)
    best = search.best_params_
    at_edge = [key for key, values in grid.items() if best[key] in (values[0], values[-1])]
    return best, at_edge


TUNERS = {"KernelPCA": tune_kernel_pca}


def _describe(params, at_edge=()):
    text = " ".join(f"{key}={value:.3g}" for key, value in sorted(params.items()))
    return text + "".join(f" ({key} at the grid's end)" for key in at_edge)


def warm_up(estimator, X):
    """Fit, transform and invert with a copy of ``estimator`` on a few rows first.

    One-time set-up (torch's threads and kernels, BLAS buffers, lazy imports) is then not
    counted in the cell's times and memory, as it would not be in a program's second fit,
    for every model alike. skae models fit one epoch on 8 rows in batches of 8, as in
    ``benchmarks/speed.py``; the others fit on ``max(2 * n_components, 16)`` rows.
    """
    from sklearn.base import clone

    warm = clone(estimator)
    if {"max_iter", "batch_size"} <= set(warm.get_params()):
        rows = X[:8]
        warm.set_params(max_iter=1, batch_size=8)
    else:
        rows = X[:max(2 * warm.get_params().get("n_components", 8), 16)]
    warm.fit(rows)
    warm.inverse_transform(warm.transform(rows))


def evaluate(estimator, X_train, X_test, y_train, y_test, fit_rows, settings=None):
    """Fit on (the first ``fit_rows`` of) the training split; metrics on the test split.

    ``settings`` (parameters, and those chosen at an end of their grid) are set first.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_fit = X_train[:fit_rows]
    settings, at_edge = settings or ({}, [])
    estimator.set_params(**settings)

    warm_up(estimator, X_fit)
    fit_time, memory = peak_rss_growth(lambda: estimator.fit(X_fit))

    start = time.perf_counter()
    Z_test = estimator.transform(X_test)
    transform_time = time.perf_counter() - start

    error = (np.asarray(X_test, dtype=np.float64) - estimator.inverse_transform(Z_test)) ** 2

    # Linear probe: how much of the label a linear model reads from the code. Standardising
    # the codes makes the probe's regularisation mean the same for every model.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(estimator.transform(X_train), y_train)

    return {
        "train_rows": len(X_fit),
        "mse_per_pixel": float(error.mean()),
        "sq_error_per_image": float(error.sum(axis=1).mean()),
        "probe_accuracy": float(probe.score(Z_test, y_test)),
        "fit_time_s": fit_time,
        "transform_time_s": transform_time,
        "peak_fit_mb": memory,
        "n_iter": getattr(estimator, "n_iter_", ""),
        "settings": _describe(settings, at_edge),
    }


def in_fresh_process(function, *args):
    """``function(*args)`` in a process forked from this one: its result, or its error.

    The child starts from this process's memory (data loaded, modules imported) and from
    none of the allocator's free lists that earlier cells left. Off Linux, ``function``
    runs here. An interrupt of this process ends the child too.
    """
    if not sys.platform.startswith("linux"):  # fork is unsafe on macOS, absent on Windows
        return function(*args)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        try:
            send.send((True, function(*args)))
        except BaseException:  # every failure goes back to the parent
            send.send((False, traceback.format_exc()))

    process = context.Process(target=child)
    process.start()
    send.close()
    try:
        ok, value = receive.recv()
    except EOFError:  # the child died without a word
        ok, value = None, None
    except BaseException:  # interrupted here (Ctrl-C): do not leave the cell running
        process.terminate()
        process.join()
        raise
    process.join()
    if ok is None:
        raise RuntimeError(f"the cell's process died (exit code {process.exitcode})")
    if not ok:
        raise RuntimeError(f"the cell failed in its process:\n{value}")
    return value


# -------------------------------------------------------------------------- reports


FORMATS = {"mse_per_pixel": "{:.5f}", "sq_error_per_image": "{:.2f}",
           "probe_accuracy": "{:.3f}", "fit_time_s": "{:.1f}", "transform_time_s": "{:.4f}",
           "peak_fit_mb": "{:.0f}"}
HEADER = {"model": "model", "n_components": "n_components", "train_rows": "train rows",
          "mse_per_pixel": "MSE per pixel", "sq_error_per_image": "squared error per image",
          "probe_accuracy": "probe accuracy", "fit_time_s": "fit (s)",
          "transform_time_s": "transform (s)", "peak_fit_mb": "fit memory (MB)",
          "n_iter": "epochs", "settings": "settings"}


def _fmt(key, value):
    try:
        return FORMATS.get(key, "{}").format(float(value) if key in FORMATS else value)
    except ValueError:
        return str(value)


def markdown_table(rows):
    keys = list(HEADER)
    lines = ["| " + " | ".join(HEADER[k] for k in keys) + " |",
             "| " + " | ".join(["---"] * 2 + ["---:"] * (len(keys) - 3) + ["---"]) + " |"]
    for row in sorted(rows, key=lambda r: (int(r["n_components"]), r["model"])):
        lines.append("| " + " | ".join(_fmt(k, row[k]) for k in keys) + " |")
    return "\n".join(lines)


def read_rows(path):
    """The CSV's rows, each with every column of ``COLUMNS`` (empty where it had none).

    Raises ``ValueError`` for a CSV that this script did not write: columns it never had,
    or a cell's model, code size or error missing or not a number.
    """
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        foreign = sorted(set(reader.fieldnames or ()) - set(COLUMNS))
        if foreign:
            raise ValueError(f"columns {foreign}")
        rows = [{column: row.get(column) or "" for column in COLUMNS} for row in reader]
    for line, row in enumerate(rows, 2):
        try:
            int(row["n_components"]), float(row["mse_per_pixel"])
        except ValueError:
            raise ValueError(f"line {line}: n_components {row['n_components']!r}, "
                             f"mse_per_pixel {row['mse_per_pixel']!r}") from None
        if not row["model"]:
            raise ValueError(f"line {line}: no model")
    return rows


def _header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def write_rows(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def append_row(row, path):
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def write_plot(rows, path, dataset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in dict.fromkeys(row["model"] for row in rows):
        points = sorted((int(r["n_components"]), float(r["mse_per_pixel"]))
                        for r in rows if r["model"] == model)
        style = "--" if "PCA" in model else "-"
        ax.plot(*zip(*points, strict=True), style, marker="o", label=model)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("n_components")
    ax.set_ylabel("test reconstruction MSE per pixel")
    ax.set_title(f"{dataset}: reconstruction error against code size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
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
    parser = argparse.ArgumentParser(prog=Path(__file__).name,
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--n-components", type=positive_int, nargs="+",
                        default=[2, 8, 16, 32, 64],
                        metavar="N", help="code sizes to compare (default: 2 8 16 32 64)")
    parser.add_argument("--max-iter", type=positive_int, default=None,
                        help="autoencoder epochs (default: 100 for digits, 10 for mnist)")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="models of the registry to run (default: all)")
    parser.add_argument("--kernel-rows", type=positive_int, default=2000,
                        help="training rows for KernelPCA (default: 2000)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for the results (default: results/ beside this script)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the cells already in the CSV (continue an interrupted run)")
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    args.n_components = list(dict.fromkeys(args.n_components))  # each size once
    return args


def check_models(names, registry, args, X_train):
    """Stop on an unknown model, or a code size that one of the models cannot have."""
    unknown = sorted(set(names) - set(registry))
    if unknown:
        fail(__file__, f"unknown model(s) {unknown}; known: {sorted(registry)}")
    # the PCAs need n_components <= features, KernelPCA <= its training rows; autoencoders
    # need neither
    limits = {"PCA": X_train.shape[1], "IncrementalPCA": X_train.shape[1],
              "KernelPCA": min(args.kernel_rows, len(X_train))}
    for name, limit in limits.items():
        too_large = [n for n in args.n_components if n > limit]
        if name in names and too_large:
            fail(__file__, f"--n-components {too_large} too large for {name} (at most "
                 f"{limit}); leave it out with --models")


def main(argv=None):
    args = parse_args(argv)
    # every model trains up to max_iter epochs (the default stopping rule may end it
    # sooner; the table's epochs column says): reaching max_iter is not a failure here
    from scipy.linalg import LinAlgWarning
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    # KernelPCA's inverse map solves an ill-conditioned system (rcond about 1e-8) at the
    # alpha its search picked by held-out error; that error is what the table reports
    warnings.filterwarnings("ignore", category=LinAlgWarning)
    training = dict(TRAINING[args.dataset])
    if args.max_iter is not None:
        training["max_iter"] = args.max_iter
    try:
        X_train, X_test, y_train, y_test, image_shape = load_dataset(args.dataset,
                                                                     args.random_state)
    except (OSError, ValueError) as exc:  # MNIST missing, corrupt or not downloadable
        fail(__file__, exc)
    registry = make_registry(image_shape=image_shape, training=training,
                             random_state=args.random_state)
    names = list(dict.fromkeys(args.models or registry))
    check_models(names, registry, args, X_train)
    stem = args.out / f"results_{args.dataset}"
    csv_path = Path(f"{stem}.csv")
    check_out(__file__, args.out, [f"{stem.name}{suffix}" for suffix in (".csv", ".md", ".png")])
    try:
        rows = read_rows(csv_path)
    except ValueError as exc:  # left untouched: it may be another program's
        fail(__file__, f"{csv_path} is not a results CSV of this script ({exc}); move it "
             "away or choose another --out")
    cells = [(n, name) for n in args.n_components for name in names]
    if not args.resume:  # refit the requested cells: drop their earlier rows
        requested = {cell[::-1] for cell in cells}
        rows = [r for r in rows if (r["model"], int(r["n_components"])) not in requested]
    if not args.resume or (csv_path.exists() and _header(csv_path) != COLUMNS):
        write_rows(rows, csv_path)  # in today's columns, so that new rows append to them
    done = {(r["model"], int(r["n_components"])) for r in rows}
    print(f"{args.dataset}: {X_train.shape[0]} train and {X_test.shape[0]} test samples, "
          f"{X_train.shape[1]} features; autoencoders: {training}; {len(cells)} cells, "
          f"{sum(c[::-1] in done for c in cells)} already in {csv_path}", flush=True)

    total = time.perf_counter()
    for i, (n, name) in enumerate(cells, 1):
        if (name, n) in done:
            continue
        fit_rows = args.kernel_rows if name == "KernelPCA" else len(X_train)
        settings = None
        if name in TUNERS:  # searched in a process of its own, so the fit's memory is its own
            settings = in_fresh_process(TUNERS[name], registry[name](n), X_train[:fit_rows],
                                        args.random_state)
        metrics = in_fresh_process(evaluate, registry[name](n), X_train, X_test, y_train,
                                   y_test, fit_rows, settings)
        row = {"dataset": args.dataset, "model": name, "n_components": n, **metrics}
        append_row(row, csv_path)
        rows.append(row)
        print(f"[{i:>2}/{len(cells)}] {name:>24} n_components={n:<3} "
              f"mse/pixel={row['mse_per_pixel']:.5f} probe={row['probe_accuracy']:.3f} "
              f"fit={row['fit_time_s']:.1f}s mem={row['peak_fit_mb']:.0f}MB "
              f"{row['settings']}", flush=True)
    total = time.perf_counter() - total

    table = markdown_table(rows)
    with open(f"{stem}.md", "w") as f:
        f.write(f"# skae against PCA on {args.dataset}\n\n")
        command = " ".join(["python benchmarks/compare_pca.py",
                            *(sys.argv[1:] if argv is None else argv)])
        f.write(f"Command: `{command}`\n\n")
        f.write(f"Test split: {X_test.shape[0]} samples of {X_test.shape[1]} features in "
                f"[0, 1]; autoencoders: {training}; random_state: {args.random_state}.\n\n")
        carried = len(done)
        f.write(f"Environment: {environment_line()}, {platform.machine()}. "
                f"Time of this run: {total:.0f} s; {len(rows) - carried} cells fitted in it, "
                f"{carried} read from `{csv_path.name}` (fitted by earlier runs, whose "
                "settings and times they keep).\n\n")
        f.write(table + "\n")
    write_plot(rows, f"{stem}.png", args.dataset)

    print()
    print(table)
    print(f"\nwrote {stem}.md, {csv_path} and {stem}.png in {total:.1f} s", flush=True)


if __name__ == "__main__":
    main()
