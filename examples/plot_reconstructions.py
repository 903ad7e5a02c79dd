"""Vanilla autoencoder: MNIST digits above their reconstructions, and the loss curve.

Reproduces the figure of the chapter's first section ("vanilla autoencoder"): the
784 -> 32 (ReLU) -> 784 (sigmoid) network trained with binary cross-entropy, which is
``skae.Autoencoder(n_components=32)`` by default on 784 features in [0, 1]. The top panel
shows ten test digits (first row) above their reconstructions from a 32-number code
(second row), drawn as one figure (the chapter's plotting code draws only the bottom row).
The bottom panel shows the training loss per epoch.

It prints the test reconstruction error (mean squared error per pixel and per image, the
units of the chapter notes' reference table: PCA with 32 components gives 0.0168 per
pixel on MNIST) and PCA's error with the same code size, for comparison.

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it the script falls back to scikit-learn's 8x8 digits (pixels / 16).
By default it trains the chapter's 50 epochs on a random 10,000 of MNIST's 60,000
training digits, batch 256: about 10 seconds on 2 CPU cores. ``--n-samples 0``
trains on all of them.

Usage::

    python examples/plot_reconstructions.py                   # MNIST subset, 50 epochs
    python examples/plot_reconstructions.py --n-samples 0   # the chapter's run
    python examples/plot_reconstructions.py --quick           # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

from _common import example_parser, finish_args, load_data, save_figure


def parse_args(argv=None):
    parser = example_parser(__doc__, __file__, min_rows=32)  # PCA(32) needs 32 rows
    return finish_args(parser.parse_args(argv), epochs=50)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning

    from skae import Autoencoder
    from skae.metrics import reconstruction_mse
    from skae.plotting import LossCurveDisplay, ReconstructionDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, _, image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else None, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs")

    ae = Autoencoder(32, max_iter=args.max_iter, random_state=args.random_state)
    ae.fit(X_train)
    n_params = sum(p.numel() for net in (ae.encoder_, ae.decoder_) for p in net.parameters())
    mse = reconstruction_mse(ae, X_test)
    pca_mse = reconstruction_mse(PCA(32, random_state=args.random_state).fit(X_train), X_test)
    print(f"Autoencoder(32): {n_params} parameters, fitted in {time.perf_counter() - start:.1f} s;"
          f" final training loss {ae.loss_curve_[-1]:.2f}")
    print(f"test MSE per pixel: autoencoder {mse:.4f} ({mse * X_test.shape[1]:.2f} per image),"
          f" PCA(32) {pca_mse:.4f} ({pca_mse * X_test.shape[1]:.2f} per image)")

    fig, (ax_rec, ax_loss) = plt.subplots(
        2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 1]})
    ReconstructionDisplay.from_estimator(ae, X_test, n_samples=10, image_shape=image_shape,
                                         ax=ax_rec)
    ax_rec.set_title(f"{name}: test digits (top) and their Autoencoder(32) reconstructions "
                     f"(bottom); MSE {mse:.4f}")
    LossCurveDisplay.from_estimator(ae, ax=ax_loss)
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
