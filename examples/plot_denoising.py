"""Denoising autoencoder: noisy MNIST digits above their denoised versions.

Reproduces the figure of the chapter's "denoising autoencoder" section. Test digits are
corrupted as in the chapter, ``clip(x + 0.5 * N(0, 1), 0, 1)`` (noise factor 0.5, drawn with
a fixed seed), and a ``skae.DenoisingAutoencoder`` trained to map noisy digits (fresh noise
every epoch) back to clean ones reconstructs them. The figure shows the clean test digits
(top panel) and, below, the noisy digits (first row) above their denoised versions (second
row).

It prints the mean squared error per pixel of the noisy digits and of the denoised ones,
both against the clean digits.

By default the denoiser is dense, 784 -> 256 -> 128 -> 256 -> 784 (fast on a CPU);
``--conv`` trains the chapter's convolutional denoiser instead,
``DenoisingAutoencoder(None, conv_filters=(32, 32), noise_level=0.5)``: Conv(32)-pool-
Conv(32)-pool, a 7x7x32 code, mirrored with upsampling (several times slower).

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). By default it trains 30 epochs (10 with
``--conv``; the chapter trains 100) on a random 10,000 of MNIST's training digits, batch
128: about 15 seconds (dense) or about two minutes (``--conv``) on 2 CPU cores.

Usage::

    python examples/plot_denoising.py                  # dense denoiser, MNIST subset
    python examples/plot_denoising.py --conv           # the chapter's conv denoiser
    python examples/plot_denoising.py --quick          # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _common import example_parser, finish_args, load_data, positive_int, save_figure

NOISE_LEVEL = 0.5


def parse_args(argv=None):
    parser = example_parser(__doc__, __file__)
    parser.add_argument("--conv", action="store_true",
                        help="the chapter's convolutional denoiser (slower)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    args = parser.parse_args(argv)
    return finish_args(args, epochs=10 if args.conv else 30)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.exceptions import ConvergenceWarning

    from skae import DenoisingAutoencoder
    from skae.plotting import ReconstructionDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, _, image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else 2000, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs, batch {args.batch_size}")

    common = {"noise_level": NOISE_LEVEL, "max_iter": args.max_iter,
              "batch_size": args.batch_size, "random_state": args.random_state}
    if args.conv:
        model = DenoisingAutoencoder(None, conv_filters=(32, 32), image_shape=image_shape,
                                     **common)
        label = "DenoisingAutoencoder(None, conv_filters=(32, 32))"
    else:
        model = DenoisingAutoencoder(128, hidden_layer_sizes=(256,), **common)
        label = "DenoisingAutoencoder(128, hidden_layer_sizes=(256,))"
    model.fit(X_train)
    print(f"{label}: code of {model.n_components_} numbers, fitted in "
          f"{time.perf_counter() - start:.1f} s")

    # The chapter's corruption, drawn once with a fixed seed.
    rng = np.random.RandomState(args.random_state)
    noise = rng.standard_normal(X_test.shape).astype(X_test.dtype)
    X_noisy = np.clip(X_test + NOISE_LEVEL * noise, 0, 1)
    X_denoised = model.inverse_transform(model.transform(X_noisy))
    noisy_mse = float(np.mean((X_noisy - X_test) ** 2))
    denoised_mse = float(np.mean((X_denoised - X_test) ** 2))
    change = (f"{noisy_mse / denoised_mse:.2f}x lower" if denoised_mse < noisy_mse
              else f"{denoised_mse / noisy_mse:.2f}x higher: not denoised")
    print(f"test MSE per pixel against the clean digits: noisy {noisy_mse:.4f}, "
          f"denoised {denoised_mse:.4f} ({change})")

    n_show = 10
    fig, (ax_clean, ax_rec) = plt.subplots(
        2, 1, figsize=(10, 4.2), gridspec_kw={"height_ratios": [1, 2]})
    h, w = image_shape
    ax_clean.imshow(np.hstack([x.reshape(h, w) for x in X_test[:n_show]]), cmap="gray",
                    vmin=0, vmax=1)
    ax_clean.set_axis_off()
    ax_clean.set_title(f"{name}: clean test digits")
    ReconstructionDisplay.from_estimator(model, X_noisy[:n_show], n_samples=n_show,
                                         image_shape=image_shape, ax=ax_rec)
    ax_rec.set_title(f"noisy (top, MSE {noisy_mse:.4f}) and denoised (bottom, MSE "
                     f"{denoised_mse:.4f}) by {label}", fontsize=10)
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
