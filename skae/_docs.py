"""Documentation text shared by the estimators' docstrings (written once, joined per class)."""

_NETWORK_PARAMS = """\
    hidden_layer_sizes : int or tuple of int, default={hidden}
        Widths of the dense layers between the input (or the conv stack) and the code;
        the decoder mirrors them. ``()`` gives a shallow autoencoder.

    conv_filters : int or tuple of int, default={filters}
        A convolutional stack before the dense layers: each entry is a convolution with
        that many filters, the activation and 2x2 max pooling (ceil mode, so any image size
        works); the decoder mirrors it with nearest-neighbour upsampling to the exact
        sizes. ``()`` means none.

    kernel_size : int, default=3
        Side of the convolution kernels ("same" padding).

    image_shape : tuple of int or None, default=None
        ``(height, width)`` or ``(height, width, channels)``; rows of ``X`` are the C-order
        flattening of ``(height, width, channels)``. ``None`` infers a square one-channel
        image when ``n_features`` is a perfect square, else (with a conv stack) a 1-D
        signal.

    activation : {{"relu", "tanh", "logistic", "identity", "leaky_relu", "elu", "gelu", \
"softplus"}}, default="relu"
        Activation of the hidden layers.

    code_activation : str or None, default={code_activation}
        Activation of the code layer, from the same list; ``None`` means ``activation``.

    loss : {{"auto", "bce", "mse"}}, default="auto"
        Reconstruction loss, summed over features and averaged over samples. ``"bce"`` is
        binary cross-entropy with a sigmoid output and needs data in [0, 1]; ``"mse"`` is
        squared error with a linear output. ``"auto"`` picks ``"bce"`` when the training
        data lie in [0, 1], else ``"mse"``. Whatever the loss, the encoder sees the data
        standardised by the training data's per-feature mean and one global scale (an exact
        reparameterisation of the first layer); for ``"mse"`` the decoder's output is
        mapped back to the data's units. With ``"bce"`` a new network's output bias starts
        at the logit of each feature's mean (each channel's after a conv stack), so its
        outputs start near the means, as with ``"mse"``; a variational autoencoder's
        starts at zero (a decoder at the mean image let its KL term collapse the code).
"""

_TRAINING_PARAMS = """\
    solver : {{"adam", "adamw", "sgd", "rmsprop", "adadelta"}}, default="adam"
        Optimizer, torch's with its defaults but the learning rate. ``"sgd"`` uses Nesterov
        momentum 0.9; ``"adamw"`` decays all parameters, biases included, by its decoupled
        weight decay of 0.01, on top of ``alpha``; ``"adadelta"`` multiplies its steps by
        the learning rate and needs about ``learning_rate_init=1.0`` (torch's default for
        it), not the default here.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights (not the biases): the loss term
        ``weight_decay`` = ``alpha / 2`` times the sum of the squared weights, added to the
        per-sample loss. It keeps weights that get little gradient (e.g. pixels that are
        rarely on) small, which makes first-layer filters readable. The reconstruction loss
        is summed over features, so useful values are larger than ``MLPRegressor``'s. A
        decoder that reads a scaled code (``SparseAutoencoder`` with ``sparsity="kl"``) has
        its first weights counted as the code sees them.

    learning_rate_init : float, default={learning_rate}
        Learning rate.

    batch_size : int, default={batch_size}
        Samples per gradient step (all samples when fewer).

    max_iter : {{"auto"}} or int, default="auto"
        Maximum number of epochs of :meth:`fit`. ``"auto"`` is 50 epochs, or, where an
        epoch is fewer than 100 gradient steps of ``batch_size`` rows (small data), as many
        as make 5,000 steps: with 256-row batches 50 epochs are 11,750 steps on MNIST's
        60,000 rows, but only 200 on 1,000 rows. Fits of small data take longer than 50
        epochs but end far closer to a trained network (see the README, "Training
        budget"); the ``tol`` stop may end them sooner.

    tol : float, default=1e-4
        Minimum improvement of the training loss (or of the validation score with early
        stopping) that resets the ``n_iter_no_change`` count. It is in the training loss's
        units, which do not depend on the scale of ``X`` (see ``loss_curve_``); a squared-
        error validation score, in the data's units, is compared against ``tol`` times the
        squared global scale.

    n_iter_no_change : int, default=10
        Stop when more than this many epochs in a row improve by less than ``tol``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop when its score stops
        improving and restore the weights of the best epoch.

    validation_fraction : float, default=0.1
        Fraction of the training data held out with early stopping.

    shuffle : bool, default=True
        Shuffle the samples every epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split{random_extra} through
        local generators; the global numpy and torch states are not touched (``None`` draws
        one seed from numpy's global state, as sklearn does). An int gives bit-identical
        refits on the CPU.

    verbose : int, default=0
        1 prints one line per epoch (loss, validation score, seconds); 2 adds a progress
        bar over batches.

    warm_start : bool, default=False
        Continue training from the current weights and optimizer state on :meth:`fit`
        (a changed ``solver`` starts with a state of its own).
        The network keeps the shape it was built with: a warm start (or a later
        :meth:`partial_fit`) after ``n_components``, a layer, an activation or ``loss``
        changed raises ``ValueError``.

    device : str, default="cpu"
        Torch device to train and infer on: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...;
        ``"auto"`` takes CUDA when available. ``"cuda"`` is the current CUDA device
        when the model is fitted or used, and ``device_`` names it with its index.

    precision : {{"float32", "bfloat16"}}, default="float32"
        Arithmetic of training. ``"bfloat16"`` is mixed precision: the encoder and the
        decoder of each training step run under ``torch.autocast`` in bfloat16 (matrix
        products and convolutions on 8-bit mantissas), while the weights, the optimizer,
        the loss terms, :meth:`transform`, :meth:`score` and the statistics behind
        :meth:`sample` stay in float32 (a contractive model's autograd Jacobians, with
        ``jacobian="exact"`` or ``"projection"``, run the encoder again in float32). On a
        CPU with AMX it cut the epoch of the chapter's conv net and of a
        784-1000-500-250-30 net by about a third, not that of 784-32-784; on an H100,
        timed step by step without the CUDA-graph replay that skae uses, the training
        steps of the same networks were slower, and with the replay it has not been timed:
        time it first. Needs the CPU or a GPU of compute capability 8.0 or more.
"""

