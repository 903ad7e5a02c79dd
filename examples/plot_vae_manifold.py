"""Variational autoencoder: the 2-D manifold of MNIST digits and the latent space.

Reproduces the chapter's "variational autoencoder" figures with
``skae.VariationalAutoencoder(n_components=2, batch_size=100)``: 784 -> 512 -> 256 -> (mu,
log sigma^2) of a 2-D Gaussian, z = mu + sigma * eps, 2 -> 256 -> 512 -> 784 (sigmoid; the
chapter has one layer of 256, which stays about 10 nats worse), trained on
784 * BCE + KL(q(z|x) || N(0, I)) (the chapter's loss). Left: the decoder's mean output
over a 15 x 15 grid of z = norm.ppf(quantiles), so that equal steps cover equal prior
probability (the chapter's manifold figure; digits morph smoothly into each other). Right:
the posterior means of the test digits, coloured by digit.

It prints the test -ELBO (``-vae.score(X_test)``, nats per image; lower is better).

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). By default it trains 50 epochs (as the
chapter, which uses RMSprop; skae's default is Adam) on a random 10,000 of MNIST's training
digits, batch 100: 8 minutes on 2 CPU cores that other jobs were sharing (test -ELBO 150.2
on the 10,000 test digits).

Usage::

    python examples/plot_vae_manifold.py                   # MNIST subset, 50 epochs
    python examples/plot_vae_manifold.py --n-samples 0
    python examples/plot_vae_manifold.py --quick           # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

from _common import example_parser, finish_args, load_data, save_figure


def parse_args(argv=None):
    parser = example_parser(__doc__, __file__)
    return finish_args(parser.parse_args(argv), epochs=50)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.exceptions import ConvergenceWarning

    from skae import VariationalAutoencoder
    from skae.plotting import LatentSpaceDisplay, ManifoldDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, y_test, image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else None, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs")

    vae = VariationalAutoencoder(n_components=2, batch_size=100, max_iter=args.max_iter,
                                 random_state=args.random_state)
    vae.fit(X_train)
    terms = ", ".join(f"{k} {v[-1]:.2f}" for k, v in vae.loss_terms_.items())
    print(f"VariationalAutoencoder(2): fitted in {time.perf_counter() - start:.1f} s; final "
          f"training loss {vae.loss_curve_[-1]:.2f} ({terms})")
    print(f"test -ELBO: {-vae.score(X_test):.2f} nats per image")

    fig, (ax_manifold, ax_latent) = plt.subplots(1, 2, figsize=(13, 6.2))
    ManifoldDisplay.from_estimator(vae, n_per_side=15, image_shape=image_shape,
                                   ax=ax_manifold)
    ax_manifold.set_title(f"{name}: decoded 15 x 15 grid of norm.ppf quantiles")
    LatentSpaceDisplay.from_estimator(vae, X_test, y_test, ax=ax_latent)
    ax_latent.set_title("posterior means of the test digits")
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
