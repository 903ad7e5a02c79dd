"""The estimator shell that every skae autoencoder shares.

``BaseAutoencoder`` validates data and parameters, builds the networks (``_nn``), hands
training to the engine (``_training``) and implements the sklearn methods. Variants override
a few small hooks rather than methods:

- ``_corrupt(x, generator)``: the training input (the denoiser adds noise);
- ``_code_width_factor`` and ``_code(encoded)``: a stochastic code (the VAE's mean and
  log-variance);
- ``_sample_code(encoded, generator)``: the code used in training and its own loss terms
  (the VAE's reparameterisation and KL term);
- ``_penalties(net_input, encoded, generator)``: extra named loss terms (sparsity,
  contraction);
- ``_score_tensor(x, networks, in_loss_units)`` and ``_draw_codes(n, rng)``: scoring and
  sampling.
"""

import contextlib
import copy
import dataclasses
import functools
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._arrays import (
    FLOAT_DTYPES,
    INFERENCE_BATCH,
    ChunkedArray,
    is_out_of_core,
    row_blocks,
    validate,
)
from ._losses import reconstruction
from ._nn import ACTIVATIONS, Architecture, build_networks, conv_geometry, conv_output_size
from ._training import (
    SOLVERS,
    BatchSource,
    DataParallelTrainer,
    Trainer,
    TrainingState,
    agreed_preparation,
    data_parallel_group,
    make_optimizer,
    shares_with_torch,
    warn_at_caller,
)

_SEED_MAX = np.iinfo(np.int32).max
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# the largest |mean| / scale at which standardising fuses ``x / s - m / s`` into one op: its
# rounding, up to float32's eps times this ratio in units of the spread, stays about 1e-5
_FUSED_OFFSET = 100.0
# MinMaxScaler's maximum can round to 1 + 2.2e-16 (float64), or for float32 data far from
# zero against their range to 1 + 4e-6: data that far outside [0, 1] (relative to their
# magnitude) still count as in it, for loss="auto", BCE's check and the denoiser's clipping
_UNIT_SLACK = 1e-5
# a BCE model's output bias starts at the logit of each feature's mean, clipped to
# [_MEAN_CLIP, 1 - _MEAN_CLIP]: about -9.2 for a feature that is always 0
_MEAN_CLIP = 1e-4
# max_iter="auto": 50 epochs, or on small data as many as make _AUTO_STEPS gradient steps
_AUTO_EPOCHS = 50
_AUTO_STEPS = 5_000

# the parameter behind each field of an Architecture that differs from the parameter's name
_ARCHITECTURE_PARAMS = {"code_width": "n_components", "code_size": "n_components"}
# activations of the widest layer per inference batch (16 MiB of float32): 334 rows for the
# chapter's conv net, whose transform took 0.86-0.96x as long as with 8 MiB (167 rows);
# the dense nets, whose batches grow to the 4,096-row cap (from 2,674 and 2,097 rows),
# were unchanged (benchmarks/levers.py, "inference batch")
_INFERENCE_VALUES = 2**22


def _differs(built, wanted):
    """Whether two values of an ``Architecture`` field differ; floats up to rounding (a
    ``sparsity_target`` given as float32 comes back from ``skae.save`` as a float)."""
    if isinstance(built, float) and isinstance(wanted, float):
        return not math.isclose(built, wanted, rel_tol=1e-6)
    return built != wanted


def _with_autograd(method):
    """``method`` with autograd on and in full precision: a fit inside the caller's
    ``torch.no_grad()``, ``torch.inference_mode()`` or ``torch.autocast()`` block builds
    trainable weights and trains them as anywhere else."""
    @functools.wraps(method)
    def with_autograd(*args, **kwargs):
        with torch.inference_mode(False), torch.enable_grad(), _full_precision():
            return method(*args, **kwargs)
    return with_autograd


def _mixed_precision(precision, device):
    """Autocast to bfloat16 on ``device`` with ``precision="bfloat16"``, else nothing.

    Its cache of bfloat16 weight copies is off: it lives until the outermost autocast block
    ends, and :func:`_full_precision` holds one open for the whole fit, so every step would
    reuse the first step's weights (and a CUDA graph may not capture it).
    """
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


@contextlib.contextmanager
def _full_precision():
    """Arithmetic in the networks' own dtype whatever the caller's ``torch.autocast``
    (which would compute in float16 or bfloat16, change the results and hand back
    tensors that numpy cannot take)."""
    with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
        yield


class BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shell shared by every skae autoencoder. Not for direct use: see ``Autoencoder``."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "conv_filters": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "image_shape": ["array-like", None],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "code_activation": [StrOptions(set(ACTIVATIONS)), None],
        "loss": [StrOptions({"auto", "bce", "mse"})],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        # a step in float32, as torch's optimizers take it: a larger rate cannot be cast
        "learning_rate_init": [Interval(Real, 0, _FLOAT32_MAX, closed="right")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "device": [str],
        "precision": [StrOptions({"float32", "bfloat16"})],
    }

    _code_width_factor = 1

    # ------------------------------------------------------------------ sklearn API

    @_fit_context(prefer_skip_nested_validation=True)
    @_with_autograd
    def fit(self, X, y=None):
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. A ``np.memmap`` or another sliceable array with a numpy
            ``dtype`` (dask, zarr, h5py) is never loaded or converted whole: it is
            validated and its scaling statistics gathered in one pass of small chunks, then
            read and cast to float32 one batch at a time; ``transform``, ``score_samples``
            and ``inverse_transform`` read it in chunks too.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "encoder_")
        X = self._prepare_training(X, reset=not continuing, early_stopping=self.early_stopping)
        n_train = X.shape[0] - (_validation_size(X.shape[0], self.validation_fraction)
                                if self.early_stopping else 0)
        epochs = _max_epochs(self.max_iter, n_train, self.batch_size)
        reason = self._train(X, epochs=epochs, early_stopping=self.early_stopping)
        self._update_code_distribution(X, reset=True)
        if reason == "max_iter":  # last: a filter may make the warning an error
            per_epoch = math.ceil(n_train / self.batch_size)
            auto = self.max_iter == "auto"
            more = (f"pass an int max_iter above {epochs} for more" if auto
                    else "raise max_iter, or lower batch_size, for more")
            warn_at_caller(
                f"Stochastic Optimizer: Maximum iterations ({epochs}"
                f"{' epochs, max_iter=auto' if auto else ''}) reached and the optimization "
                f"hasn't converged yet ({epochs * per_epoch} gradient steps, {per_epoch} per "
                f"epoch of batch_size={self.batch_size}; {more}).", ConvergenceWarning)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @_with_autograd
    def partial_fit(self, X, y=None):
        """Train one epoch over ``X``, continuing from the current weights.

        The first call fixes the loss, the scaling and the network; later calls check
        the parameters as :meth:`fit` does, and refuse those that would shape another
        network (``ValueError``). There is no early stopping and no
        ``ConvergenceWarning``; ``n_iter_`` grows by one per call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; a ``np.memmap`` or lazy array is read in chunks, as in
            :meth:`fit`.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first = not hasattr(self, "encoder_")
        # sklearn's _fit_context validates the parameters at a first partial_fit only
        X = self._prepare_training(X, reset=first, early_stopping=False,
                                   validate_params=not first)
        self._train(X, epochs=1, early_stopping=False)
        self._update_code_distribution(X, reset=first)
        return self

    def transform(self, X):
        """Encode ``X``: the code of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            The codes, in the floating dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        X = validate(self, X, reset=False)
        self._follow_device()
        return self._encode(X)

    def inverse_transform(self, X):
        """Decode codes back to the data space: the decoder's mean output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Codes, e.g. from :meth:`transform` or :meth:`sample`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Reconstructed data, in the floating dtype of the codes.
        """
        check_is_fitted(self)
        self._follow_device()
        if is_out_of_core(X):
            Z = ChunkedArray(X, type(self).__name__).scan(moments=False)
        else:
            Z = check_array(X, dtype=FLOAT_DTYPES, input_name="X", estimator=self)
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__}.inverse_transform "
                f"expects codes of {self.n_components_} components.")
        _, decoder = self._networks_for(Z.dtype)
        return self._map_rows(Z, lambda z: self._mean_output(decoder(z)))

    def score_samples(self, X):
        """Log-likelihood-like score of each sample; higher is better.

        Minus the reconstruction loss of each sample on the (clean) input, summed over
        features: the binary cross-entropy in nats for ``loss_="bce"``, the squared error in
        the squared units of ``X`` for ``loss_="mse"``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            One score per sample, in the floating dtype of ``X``.
        """
        X = self._validate_scored_X(X)
        networks = self._networks_for(X.dtype)
        return self._map_rows(X, lambda x: self._score_tensor(x, networks))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X``: higher is better.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Mean per-sample score.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Generate samples: decoder means of random codes.

        Codes are drawn from a Gaussian fitted to the training codes (mean and full
        covariance, plus a small ridge); the variational autoencoder draws from its prior.
        :meth:`fit` encodes its ``X`` once after training; :meth:`partial_fit` pools the
        codes of every chunk it was given, each encoded by the network as it was after
        that call, as for a stream. Passes of :meth:`partial_fit` over the same data pool
        them too, so the Gaussian lags behind the current network; a warm-start
        :meth:`fit` (``warm_start=True``) recomputes it from its ``X`` alone.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            Generated samples (float64).
        """
        check_is_fitted(self)
        _check_n_samples(n_samples)
        codes = self._draw_codes(int(n_samples), check_random_state(random_state))
        return self.inverse_transform(codes)

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------ fitted attributes

    @property
    def n_iter_(self):
        """Number of epochs trained so far."""
        return self._history("n_iter_").n_iter

    @property
    def loss_curve_(self):
        """Training loss (the sum of the loss terms) per epoch."""
        return list(self._history("loss_curve_").loss_curve)

    @property
    def loss_terms_(self):
        """Each named loss term per epoch, e.g. ``{"reconstruction": [...]}``."""
        terms = self._history("loss_terms_").loss_terms
        return {name: list(values) for name, values in terms.items()}

    @property
    def validation_scores_(self):
        """:meth:`score` on the validation split per epoch trained with early stopping
        (``None`` if none was)."""
        return list(self._history("validation_scores_").validation_scores) or None

    @property
    def best_loss_(self):
        """Lowest training loss reached (``None`` before any epoch was trained, and once
        any epoch was trained with early stopping)."""
        state = self._history("best_loss_")
        return None if state.validation_scores or not state.loss_curve else state.best_loss

    @property
    def best_validation_score_(self):
        """Validation score of the weights that the last fit with early stopping kept
        (``None`` if no epoch was trained with early stopping)."""
        state = self._history("best_validation_score_")
        return state.best_validation_score if state.validation_scores else None

    def _history(self, name):
        """The training history behind the fitted attribute ``name``."""
        try:
            return self._state
        except AttributeError:  # unfitted: name the attribute asked for, as sklearn does
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}") from None

    # ------------------------------------------------------------------ hooks

    def _corrupt(self, x, generator):
        """Training input made from the clean batch ``x`` (raw scale)."""
        return x

    def _code(self, encoded):
        """The code (what ``transform`` returns) from the encoder's output."""
        return encoded

    def _sample_code(self, encoded, generator):
        """The code fed to the decoder in training, and any loss terms it brings."""
        return encoded, {}

    def _reconstruction(self, output, target):
        """Training reconstruction term of a batch (network units), averaged over samples."""
        return reconstruction(output, target, self.loss_).mean()

    def _penalties(self, net_input, encoded, generator):
        """Extra named loss terms (scalars) of a training batch."""
        return {}

    def _score_tensor(self, x, networks, in_loss_units=False):
        """Per-sample score of a batch ``x`` (raw scale); higher is better. With
        ``in_loss_units``, not multiplied by :meth:`_score_scale` (which may overflow
        float32 for data of a huge spread)."""
        encoder, decoder = networks
        x_net = self._scaler(x, "normalize")
        output = decoder(self._code(encoder(x_net)))
        error = reconstruction(output, self._target(x, x_net), self.loss_)
        return -error if in_loss_units else -error * self._score_scale()

    def _score_scale(self):
        """Units of :meth:`score` per unit of the training loss's reconstruction term.

        The squared error trains on standardised data and is scored in the data's units:
        the squared global scale. The early-stopping ``tol`` is multiplied by it, so it
        means what it means for the training loss, whatever the units of ``X``.
        """
        return 1.0 if self.loss_ == "bce" else self._x_scale**2

    def _draw_codes(self, n_samples, rng):
        """Codes to decode in :meth:`sample`."""
        count, mean, scatter = self._code_statistics()
        cov = scatter / (count - 1) if count > 1 else np.zeros_like(scatter)
        cov += np.eye(len(mean)) * (1e-6 * np.trace(cov) / len(mean) + 1e-12)
        return mean + rng.standard_normal((n_samples, len(mean))) @ np.linalg.cholesky(cov).T

    def _code_statistics(self):
        """``(count, mean, scatter)`` of the training codes, behind :meth:`sample`."""
        try:
            return self._code_stats
        except AttributeError:  # gathered after training, which stopped (error, Ctrl-C)
            raise NotFittedError(
                f"This {type(self).__name__}'s fit stopped with an error before the code "
                "statistics behind sample were gathered for its network; call fit or "
                "partial_fit again.") from None

    def _resolve_code_activation(self):
        return self.code_activation or self.activation

    def _check_n_components(self):
        if self.n_components is None and not self.conv_filters:
            raise ValueError(
                "n_components=None means the conv feature map is the code, which needs a "
                "conv stack (conv_filters); set n_components to an integer.")

    # ------------------------------------------------------------------ fitting steps

    def _validate_X(self, X, reset):
        """Training data, validated (see :meth:`_validate_scored_X` for data to score)."""
        X = validate(self, X, reset=reset, training=True)
        if not reset:
            self._check_loss_domain(X)
        return X

    def _validate_scored_X(self, X):
        """Data to score: fitted model, right width, and in [0, 1] for BCE."""
        check_is_fitted(self)
        X = validate(self, X, reset=False)
        self._check_loss_domain(X)
        self._follow_device()
        return X

    def _check_loss_domain(self, X):
        if self.loss_ == "bce" and not _in_unit_interval(X):
            raise ValueError(
                "loss='bce' (binary cross-entropy) needs data in [0, 1], but X has values "
                "outside it; scale X to [0, 1] with MinMaxScaler(clip=True) (without clip, "
                "data not seen in its fit, such as a validation fold, can fall outside) or "
                "use loss='mse'.")

    def _validate_params(self):
        """sklearn's check of the parameters, which its ``_fit_context`` runs before the
        body of ``fit``: in a data-parallel group it runs instead in
        :meth:`_prepare_training`, with the other checks that every process must agree
        on, so that a parameter only one process refuses stops them all, rather than
        leave the others waiting in a collective."""
        if data_parallel_group() is None:
            super()._validate_params()
        else:
            self._params_unchecked = True

    def _prepare_training(self, X, reset, early_stopping, validate_params=False):
        """Validate ``X`` and check what training it needs, setting up a new network with
        ``reset``; returns the validated ``X``. Nothing changes where it raises, not even
        ``random_state``, whose seed is drawn once the checks have passed.

        In a data-parallel group every process runs the checks, and all of them raise if
        one does (see :func:`agreed_preparation`), so none is left waiting for another; a
        new network is built from the seed of the group's first process.
        """
        # sklearn's _fit_context leaves its check to this block in a data-parallel group
        validate_params = self.__dict__.pop("_params_unchecked", False) or validate_params
        with _unchanged_on_error(self):
            with agreed_preparation(self.batch_size) as agreement:
                if validate_params:
                    super()._validate_params()
                X = self._validate_X(X, reset=reset)
                if reset:
                    self._initialize(X)
                else:
                    _resolve_device(self.device)  # refused here; the networks move below
                self._check_training(X, early_stopping)
                n_val = (_validation_size(X.shape[0], self.validation_fraction)
                         if early_stopping else 0)
                seed = self._draw_seed() if reset else None  # last: no check refused X
                agreement.report(X, X.shape[0] - n_val,
                                 (self._x_mean, self._x_scale, self.loss_), seed)
            if reset:
                self._build_networks(agreement.seed)
            else:  # last: moving the networks is not undone on an error
                self._follow_device()
        return X

    def _draw_seed(self):
        """The seed of a new network, drawn from ``random_state``."""
        return int(check_random_state(self.random_state).randint(_SEED_MAX))

    def _initialize(self, X):
        """Resolve loss, scaling, device and architecture, for a network not built yet."""
        self._check_n_components()
        self.device_ = _resolve_device(self.device)
        self.loss_ = self._resolve_loss(X)
        if self.loss != "auto":  # "auto" resolved to BCE only for data in [0, 1]
            self._check_loss_domain(X)
        self._x_mean, self._x_scale = _scaling_stats(X)
        self._scaling_cache = {}
        self.image_shape_ = self._resolve_image_shape(X.shape[1])
        self._architecture = self._build_architecture(X.shape[1], self.image_shape_)
        self.n_components_ = self._architecture.code_size

    def _build_networks(self, seed):
        """Build the networks of the architecture from ``seed``; reset the history."""
        self._seed = seed
        generator = torch.Generator().manual_seed(self._seed)
        self.encoder_, self.decoder_ = build_networks(self._architecture, generator, self.device_)
        if self.loss_ == "bce":
            self._start_output_bias()
        self._optimizer_state = None
        self._state = TrainingState()
        self.__dict__.pop("_code_stats", None)  # of the network replaced: gathered anew

    def _start_output_bias(self):
        """Start a BCE decoder's output bias at the logits of the fit's data's means
        (validation rows included, as for the standardisation): the best constant output,
        as the zero bias is for MSE's standardised targets."""
        bias = self.decoder_.output_layer.bias
        with torch.no_grad():
            bias.copy_(torch.from_numpy(_mean_logits(self._x_mean, bias.numel())))

    def _check_training(self, X, early_stopping):
        """Check, before any weight changes, what training ``X`` with the current
        parameters needs: on every :meth:`fit` and :meth:`partial_fit`, so a parameter set
        after a first fit is checked when training goes on. Variants extend it."""
        self._check_network_unchanged(X.shape[1])
        if early_stopping:
            _validation_size(X.shape[0], self.validation_fraction)
        # BCE data lie in [0, 1], checked already: only their spread can be out of range
        _check_float32_training(X, self._x_scale, values=self.loss_ != "bce")
        _check_precision(self.precision, _resolve_device(self.device))

    def _check_network_unchanged(self, n_features):
        """Refuse parameters that would shape another network than the one built.

        A warm-start :meth:`fit` and :meth:`partial_fit` train the network of the first
        fit; a changed ``n_components``, layer, activation or loss would otherwise be
        ignored while ``get_params`` shows it.
        """
        built = self._architecture
        wanted = self._build_architecture(n_features, self._resolve_image_shape(n_features))
        unused = set()  # fields the built network does not read
        if not built.conv_filters:
            unused.add("kernel_size")
            if not built.hidden_layer_sizes:  # one layer each way: only the code's activation
                unused.add("activation")
        changed = [self._parameter_behind(f.name, built, wanted)
                   for f in dataclasses.fields(built) if f.name not in unused
                   and _differs(getattr(built, f.name), getattr(wanted, f.name))]
        if self.loss not in ("auto", self.loss_):
            changed.append("loss")
        if changed:
            names = ", ".join(dict.fromkeys(changed))
            raise ValueError(
                f"{names} changed since the network was built; warm_start=True and "
                "partial_fit continue training that network. Fit with warm_start=False (or "
                "a clone of the estimator) to build a new one.")

    def _parameter_behind(self, field, built, wanted):
        """The parameter whose change gives the ``Architecture`` field ``field`` another value."""
        if field == "code_scale":  # 1, or 1 / sparsity_target with sparsity="kl"
            return "sparsity_target" if 1.0 not in (built.code_scale, wanted.code_scale) \
                else "sparsity"
        if (field == "code_activation" and self.code_activation is None
                and built.activation != wanted.activation):
            return "activation"  # which the code's activation follows
        return _ARCHITECTURE_PARAMS.get(field, field)

    def _follow_device(self):
        """Move a fitted model's networks once ``device`` names another device.

        So ``set_params(device="cuda")`` (or ``"cpu"``) on a fitted model takes effect at
        its next ``transform``, ``score``, ``inverse_transform`` or training call, and the
        saved optimizer state moves with the weights.
        """
        device = _resolve_device(self.device)
        if device != self.device_:
            with torch.inference_mode(False):  # tensors that can train again
                self.encoder_.to(device)
                self.decoder_.to(device)
                if self._optimizer_state is not None:
                    solver, state = self._optimizer_state
                    self._optimizer_state = (solver, _tree_to_device(state, device))
            self.device_ = device
            self._scaling_cache = {}

    def _resolve_loss(self, X):
        if self.loss != "auto":
            return self.loss
        return "bce" if _in_unit_interval(X) else "mse"

    def _resolve_image_shape(self, n_features):
        if self.image_shape is not None:
            shape = _positive_int_tuple(self.image_shape, "image_shape")
            if len(shape) not in (2, 3):
                raise InvalidParameterError(
                    "image_shape must be (height, width) or (height, width, channels), got "
                    f"{self.image_shape!r}.")
            shape = shape + (1,) * (3 - len(shape))
            if math.prod(shape) != n_features:
                raise ValueError(
                    f"image_shape={tuple(self.image_shape)} holds {math.prod(shape)} values per "
                    f"sample, but X has {n_features} features.")
            return shape
        side = math.isqrt(n_features)
        if side * side == n_features:
            return (side, side, 1)
        return (1, n_features, 1) if self.conv_filters else None

    def _build_architecture(self, n_features, image_shape):
        hidden = _positive_int_tuple(self.hidden_layer_sizes, "hidden_layer_sizes")
        filters = _positive_int_tuple(self.conv_filters, "conv_filters")
        if self.n_components is None:
            code_size = hidden[-1] if hidden else conv_output_size(image_shape, filters)
            code_width = None
        else:
            code_size = int(self.n_components)
            code_width = code_size * self._code_width_factor
        return Architecture(
            n_features=n_features, code_width=code_width, code_size=code_size,
            hidden_layer_sizes=hidden, conv_filters=filters, kernel_size=self.kernel_size,
            image_shape=image_shape if filters else None, activation=self.activation,
            code_activation=self._resolve_code_activation())

    def _train(self, X, epochs, early_stopping):
        """Run the engine for ``epochs`` epochs; returns its stop reason."""
        networks = torch.nn.ModuleDict({"encoder": self.encoder_, "decoder": self.decoder_})
        optimizer = self._make_optimizer(networks)
        generator = torch.Generator()
        source = BatchSource(X, self.device_)
        indices = np.arange(X.shape[0])
        validation_score = None
        if early_stopping:
            indices, val_idx = _validation_split(X.shape[0], self.validation_fraction, self._seed)
            validation_score = lambda: self._validation_score(source, val_idx)  # noqa: E731
        parallel = data_parallel_group()
        trainer_class, extra = ((Trainer, {}) if parallel is None
                                else (DataParallelTrainer, {"group": parallel.group}))
        trainer = trainer_class(
            networks, self._objective(generator), optimizer, self.batch_size,
            shuffle=self.shuffle, generator=generator, seed=self._seed, verbose=self.verbose,
            graphs=self._replayable_steps(), **extra)
        try:
            return trainer.fit(
                source, indices, self._state, epochs,
                tol=self.tol * (self._score_scale() if early_stopping else 1.0),
                n_iter_no_change=self.n_iter_no_change if epochs > 1 else None,
                validation_score=validation_score)
        finally:  # also after an error: the optimizer state of the weights kept
            networks.eval()
            self._optimizer_state = (self.solver, optimizer.state_dict())

    def _replayable_steps(self):
        """Whether a training step may be captured in a CUDA graph and replayed on a GPU.

        The engine also checks that a step draws nothing from the CPU generator.
        """
        return True

    def _make_optimizer(self, networks):
        state = None
        if self._optimizer_state is not None and self._optimizer_state[0] == self.solver:
            state = self._optimizer_state[1]
        return make_optimizer(self.solver, networks.parameters(), self.learning_rate_init, state)

    def _objective(self, generator):
        """The training objective of one batch: named scalar loss terms.

        With ``precision="bfloat16"`` the encoder and the decoder run under autocast; what
        they return is brought back to float32, so the code's terms, the penalties and the
        loss are computed in float32 (the autograd Jacobians of the contractive penalty
        run the encoder again, in float32).
        """
        mixed_precision = functools.partial(_mixed_precision, self.precision, self.device_)

        def objective(x):
            corrupted = self._corrupt(x, generator)
            net_input = self._scaler(corrupted, "normalize")
            target = self._target(x, net_input if corrupted is x else None)
            with mixed_precision():
                encoded = self.encoder_(net_input).float()
            code, terms = self._sample_code(encoded, generator)
            with mixed_precision():
                output = self.decoder_(code).float()
            error = self._reconstruction(output, target)
            return {"reconstruction": error, **terms,
                    **self._penalties(net_input, encoded, generator), **self._weight_decay()}
        return objective

    def _weight_decay(self):
        """The ``alpha`` L2 penalty on the weights (parameters with 2 or more dimensions).

        The decoder's weights are taken as its input sees them (see ``Decoder.code_scale``),
        so a fixed rescaling of the code does not change what the penalty means.
        """
        if not self.alpha:
            return {}
        weights = [p for p in self.encoder_.parameters() if p.dim() >= 2]
        weights += self.decoder_.effective_weights()
        return {"weight_decay": 0.5 * self.alpha * sum(w.square().sum() for w in weights)}

    def _validation_score(self, source, indices):
        self.encoder_.eval()
        self.decoder_.eval()
        with torch.inference_mode():
            networks = (self.encoder_, self.decoder_)
            chunks = np.array_split(indices, max(1, len(indices) // INFERENCE_BATCH))
            total = self._score_scale() * sum(  # scaled as a float: float32 may overflow
                float(self._score_tensor(source.take(idx), networks, in_loss_units=True).sum())
                for idx in chunks)
        self.encoder_.train()
        self.decoder_.train()
        return total / len(indices)

    def _update_code_distribution(self, X, reset):
        """Running mean and scatter of the training codes (Chan et al.'s pairwise update).

        ``X`` is encoded block by block, so its codes are never all held at once: for the
        chapter's conv net on 60,000 MNIST rows that would be 31 MB of codes and 61 MB for
        each float64 copy.
        """
        encoder, _ = self._networks_for(X.dtype)  # once: a float64 copy per block is waste
        stats = None if reset else getattr(self, "_code_stats", None)
        for block in row_blocks(X):
            codes = self._encode(block, encoder).astype(np.float64)
            n, mean_b = len(codes), codes.mean(axis=0)
            centred = codes - mean_b
            block_scatter = _gram(centred)
            if stats is None:
                stats = (n, mean_b, block_scatter)
                continue
            count, mean, scatter = stats
            total, delta = count + n, mean_b - mean
            scatter = scatter + block_scatter + np.outer(delta, delta) * count * n / total
            stats = (total, mean + delta * n / total, scatter)
        if stats is not None:  # at once: a pass cut short (Ctrl-C) leaves the last ones
            self._code_stats = stats

    # ------------------------------------------------------------------ inference helpers

    def _encode(self, X, encoder=None):
        """Codes of validated data ``X``, in its dtype (``encoder``: one for that dtype)."""
        encoder = self._networks_for(X.dtype)[0] if encoder is None else encoder
        encode = self._standardising(encoder)
        return self._map_rows(X, lambda x: self._code(encode(x)))

    def _standardising(self, encoder):
        """``x -> encoder(standardised x)`` for inference, in one pass over ``x``.

        A dense first layer absorbs the standardisation, ``W (x - m) / s + b = (W / s) x +
        (b - (W / s) m)``, so no standardised copy of each batch is made; an encoder that
        starts with convolutions standardises as in training, and so does a dense one where
        the means lie so far from zero that the two terms would cancel (see :meth:`_scaler`).
        """
        layers = list(encoder)
        first = layers[0]
        def as_in_training(x):
            return encoder(self._scaler(x, "normalize"))

        if not isinstance(first, torch.nn.Linear):
            return as_in_training
        mean, _, fused = self._scaling_tensors(first.weight.dtype, first.weight.device)
        if not fused:
            return as_in_training
        with torch.no_grad(), _full_precision():
            weight = first.weight / self._x_scale
            bias = first.bias - weight @ mean

        def encode(x):
            x = torch.nn.functional.linear(x, weight, bias)
            for layer in layers[1:]:
                x = layer(x)
            return x

        return encode

    def _target(self, x, x_net=None):
        """Reconstruction target of clean data ``x``: ``x`` itself for BCE, else standardised.

        ``x_net`` is ``x`` standardised, when already at hand.
        """
        if self.loss_ == "bce":
            return x
        return self._scaler(x, "normalize") if x_net is None else x_net

    def _scaler(self, x, direction):
        """Standardise (``"normalize"``) or undo it (``"denormalize"``).

        Standardising, ``x / scale - mean / scale``, is one fused op where the means are within
        :data:`_FUSED_OFFSET` spreads of zero; farther out, its two large terms cancel and
        lose the data's digits, so ``(x - mean) / scale`` takes two.
        """
        mean, shift, fused = self._scaling_tensors(x.dtype, x.device)
        if direction == "normalize":
            if not fused:
                return torch.sub(x, mean).mul_(1.0 / self._x_scale)
            return torch.add(shift, x, alpha=1.0 / self._x_scale)  # (x - mean) / scale
        return torch.add(mean, x, alpha=self._x_scale)

    def _scaling_tensors(self, dtype, device):
        """``mean`` and ``-mean / scale`` as tensors, made once per dtype and device, and
        whether standardising may fuse them (see :meth:`_scaler`)."""
        cache = self.__dict__.get("_scaling_cache")
        key = (dtype, str(device))
        if cache is None or key not in cache:
            mean = torch.tensor(self._x_mean, dtype=dtype, device=device)  # copy: may be read-only
            fused = float(np.abs(self._x_mean).max(initial=0.0)) <= _FUSED_OFFSET * self._x_scale
            tensors = (mean, -mean / self._x_scale, fused)
            if cache is None:
                return tensors
            cache[key] = tensors
        return cache[key]

    def _mean_output(self, output):
        if self.loss_ == "bce":
            return torch.sigmoid(output)
        return self._scaler(output, "denormalize")

    def _networks_for(self, dtype):
        """Encoder and decoder computing in ``dtype`` (copies upcast per call, never cached)."""
        if dtype == np.float32:
            return self.encoder_, self.decoder_
        return tuple(copy.deepcopy(net).to(torch.float64) for net in (self.encoder_, self.decoder_))

    def _map_rows(self, X, function, batch_size=None):
        """Apply a tensor function to ``X`` in batches; returns numpy in ``X``'s dtype.

        Each batch's output goes straight into one preallocated result: no list of pieces
        to concatenate, and no small allocations left behind between batches. Batches hold
        up to :data:`INFERENCE_BATCH` rows, fewer when the network's widest layer would
        otherwise need more than ``_INFERENCE_VALUES`` values per batch.
        """
        batch_size = batch_size or self._inference_batch_size()
        dtype = np.float64 if X.dtype == np.float64 else np.float32
        result = None
        with torch.inference_mode(), _full_precision():
            for start in range(0, max(X.shape[0], 1), batch_size):
                rows = X[start : start + batch_size]
                rows = rows.toarray() if hasattr(rows, "toarray") else rows
                rows = np.asarray(rows, dtype=dtype)
                if not (rows.flags.c_contiguous and shares_with_torch(rows)):
                    rows = np.array(rows, order="C")  # a copy torch can share
                batch = torch.from_numpy(rows)
                batch = batch.to(self.device_)
                output = function(batch).cpu().numpy()
                if result is None:
                    result = np.empty((X.shape[0],) + output.shape[1:], dtype=output.dtype)
                result[start : start + len(output)] = output
        return result

    def _inference_batch_size(self):
        """Rows per inference batch: the widest layer's activations stay within budget.

        The code layer counts too: an overcomplete code (or a VAE's mean and log-variance,
        twice the code size) can be the widest.
        """
        arch = self._architecture
        widths = [arch.n_features, *arch.hidden_layer_sizes, arch.code_width or 0]
        if arch.conv_filters:
            sizes = conv_geometry(arch.image_shape, len(arch.conv_filters))
            widths += [c * h * w for c, (h, w) in zip(arch.conv_filters, sizes)]
        return int(np.clip(_INFERENCE_VALUES // max(widths), 1, INFERENCE_BATCH))

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        state.pop("_scaling_cache", None)
        for name in ("encoder_", "decoder_"):
            if name in state:
                state[name] = _tree_to_numpy(state[name].state_dict())
        if state.get("_optimizer_state") is not None:
            solver, opt_state = state["_optimizer_state"]
            state["_optimizer_state"] = (solver, _tree_to_numpy(opt_state))
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if not hasattr(self, "precision"):  # pickled before the parameter existed
            self.precision = "float32"
        if "_x_mean" in state:
            self._scaling_cache = {}
        with torch.inference_mode(False):  # tensors that can train again
            if "encoder_" in state:
                self._restore_networks(state["encoder_"], state["decoder_"])
            if state.get("_optimizer_state") is not None:
                solver, opt_state = state["_optimizer_state"]
                self._optimizer_state = (solver, _tree_to_torch(opt_state, "cpu"))

    def _restore_networks(self, encoder_state, decoder_state):
        """Rebuild the networks on the CPU from ``_architecture`` and copy weights in."""
        self.encoder_, self.decoder_ = build_networks(self._architecture, torch.Generator())
        self.encoder_.load_state_dict(_tree_to_torch(encoder_state, "cpu"))
        self.decoder_.load_state_dict(_tree_to_torch(decoder_state, "cpu"))
        self.encoder_.eval()
        self.decoder_.eval()
        self.device_ = "cpu"


@contextlib.contextmanager
def _unchanged_on_error(estimator):
    """Restore the estimator's attributes if preparing a fit fails (bad data or parameters)."""
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _gram(a):
    """``a.T @ a`` by torch, in the encoder's threads.

    numpy's BLAS has threads of its own, which keep spinning after a product and take the
    cores from the encoder's next block: the conv net's code-statistics pass ran 2x slower.
    """
    a = torch.from_numpy(a)
    return (a.T @ a).numpy()


def _check_n_samples(n_samples):
    if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")


def _in_unit_interval(X):
    """Whether every value of validated ``X`` lies in [0, 1], up to rounding (see
    :func:`_spans_unit_interval`). False with a NaN."""
    return X.shape[0] == 0 or _spans_unit_interval(*_extremes(X))


def _spans_unit_interval(low, high):
    """Whether ``[low, high]`` lies in [0, 1], up to :data:`_UNIT_SLACK` times the largest
    magnitude (at most 1): so one row is judged as in a batch, and data of a tiny spread
    about zero are not in [0, 1]."""
    slack = _UNIT_SLACK * min(max(abs(low), abs(high)), 1.0)
    return bool(low >= -slack and high <= 1 + slack)


def _extremes(X):
    """The smallest and the largest value of validated, non-empty ``X``, as floats."""
    if isinstance(X, np.ndarray) and not X.flags.c_contiguous and X.flags.f_contiguous:
        X = X.T  # C-ordered: torch reads an F-ordered tensor 14x slower
    if isinstance(X, np.ndarray) and X.flags.c_contiguous and shares_with_torch(X):
        # one pass in torch's threads (MNIST: 9 ms against 25 ms for numpy's min, then max)
        low, high = torch.aminmax(torch.from_numpy(X))
    else:
        if getattr(X, "has_canonical_format", True) is False:
            X = X.copy()  # scipy's min and max sum the user's duplicate entries in place
        low, high = X.min(), X.max()
    return float(low), float(high)


def _scaling_stats(X):
    """Per-feature mean and one global scale (the RMS of the centred data)."""
    if hasattr(X, "toarray"):  # scipy sums float32 data in float32 whatever its dtype=
        mean = np.bincount(X.indices, weights=X.data, minlength=X.shape[1]) / X.shape[0]
    else:
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()  # float32 sums drift
    if not np.isfinite(mean).all():  # checked already, unless assume_finite=True
        if np.isfinite(_extremes(X)).all():  # finite values, too large to add up
            _check_float32_training(X, 1.0)
        raise ValueError("Input X contains NaN or infinity (sklearn's assume_finite=True "
                         "skipped that check); skae cannot train on them.")
    if isinstance(X, ChunkedArray):  # moments gathered while validating, chunk by chunk
        var = X.squared_deviations / X.shape[0]
    elif hasattr(X, "toarray"):
        var = _sparse_squared_deviations(X, mean) / X.shape[0]
    else:
        var = sum(float(np.square(X[i:i + INFERENCE_BATCH] - mean).sum())
                  for i in range(0, X.shape[0], INFERENCE_BATCH)) / X.shape[0]
    scale = math.sqrt(max(var, 0.0) / X.shape[1])
    # constant data, up to the rounding of its mean: any scale will do
    return mean, (scale if scale > 1e-12 * np.abs(mean).max() and scale > 0 else 1.0)


def _mean_logits(mean, n_outputs):
    """Logits of the features' means ``mean``, or of each channel's mean for ``n_outputs``
    channels (rows are the C-order flattening of ``(height, width, channels)``): the
    output bias whose sigmoid is the constant output of least cross-entropy. Means are
    clipped to ``[_MEAN_CLIP, 1 - _MEAN_CLIP]``: a feature that is always 0 or 1 gets a
    large finite logit.
    """
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, n_outputs).mean(axis=0)
    mean = np.clip(mean, _MEAN_CLIP, 1.0 - _MEAN_CLIP)
    return (np.log(mean) - np.log1p(-mean)).astype(np.float32)


def _sparse_squared_deviations(X, mean):
    """Sum of ``(x - mean)**2`` over all entries of a CSR matrix, stored or not.

    Taken about the mean (rather than ``E[x**2] - mean**2``, which cancels catastrophically
    when the mean is large against the spread), as for dense ``X``.
    """
    if not X.has_canonical_format:  # duplicate entries add up: sum them, in a copy
        X = X.copy()
        X.sum_duplicates()
    deviations = X.data - mean[X.indices]
    implicit = X.shape[0] - np.bincount(X.indices, minlength=X.shape[1])
    return float(np.dot(deviations, deviations) + implicit @ np.square(mean))


def _check_float32_training(X, scale, values=True):
    """Refuse ``X`` that float32, in which skae trains, cannot hold, and warn where it
    rounds ``X`` coarsely: values far from zero against the spread ``scale`` (a timestamp,
    an offset) keep only their leading digits. Inference keeps X's dtype. ``values=False``
    checks the spread alone.
    """
    if scale < float(np.finfo(np.float32).tiny):
        raise ValueError(
            f"X's spread ({scale:.3g}) is below the float32 range (about 1.2e-38) in which "
            "skae trains; rescale X (e.g. with StandardScaler).")
    if not values or X.dtype != np.float64 or X.shape[0] == 0:
        return
    low, high = _extremes(X)
    largest = max(abs(low), abs(high))
    if largest > float(np.finfo(np.float32).max):
        raise ValueError(
            f"X has values of magnitude up to {largest:.3g}, beyond the float32 range "
            f"(about 3.4e38) in which skae trains; rescale X (e.g. with StandardScaler).")
    rounding = largest * np.finfo(np.float32).eps / 2 / scale  # in units of the spread
    if rounding > 1e-2:
        warn_at_caller(
            f"X has values up to {largest / scale:.3g} times the data's spread from zero: in "
            f"float32, in which skae trains, they are rounded by up to {100 * rounding:.2g}% "
            "of the spread. Center X first (e.g. with StandardScaler) for a faithful fit.",
            UserWarning)


def _positive_int_tuple(value, name):
    values = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in values):
        raise InvalidParameterError(f"{name} must hold positive integers, got {value!r}.")
    return tuple(int(v) for v in values)


def _resolve_device(device):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device (e.g. 'cpu', 'cuda', "
                         "'cuda:1', 'auto').") from exc
    backend = getattr(torch, resolved.type, None)
    if resolved.type != "cpu" and not (backend is not None and hasattr(backend, "is_available")
                                       and backend.is_available()):
        raise ValueError(f"device={device!r} was requested but {resolved.type.upper()} is not "
                         "available on this machine; use device='cpu' or device='auto'.")
    n_cuda = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= n_cuda:
        raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA devices exist.")
    if resolved.type == "cuda" and resolved.index is None:  # pinned: every tensor on one GPU
        resolved = torch.device("cuda", torch.cuda.current_device())
    return str(resolved)


def _check_precision(precision, device):
    """Refuse ``precision="bfloat16"`` on a device other than the CPU or a GPU of compute
    capability 8.0 or more (Ampere on): older GPUs only emulate bfloat16 arithmetic."""
    if precision == "float32":
        return
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"precision={precision!r} needs device 'cpu' or 'cuda', got "
                         f"{device!r}; use precision='float32'.")
    if kind == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        raise ValueError(f"precision={precision!r}: the GPU {device!r} has no bfloat16 "
                         "arithmetic (compute capability below 8.0); use "
                         "precision='float32' or device='cpu'.")


def _validation_split(n_samples, fraction, seed):
    """Sorted ``(train, validation)`` indices: the same split on every call with a seed."""
    n_val = _validation_size(n_samples, fraction)
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _max_epochs(max_iter, n_samples, batch_size):
    """The epochs of a fit: ``max_iter``, or with ``"auto"`` 50 epochs, and more on small
    data, as many as make 5,000 gradient steps of ``batch_size`` rows from ``n_samples``.

    50 epochs are the chapter's budget for MNIST (11,750 steps of 256 rows); on a few
    hundred rows they are a few dozen steps, far from a trained network
    (``benchmarks/training_budget.py``).
    """
    if max_iter != "auto":
        return max_iter
    return max(_AUTO_EPOCHS, math.ceil(_AUTO_STEPS / math.ceil(n_samples / batch_size)))


def _validation_size(n_samples, fraction):
    """Rows held out for validation: at least one, leaving at least one to train on."""
    n_val = math.ceil(float(fraction) * n_samples)  # float32 0.2 gives 40 of 200, its float 41
    if n_val < 1 or n_samples - n_val < 1:
        raise ValueError(
            f"early_stopping needs at least one training and one validation sample; with "
            f"{n_samples} samples and validation_fraction={fraction} there are not enough.")
    return n_val


def _map_leaves(tree, kind, function):
    """``tree`` (nested dicts, lists, tuples) with each leaf of type ``kind`` mapped."""
    if isinstance(tree, kind):
        return function(tree)
    if isinstance(tree, dict):
        return type(tree)((k, _map_leaves(v, kind, function)) for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_leaves(v, kind, function) for v in tree)
    return tree


def _tree_to_numpy(tree):
    return _map_leaves(tree, torch.Tensor, lambda t: t.detach().cpu().numpy().copy())


def _tree_to_device(tree, device):
    return _map_leaves(tree, torch.Tensor, lambda t: t.to(device))


def _tree_to_torch(tree, device):
    # a copy: the array may be read-only
    return _map_leaves(tree, np.ndarray, lambda a: torch.tensor(a, device=device))
