"""Convolutional autoencoder: MNIST digits above their reconstructions.

Reproduces the figure of the chapter's "convolutional autoencoder" section: the network
Conv(16)-pool-Conv(8)-pool-Conv(8)-pool, a 4x4x8 = 128-number code, mirrored with
upsampling to a sigmoid output (``skae.ConvAutoencoder()``'s default). Unlike the chapter's
Keras code it needs no unpadded convolution to get back from 4x4 to 28x28, so the same
estimator runs on the 8x8 digits of the fallback. The top row of the figure shows test
digits, the bottom row their reconstructions; the second panel is the loss per epoch.

It prints the test reconstruction error per pixel and that of ``PCA`` with as many
components as the code has numbers.

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). Convolutions are slow on a CPU, so by
default it trains 20 epochs (the chapter trains 50) on a random 10,000 of MNIST's training
digits, batch 128: about a minute on 2 CPU cores (2-3 s per epoch). Raise ``--max-iter`` and
``--n-samples 0`` (all rows) for sharper reconstructions.

Usage::

    python examples/plot_convolutional.py                  # MNIST subset, 20 epochs
    python examples/plot_convolutional.py --max-iter 50 --n-samples 0
    python examples/plot_convolutional.py --quick          # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

from _common import example_parser, finish_args, load_data, positive_int, save_figure


def parse_args(argv=None):
    # The PCA baseline has as many components as MNIST's code has numbers (128).
    parser = example_parser(__doc__, __file__, min_rows=128)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    return finish_args(parser.parse_args(argv), epochs=20)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning

    from skae import ConvAutoencoder
    from skae.metrics import reconstruction_mse
    from skae.plotting import LossCurveDisplay, ReconstructionDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, _, image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else 2000, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs, batch {args.batch_size}")

    ae = ConvAutoencoder(max_iter=args.max_iter, batch_size=args.batch_size,
                         image_shape=image_shape, random_state=args.random_state)
    ae.fit(X_train)
    fit_time = time.perf_counter() - start
    mse = reconstruction_mse(ae, X_test)
    n_code = ae.n_components_
    pca = PCA(min(n_code, X_train.shape[1]), random_state=args.random_state).fit(X_train)
    pca_mse = reconstruction_mse(pca, X_test)
    print(f"ConvAutoencoder(): code of {n_code} numbers, fitted in {fit_time:.1f} s "
          f"({fit_time / args.max_iter:.1f} s per epoch); final training loss "
          f"{ae.loss_curve_[-1]:.2f}")
    print(f"test MSE per pixel: conv autoencoder {mse:.4f}, PCA({pca.n_components_}) "
          f"{pca_mse:.4f}")

    fig, (ax_rec, ax_loss) = plt.subplots(
        2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 1]})
    ReconstructionDisplay.from_estimator(ae, X_test, n_samples=10, image_shape=image_shape,
                                         ax=ax_rec)
    ax_rec.set_title(f"{name}: test digits (top) and their ConvAutoencoder reconstructions "
                     f"(bottom); MSE {mse:.4f}")
    LossCurveDisplay.from_estimator(ae, ax=ax_loss)
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