_ATTRIBUTES = """\
    Attributes
    ----------
    n_components_ : int
        Size of the code.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    loss_ : {"bce", "mse"}
        The loss resolved from ``loss``.

    image_shape_ : tuple of int or None
        The resolved ``(height, width, channels)`` of a sample, if any.

    device_ : str
        The torch device the networks live on (``"cpu"``, ``"cuda:0"``, ...).

    encoder_, decoder_ : torch.nn.Module
        The trained networks. The encoder reads standardised float32 rows,
        ``(X - mean) / scale`` (the training data's per-feature mean and one global
        scale); the decoder outputs logits for ``loss_="bce"`` and standardised rows for
        ``loss_="mse"``. :meth:`transform` and :meth:`inverse_transform` apply both
        conversions, so call the modules directly only to build on them. The decoder
        first multiplies the code by its ``code_scale`` (``1 / rho`` for a KL-sparse
        model, else 1), a fixed factor that is not in its ``state_dict``.

    n_iter_ : int
        Number of epochs trained.

    loss_curve_ : list of float
        Training loss (sum of the loss terms, averaged over samples) per epoch. With
        ``loss_="mse"`` its squared error is divided by the square of the data's global
        scale (see ``loss``), so the loss, ``tol`` and the penalty weights mean the same at
        any scale of ``X``; :meth:`score` is in the data's units.

    loss_terms_ : dict of str to list of float
        Each named loss term per epoch.

    best_loss_ : float or None
        Lowest training loss (``None`` before any epoch was trained, and once any epoch
        was trained with early stopping).

    validation_scores_ : list of float or None
        :meth:`score` on the validation split for each epoch trained with early stopping.
        A warm start that turns ``early_stopping`` on adds scores from then on, so the
        list can be shorter than ``loss_curve_``; one that turns it off keeps the scores
        of the epochs before.

    best_validation_score_ : float or None
        Validation score of the weights that the last :meth:`fit` with early stopping
        kept: the best of that fit's scores, its starting weights' included after a warm
        start from training with early stopping (that score is not in
        ``validation_scores_``). Training after that fit
        without early stopping (:meth:`partial_fit`, or ``early_stopping=False``) changes
        the weights but not this value.
"""


def compose(summary, head_params, *, network, training, variant_params="", attributes="",
            see_also="", examples=""):
    """Join a class docstring from its own text and the shared parameter sections."""
    return (summary + "\n    Parameters\n    ----------\n" + head_params + variant_params
            + _NETWORK_PARAMS.format(**network) + "\n" + _TRAINING_PARAMS.format(**training)
            + "\n" + _ATTRIBUTES + attributes + see_also + examples)
