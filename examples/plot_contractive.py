"""Contractive autoencoder: a code that barely moves when the input moves.

Reproduces the chapter's "contractive autoencoder" section. ``skae.ContractiveAutoencoder(32)``
minimises reconstruction + lambda * ||J_h(x)||_F^2, the squared Frobenius norm of the
Jacobian of the (sigmoid) code with respect to the input; for one sigmoid layer it is
sum_j (h_j (1 - h_j))^2 sum_i W_ji^2, the closed form the chapter writes (with its bugs
fixed: the penalty here uses the live weights). It is compared with the same network
without the penalty, ``Autoencoder(32, code_activation="logistic")``.

It prints, for both models, the test reconstruction error and the mean of ||J_h(x)||_F^2
over 1,000 test digits, computed exactly by autograd
(``skae._losses.jacobian_frobenius``): the contractive model's is much smaller. The figure
shows the two codes of the test digits, projected on their first two principal components
and coloured by digit.

Data: MNIST from ``$SKAE_DATA/mnist/`` (``skae.datasets.load_mnist(download=False)``);
without it, scikit-learn's 8x8 digits (pixels / 16). By default each model trains 50 epochs
on a random 10,000 of MNIST's training digits, batch 256: about 10 seconds on 2 CPU cores.

Usage::

    python examples/plot_contractive.py                    # MNIST subset, 50 epochs
    python examples/plot_contractive.py --contraction-weight 10
    python examples/plot_contractive.py --quick            # smoke run: 2 epochs, 500 rows
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _common import example_parser, finish_args, load_data, non_negative_float, save_figure


def parse_args(argv=None):
    parser = example_parser(__doc__, __file__)
    parser.add_argument("--contraction-weight", type=non_negative_float, default=1.0,
                        help="lambda, the weight of the Jacobian penalty (default 1)")
    return finish_args(parser.parse_args(argv), epochs=50)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from skae import Autoencoder, ContractiveAutoencoder
    from skae._losses import jacobian_frobenius
    from skae.metrics import reconstruction_mse
    from skae.plotting import LatentSpaceDisplay

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    X_train, X_test, _, y_test, _image_shape, name = load_data(
        args.n_samples, 1000 if args.quick else 5000, args.random_state)
    print(f"{name}: {len(X_train)} training / {len(X_test)} test images of "
          f"{X_train.shape[1]} pixels; {args.max_iter} epochs")

    common = {"max_iter": args.max_iter, "random_state": args.random_state}
    models = {
        f"ContractiveAutoencoder(32, contraction_weight={args.contraction_weight})":
            ContractiveAutoencoder(32, contraction_weight=args.contraction_weight, **common),
        'Autoencoder(32, code_activation="logistic")':
            Autoencoder(32, code_activation="logistic", **common),
    }
    X_jac = torch.from_numpy(np.ascontiguousarray(X_test[:1000], dtype=np.float32))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (label, model) in zip(axes, models.items()):
        tic = time.perf_counter()
        model.fit(X_train)
        fit_time = time.perf_counter() - tic
        jac = jacobian_frobenius(
            lambda v, model=model: model.encoder_(model._scaler(v, "normalize")), X_jac,
            create_graph=False).mean().item()
        mse = reconstruction_mse(model, X_test)
        print(f"{label}: fitted in {fit_time:.1f} s; test MSE per pixel {mse:.4f}; "
              f"mean ||J_h(x)||_F^2 on {len(X_jac)} test digits {jac:.3f}")
        LatentSpaceDisplay.from_estimator(model, X_test, y_test, ax=ax)
        ax.set_title(f"{label}\n||J||_F^2 = {jac:.3f}, MSE {mse:.4f}", fontsize=10)
    fig.suptitle(f"{name}: 32-unit sigmoid codes of test digits (PCA of the codes)")
    save_figure(fig, args.out, start)


if __name__ == "__main__":
    main()
