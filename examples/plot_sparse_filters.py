"""Sparse autoencoder: its encoder's weights as images, and its units' mean activations.

Reproduces the chapter's "sparse autoencoder" section: a code of 128 sigmoid units
(over-complete for the 64 pixels of the fallback digits, not for MNIST's 784) trained with
reconstruction + beta * sum_j KL(rho || rho_hat_j), where rho_hat_j is the mean activation
of unit j over the batch
and rho = 0.05 (``skae.SparseAutoencoder(n_components=128)``). The left panel shows the
first 64 rows of the encoder's weight matrix as images: pen strokes and digit parts, as in
Ng's notes, thanks to weight decay (``alpha=0.01``). Without it (``--alpha 0``) the units
meet the target with low, graded activity (almost no activation above 0.5), which
reconstructs better, and the tiles look like noise; decay makes the large decoder weights
such a code needs costly, so the units become detectors that are mostly off and sometimes
fully on. Decay also shrinks the pre-activations, so the sparsity penalty needs more weight
to hold the mean activation near rho: ``sparsity_weight=10`` here instead of the default 3.
The right panel is the histogram of the units' mean activations on test data, which the
penalty pulls towards rho.

It prints the mean code activation (overall, and the range over units) on the test
digits, against the target rho, and the test reconstruction error.

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). By default it trains 50 epochs on a
random 10,000 of MNIST's training digits, batch 256: about 10 seconds on 2 CPU cores.

Usage::

    python examples/plot_sparse_filters.py                 # MNIST subset, 50 epochs
    python examples/plot_sparse_filters.py --n-components 64 --max-iter 50
    python examples/plot_sparse_filters.py --quick         # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _common import (
    example_parser,
    finish_args,
    load_data,
    non_negative_float,
    positive_int,
    save_figure,
)

ALPHA = 0.01
SPARSITY_WEIGHT = 10.0


def parse_args(argv=None):
    parser = example_parser(__doc__, __file__)
    parser.add_argument("--n-components", type=positive_int, default=128,
                        help="code units (default 128: over-complete for the 8x8 digits)")
    parser.add_argument("--alpha", type=non_negative_float, default=ALPHA,
                        help=f"L2 weight decay (default {ALPHA}; 0 gives noisy filters)")
    parser.add_argument("--sparsity-weight", type=non_negative_float, default=SPARSITY_WEIGHT,
                        help=f"weight of the KL sparsity penalty (default {SPARSITY_WEIGHT})")
    return finish_args(parser.parse_args(argv), epochs=50)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.exceptions import ConvergenceWarning

    from skae import SparseAutoencoder
    from skae.metrics import reconstruction_mse
    from skae.plotting import FilterDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, _, image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else None, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs")

    ae = SparseAutoencoder(n_components=args.n_components, alpha=args.alpha,
                           sparsity_weight=args.sparsity_weight, max_iter=args.max_iter,
                           random_state=args.random_state)
    ae.fit(X_train)
    print(f"SparseAutoencoder(n_components={args.n_components}, alpha={args.alpha}, "
          f"sparsity_weight={args.sparsity_weight}): fitted in "
          f"{time.perf_counter() - start:.1f} s; final loss {ae.loss_curve_[-1]:.2f}")
    codes = ae.transform(X_test)
    unit_means = codes.mean(axis=0)
    print(f"mean code activation on test data: {codes.mean():.4f} (target rho = "
          f"{ae.sparsity_target}); per unit from {unit_means.min():.4f} to "
          f"{unit_means.max():.4f}; {np.mean(codes > 0.5):.1%} of activations above 0.5")
    print(f"test MSE per pixel: {reconstruction_mse(ae, X_test):.4f}")

    fig, (ax_filters, ax_hist) = plt.subplots(
        1, 2, figsize=(11, 5.2), gridspec_kw={"width_ratios": [1.2, 1]})
    n_shown = min(64, args.n_components)
    FilterDisplay.from_estimator(ae, X=X_train, n_filters=n_shown, image_shape=image_shape,
                                 ax=ax_filters)
    ax_filters.set_title(
        f"{name}: encoder weights of {n_shown} of {args.n_components} sparse units")
    ax_hist.hist(unit_means, bins=30, color="tab:blue")
    ax_hist.axvline(ae.sparsity_target, color="k", linestyle="--",
                    label=f"target rho = {ae.sparsity_target}")
    ax_hist.set_xlabel("mean activation of a code unit on test data")
    ax_hist.set_ylabel("number of units")
    ax_hist.legend()
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
