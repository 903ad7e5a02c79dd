"""Novelty detection with an autoencoder's ``score_samples``.

An autoencoder trained on one kind of data reconstructs it well and anything else badly,
so minus its reconstruction loss (``score_samples``; higher is more normal) flags novel
samples. Here ``skae.Autoencoder(32)`` is trained only on the digit 0 (``--inliers``
picks other classes, e.g. ``--inliers 0 1 2 3 4``), then scores the test digits: the
inliers (test 0s) against the outliers (all other digits). This is an application of the
chapter's vanilla autoencoder (first section) and of its closing question, what the
objective measures.

It prints the ROC AUC of the autoencoder's score and, as a baseline, of
``PCA(32).score_samples`` (a Gaussian log-likelihood), both fitted on the same inliers;
1 means the score ranks every inlier above every outlier. The figure shows histograms of
the reconstruction loss (-score_samples) of inliers and outliers for both models.

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). By default it trains 30 epochs on the
inliers among a random 10,000 of MNIST's training digits (about 1,000 zeros): a few seconds
on 2 CPU cores.

Usage::

    python examples/plot_novelty_detection.py                     # inliers: 0
    python examples/plot_novelty_detection.py --inliers 0 1 2 3 4
    python examples/plot_novelty_detection.py --quick             # smoke run: 5 epochs
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from _common import example_parser, finish_args, load_data, save_figure


def parse_args(argv=None):
    # About a tenth of the rows are inliers for one digit: enough to fit on.
    parser = example_parser(__doc__, __file__, min_rows=100)
    parser.add_argument("--inliers", type=int, nargs="+", default=[0], choices=range(10),
                        metavar="DIGIT", help="digit classes to train on (default: 0)")
    args = parser.parse_args(argv)
    args.inliers = sorted(set(args.inliers))
    if len(args.inliers) == 10:
        parser.error("argument --inliers: must leave at least one digit out as the outliers")
    return finish_args(args, epochs=30, quick_epochs=5, quick_rows=3000)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import roc_auc_score

    from skae import Autoencoder

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, y_train, y_test, _image_shape, name = load_data(
        args.n_samples, 2000 if args.quick else None, args.random_state)
    inliers = args.inliers
    X_in = X_train[np.isin(y_train, inliers)]
    is_outlier = ~np.isin(y_test, inliers)
    print(f"{name}: trained on {len(X_in)} training digits of class(es) {inliers}; "
          f"test: {np.sum(~is_outlier)} inliers, {np.sum(is_outlier)} outliers; "
          f"{args.max_iter} epochs")
    if len(X_in) < 2:
        sys.exit(f"error: {len(X_in)} training digit(s) of class(es) {inliers}; "
                 "raise --n-samples")

    n_components = min(32, len(X_in) - 1)
    models = {
        f"Autoencoder({n_components})": Autoencoder(
            n_components, max_iter=args.max_iter, batch_size=64,
            random_state=args.random_state),
        f"PCA({n_components})": PCA(n_components, random_state=args.random_state),
    }
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (label, model) in zip(axes, models.items()):
        model.fit(X_in)
        novelty = -model.score_samples(X_test)  # higher: more novel
        auc = roc_auc_score(is_outlier, novelty)
        print(f"{label}: ROC AUC of -score_samples, outliers vs inliers: {auc:.3f}")
        bins = np.histogram_bin_edges(novelty, bins=50)
        ax.hist(novelty[~is_outlier], bins=bins, alpha=0.6, density=True,
                label=f"inliers (digit {', '.join(map(str, inliers))})")
        ax.hist(novelty[is_outlier], bins=bins, alpha=0.6, density=True,
                label="outliers (other digits)")
        what = ("reconstruction loss (nats per image)" if isinstance(model, Autoencoder)
                else "minus Gaussian log-likelihood")
        ax.set_xlabel(f"-score_samples: {what}")
        ax.set_ylabel("density")
        ax.set_title(f"{name}: {label}, ROC AUC {auc:.3f}")
        ax.legend()
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
