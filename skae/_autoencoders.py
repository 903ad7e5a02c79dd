"""The public autoencoders: thin subclasses of ``BaseAutoencoder``.

Architecture (dense or convolutional) and objective are independent: every class takes the
same network parameters, so a convolutional denoiser or a deep sparse autoencoder needs no
class of its own. Each variant overrides one or two hooks of the shell (corrupt the input,
add a loss term, a stochastic code). sklearn forbids ``**kwargs`` in ``__init__``, so each
class states its full signature; the documentation they share lives in ``_docs``.
"""

import dataclasses
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from . import _losses
from ._base import BaseAutoencoder, _check_n_samples, _spans_unit_interval
from ._docs import compose
from ._training import draw

__all__ = [
    "Autoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "ContractiveAutoencoder",
    "VariationalAutoencoder",
]

_N_COMPONENTS = """\
    n_components : int{none}, default={default}
        Size of the code{none_text}.

"""
_DENSE_NETWORK = dict(hidden="()", filters="()", code_activation="None")
_TRAINING = dict(batch_size=256, learning_rate="1e-3", random_extra="")


class Autoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Dense (shallow or deep) autoencoder as a scikit-learn transformer.

    Learns an encoder ``X -> Z`` (``n_components`` values per sample) and a decoder back to
    ``X`` by minimising the reconstruction loss. It stands where
    :class:`~sklearn.decomposition.PCA` stands (``transform``, ``inverse_transform``,
    ``n_components``), with non-linear layers. On 784 features in [0, 1] the default is the
    classic 784 -> 32 (ReLU) -> 784 (sigmoid) network trained with binary cross-entropy.
""",
        _N_COMPONENTS.format(none=" or None", default=32,
                             none_text="; with a conv stack, ``None`` makes the last of "
                             "``hidden_layer_sizes`` the code, or without them the flattened "
                             "feature map"),
        network=_DENSE_NETWORK,
        training=_TRAINING,
        see_also="""
    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction.
    ConvAutoencoder : The same with a convolutional stack by default.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import Autoencoder
    >>> X = np.random.RandomState(0).rand(100, 8)
    >>> ae = Autoencoder(n_components=2, max_iter=5, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (100, 2)
    >>> ae.inverse_transform(ae.transform(X[:3])).shape
    (3, 8)
    >>> ae.loss_
    'bce'
""",
    )

    def __init__(
        self,
        n_components=32,
        *,
        hidden_layer_sizes=(),
        conv_filters=(),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation=None,
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=1e-3,
        batch_size=256,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision


class ConvAutoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Convolutional autoencoder for images (or 1-D signals).

    The default is the chapter's network for 28x28 digits: Conv(16) - pool - Conv(8) - pool
    - Conv(8) - pool gives a 4x4x8 code, mirrored with upsampling to a sigmoid output.
    Pooling rounds up (28 -> 14 -> 7 -> 4) and the decoder upsamples back to the exact sizes,
    so any image size works: 8x8 digits, 32x32x3, a non-square 20x30.
""",
        _N_COMPONENTS.format(none=" or None", default=None,
                             none_text="; ``None`` makes the last of ``hidden_layer_sizes`` the "
                             "code, or without them the flattened feature map of the conv "
                             "stack; an int adds a dense bottleneck of that size"),
        network=dict(hidden="()", filters="(16, 8, 8)", code_activation="None"),
        training=_TRAINING,
        see_also="""
    See Also
    --------
    Autoencoder : Dense autoencoder; it takes ``conv_filters`` too.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import ConvAutoencoder
    >>> X = np.random.RandomState(0).rand(20, 64)  # 8x8 images
    >>> ae = ConvAutoencoder(conv_filters=(4, 2), max_iter=2, random_state=0).fit(X)
    >>> ae.image_shape_, ae.n_components_
    ((8, 8, 1), 8)
""",
    )

    def __init__(
        self,
        n_components=None,
        *,
        hidden_layer_sizes=(),
        conv_filters=(16, 8, 8),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation=None,
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=1e-3,
        batch_size=256,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision


class DenoisingAutoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Denoising autoencoder: reconstructs clean inputs from corrupted ones.

    Each epoch draws fresh noise from ``random_state``; the target is the clean input.
    Noise is only used in training: ``transform`` and ``score`` see the input as given.
    With ``conv_filters`` it is the chapter's convolutional denoiser.
""",
        _N_COMPONENTS.format(none=" or None", default=32,
                             none_text="; with a conv stack, ``None`` makes the last of "
                             "``hidden_layer_sizes`` the code, or without them the flattened "
                             "feature map"),
        variant_params="""\
    noise : {"gaussian", "masking", "salt_and_pepper"}, default="gaussian"
        ``"gaussian"`` adds ``noise_level * N(0, 1)`` (in the units of ``X``) and clips to
        [0, 1] when the training data lie there; ``"masking"`` sets a fraction
        ``noise_level`` of the inputs to 0; ``"salt_and_pepper"`` sets a fraction
        ``noise_level`` of the inputs to 1 or 0 when the training data lie in [0, 1]
        (white or black pixels), else to their feature's maximum or minimum, each with
        probability 1/2. "The training data" are every row trained on so far: a warm
        start or a later :meth:`partial_fit` on data outside [0, 1] ends the clipping and
        widens the ranges.

    noise_level : float, default=0.5
        Standard deviation of the Gaussian noise, or the corrupted fraction (at most 1).
        0.5 is the usual setting for MNIST (the chapter's factor 1 is as strong as the
        signal).

""",
        network=_DENSE_NETWORK,
        training=dict(_TRAINING, random_extra=", the noise"),
        see_also="""
    See Also
    --------
    Autoencoder : The same network without noise.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import DenoisingAutoencoder
    >>> X = np.random.RandomState(0).rand(50, 16)
    >>> dae = DenoisingAutoencoder(4, noise="masking", noise_level=0.3, max_iter=2,
    ...                            random_state=0).fit(X)
    >>> dae.transform(X).shape
    (50, 4)
""",
    )

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "noise": [StrOptions({"gaussian", "masking", "salt_and_pepper"})],
        "noise_level": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=32,
        *,
        noise="gaussian",
        noise_level=0.5,
        hidden_layer_sizes=(),
        conv_filters=(),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation=None,
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=1e-3,
        batch_size=256,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.noise = noise
        self.noise_level = noise_level
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision

    def _check_training(self, X, early_stopping):
        if self.noise != "gaussian" and self.noise_level > 1:
            raise ValueError(f"noise_level is a fraction of inputs for noise={self.noise!r} "
                             f"and must be at most 1, got {self.noise_level}.")
        super()._check_training(X, early_stopping)
        self._widen_noise_range(X)

    def _initialize(self, X):
        super()._initialize(X)
        self._feature_range = None

    def _widen_noise_range(self, X):
        """Take ``X`` into the per-feature range of every row trained on, and clip the
        Gaussian noise (and salt and pepper to 1 and 0) while that range is within [0, 1]."""
        low, high = (_dense(v).ravel().astype(np.float32) for v in (X.min(axis=0), X.max(axis=0)))
        if self._feature_range is not None:
            low = np.minimum(low, self._feature_range[0])
            high = np.maximum(high, self._feature_range[1])
        self._feature_range = (low, high)
        self._clip = _spans_unit_interval(float(low.min()), float(high.max()))

    def _corrupt(self, x, generator):
        if self.noise == "gaussian":
            noisy = x + self.noise_level * _randn_like(x, generator)
            return noisy.clamp(0.0, 1.0) if self._clip else noisy
        hit = _rand_like(x, generator) < self.noise_level
        if self.noise == "masking":
            return x.masked_fill(hit, 0.0)
        low, high = (torch.as_tensor(v, device=x.device) for v in self._feature_range)
        salt = _rand_like(x, generator) < 0.5
        if self._clip:  # images in [0, 1]: white or black
            return torch.where(hit, salt.to(x.dtype), x)
        return torch.where(hit, torch.where(salt, high, low), x)


class SparseAutoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Sparse autoencoder: a penalty keeps most code units inactive.

    With ``sparsity="kl"`` the penalty is ``sparsity_weight * sum_j KL(rho || rho_hat_j)``,
    where ``rho = sparsity_target`` and ``rho_hat_j`` is the mean activation of code unit
    ``j`` over the batch (one value per unit, of a sigmoid code, clamped away from 0 and 1).
    With ``sparsity="l1"`` it is ``sparsity_weight`` times the mean L1 norm of the code.
    Works over-complete (``n_components > n_features``).

    With ``sparsity="kl"`` the code layer's biases start at ``logit(rho)`` and the decoder
    reads ``code / rho``, so a unit active at rate ``rho`` enters it at unit scale
    (``transform`` still returns the sigmoid code; weight decay sees the decoder's weights as
    the code does). The penalty fixes each unit's mean activation, not the shape of its
    distribution: without weight decay the units settle at low, graded activity; with
    ``alpha`` > 0, large decoder weights cost, and the units become parts detectors that are
    mostly off and sometimes fully on (see ``examples/plot_sparse_filters.py``).
""",
        _N_COMPONENTS.format(none="", default=32, none_text=""),
        variant_params="""\
    sparsity : {"kl", "l1"}, default="kl"
        The sparsity penalty; ``"kl"`` needs ``code_activation="logistic"``.

    sparsity_target : float, default=0.05
        Target mean activation ``rho`` of each code unit (``"kl"`` only), in
        [1e-6, 1 - 1e-6]: the penalty holds the batch means that far from 0 and 1.

    sparsity_weight : float, default=3.0
        Weight of the penalty, per sample, against a reconstruction loss summed over
        features (as in Ng's notes, whose recommended weight is 3). On MNIST, with
        ``n_components=128`` and 10 epochs, 3.0 brings the mean code activation on test
        digits to about 0.06 (target 0.05) at 1.36 times the test error of a plain
        ``Autoencoder(128)`` (``benchmarks/mnist_claims.py``).

""",
        network=dict(hidden="()", filters="()", code_activation='"logistic"'),
        training=dict(_TRAINING, learning_rate="3e-3"),
        see_also="""
    See Also
    --------
    Autoencoder : The same network without the penalty.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> X = np.random.RandomState(0).rand(50, 16)
    >>> sae = SparseAutoencoder(n_components=32, max_iter=2, random_state=0).fit(X)
    >>> sorted(sae.loss_terms_)
    ['reconstruction', 'sparsity']
""",
    )

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sparsity": [StrOptions({"kl", "l1"})],
        # the KL penalty holds batch means within KL_CLAMP of 0 and 1: a target beyond
        # would be out of its reach (and 1 / target, the code's scale, overflow float32)
        "sparsity_target": [Interval(Real, _losses.KL_CLAMP, 1 - _losses.KL_CLAMP,
                                     closed="both")],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=32,
        *,
        sparsity="kl",
        sparsity_target=0.05,
        sparsity_weight=3.0,
        hidden_layer_sizes=(),
        conv_filters=(),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation="logistic",
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=3e-3,
        batch_size=256,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.sparsity = sparsity
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision

    def _resolve_code_activation(self):
        activation = super()._resolve_code_activation()
        if self.sparsity == "kl" and activation != "logistic":
            raise ValueError("sparsity='kl' compares mean activations with a target in (0, 1), "
                             "so it needs code_activation='logistic', got "
                             f"{activation!r}; use sparsity='l1' for other activations.")
        return activation

    def _build_architecture(self, n_features, image_shape):
        architecture = super()._build_architecture(n_features, image_shape)
        if self.sparsity != "kl":
            return architecture
        # The decoder reads code / rho: a unit active at rate rho enters it at unit scale, so
        # its weights need not grow by 1/rho (Adam moves each weight by about the learning
        # rate per step, and would need many epochs to get there).
        return dataclasses.replace(architecture, code_scale=1.0 / float(self.sparsity_target))

    def _build_networks(self, seed):
        super()._build_networks(seed)
        if self.sparsity == "kl":  # start every code unit at the target mean activation
            target = self.sparsity_target
            with torch.no_grad():
                self.encoder_.code_layer.bias.fill_(math.log(target / (1 - target)))

    def _penalties(self, net_input, encoded, generator):
        if self.sparsity == "kl":
            penalty = _losses.kl_sparsity(encoded, self.sparsity_target)
        else:
            penalty = _losses.l1_activity(encoded).mean()
        return {"sparsity": self.sparsity_weight * penalty}


class ContractiveAutoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Contractive autoencoder: penalises the encoder's sensitivity to its input.

    The penalty is ``contraction_weight * ||J_h(x)||_F^2``, the squared Frobenius norm of
    the Jacobian of the code with respect to the network input, averaged over samples. For
    one sigmoid layer it has the closed form ``sum_j (h_j (1 - h_j))^2 sum_i W_ji^2``
    computed with the live weights; deep or convolutional encoders use autograd.
""",
        _N_COMPONENTS.format(none="", default=32, none_text=""),
        variant_params="""\
    contraction_weight : float, default=1.0
        Weight of the penalty, per sample, against a reconstruction loss summed over
        features. The Jacobian is taken with respect to the network's input, the
        standardised data. On MNIST (32 logistic units, 10 epochs) 1.0 cuts the Jacobian's
        squared norm about five-fold at no cost in reconstruction error.

    jacobian : {"auto", "closed_form", "exact", "projection"}, default="auto"
        How the penalty is computed: ``"closed_form"`` for a single dense logistic layer;
        ``"exact"`` by one backward pass per code unit; ``"projection"`` by an unbiased
        random-projection estimate ``||v^T J||^2`` with ``v ~ N(0, I)`` (one backward pass).
        ``"auto"`` takes the closed form where it applies, else ``"exact"`` up to 16 code
        units and ``"projection"`` beyond.

""",
        network=dict(hidden="()", filters="()", code_activation='"logistic"'),
        training=dict(_TRAINING, random_extra=(",\n        the random projections of "
                                                    "``jacobian=\"projection\"``,")),
        attributes="""
    jacobian_ : {"closed_form", "exact", "projection"}
        The penalty's computation resolved from ``jacobian``.
""",
        see_also="""
    See Also
    --------
    Autoencoder : The same network without the penalty.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import ContractiveAutoencoder
    >>> X = np.random.RandomState(0).rand(50, 16)
    >>> cae = ContractiveAutoencoder(n_components=4, max_iter=2, random_state=0).fit(X)
    >>> cae.jacobian_
    'closed_form'
""",
    )

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "contraction_weight": [Interval(Real, 0, None, closed="left")],
        "jacobian": [StrOptions({"auto", "closed_form", "exact", "projection"})],
    }

    def __init__(
        self,
        n_components=32,
        *,
        contraction_weight=1.0,
        jacobian="auto",
        hidden_layer_sizes=(),
        conv_filters=(),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation="logistic",
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=1e-3,
        batch_size=256,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.contraction_weight = contraction_weight
        self.jacobian = jacobian
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision

    def _check_training(self, X, early_stopping):
        super()._check_training(X, early_stopping)
        arch = self._architecture
        closed_form = (not arch.hidden_layer_sizes and not arch.conv_filters
                       and arch.code_activation == "logistic")
        if self.jacobian == "closed_form" and not closed_form:
            raise ValueError("jacobian='closed_form' holds for one dense logistic layer only; "
                             "use 'exact' or 'projection' for this encoder.")
        if self.jacobian != "auto":
            self.jacobian_ = self.jacobian
        else:
            self.jacobian_ = ("closed_form" if closed_form
                              else "exact" if self.n_components_ <= 16 else "projection")

    def _replayable_steps(self):
        # The autograd Jacobians (a backward pass per code unit or projection inside the
        # step) have not been run under CUDA-graph capture; the closed form has.
        return self.jacobian_ == "closed_form"

    def _penalties(self, net_input, encoded, generator):
        if self.jacobian_ == "closed_form":
            penalty = _losses.contractive_closed_form(encoded, self.encoder_.code_layer.weight)
        elif self.jacobian_ == "exact":
            penalty = _losses.jacobian_frobenius(self.encoder_, net_input)
        else:
            penalty = _losses.jacobian_frobenius_projection(
                self.encoder_, net_input, lambda code: _randn_like(code, generator))
        return {"contraction": self.contraction_weight * penalty.mean()}


class VariationalAutoencoder(BaseAutoencoder):
    __doc__ = compose(
        """Variational autoencoder (Kingma & Welling, 2014).

    The encoder outputs the mean ``mu`` and log-variance of a Gaussian posterior over the
    code; training samples ``z = mu + sigma * eps`` (reparameterisation) and minimises the
    negative ELBO, ``reconstruction + beta * KL(q(z|x) || N(0, I))`` with the KL in closed
    form. The decoder is Bernoulli (binary cross-entropy, ``loss_="bce"``) or Gaussian with
    unit variance in the standardised data space (``loss_="mse"``). ``transform`` returns
    ``mu``; ``sample`` decodes draws from the prior; ``score_samples`` is the ELBO with
    ``beta = 1`` in nats, computed with one ``eps`` fixed at fit so it is deterministic.
    The log-variance is kept in [-{bound}, {bound}] (a smooth tanh bound), so training
    does not overflow.
""".format(bound=10),
        _N_COMPONENTS.format(none="", default=2, none_text=" (the latent dimension)"),
        variant_params="""\
    beta : float, default=1.0
        Weight of the KL term (beta-VAE); 1 gives the ELBO.

""",
        network=dict(hidden="(512, 256)", filters="()", code_activation="None"),
        training=dict(_TRAINING, batch_size=100, random_extra=", the reparameterisation"),
        see_also="""
    See Also
    --------
    Autoencoder : Deterministic autoencoder.
""",
        examples="""
    Examples
    --------
    >>> import numpy as np
    >>> from skae import VariationalAutoencoder
    >>> X = np.random.RandomState(0).rand(50, 16)
    >>> vae = VariationalAutoencoder(max_iter=2, random_state=0).fit(X)
    >>> vae.transform(X).shape, vae.sample(3, random_state=0).shape
    ((50, 2), (3, 16))
""",
    ).replace("Activation of the code layer, from the same list; ``None`` means ``activation``.",
              "Must be ``None`` or ``\"identity\"``: the mean and log-variance are linear.")

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
    }

    _code_width_factor = 2
    _log_var_bound = 10.0

    def __init__(
        self,
        n_components=2,
        *,
        beta=1.0,
        hidden_layer_sizes=(512, 256),
        conv_filters=(),
        kernel_size=3,
        image_shape=None,
        activation="relu",
        code_activation=None,
        loss="auto",
        solver="adam",
        alpha=0.0,
        learning_rate_init=1e-3,
        batch_size=100,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
        precision="float32",
    ):
        self.n_components = n_components
        self.beta = beta
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.precision = precision

    def score_samples(self, X):
        """Evidence lower bound (ELBO) of each sample, in nats; higher is better.

        ``-(-log p(x | z) + KL(q(z | x) || N(0, I)))`` with ``beta = 1`` whatever ``beta``
        the model was trained with, the KL in closed form. The reconstruction term is a
        one-draw estimate: every row decodes ``z = mu + sigma * eps`` with the same ``eps``,
        drawn once from the seed of the fit, so the score is deterministic, but it is noisier
        than the ELBO's expectation; :meth:`log_likelihood` averages over many draws. For
        ``loss_="mse"`` the density is that of ``X`` in its own units.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            One score per sample, in the floating dtype of ``X``.
        """
        return super().score_samples(X)

    def log_likelihood(self, X, n_samples=100, random_state=None):
        """Importance-sampled estimate of ``log p(x)`` per sample, in nats.

        ``log mean_k p(x | z_k) p(z_k) / q(z_k | x)`` over ``n_samples`` draws
        ``z_k ~ q(z | x)`` (Burda et al., 2016): a lower bound on the log-likelihood that
        tightens as ``n_samples`` grows; with one sample it is a one-draw estimate of the
        ELBO (unbiased, with other draws than :meth:`score_samples`).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples_X, n_features)
            Data to evaluate.
        n_samples : int, default=100
            Importance samples per data point.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples_X,)
            The estimate per sample, in the floating dtype of ``X``.
        """
        X = self._validate_scored_X(X)
        _check_n_samples(n_samples)
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        networks = self._networks_for(X.dtype)
        rows = max(1, 2**24 // (n_samples * self.n_features_in_))
        return self._map_rows(
            X, lambda x: self._importance_sampled(x, networks, n_samples, generator), rows)

    def _importance_sampled(self, x, networks, n_samples, generator):
        encoder, decoder = networks
        x_net = self._scaler(x, "normalize")
        mean, log_var = self._posterior(encoder(x_net))
        eps = torch.randn((n_samples,) + mean.shape, generator=generator, dtype=x.dtype)
        eps = eps.to(x.device)
        z = mean + torch.exp(0.5 * log_var) * eps
        output = decoder(z.reshape(-1, mean.shape[1]))
        target = self._target(x, x_net).repeat(n_samples, 1)
        log_px = -self._log_density_shift(self._nll(output, target)).reshape(n_samples, -1)
        log_pz = -0.5 * (z.square().sum(-1) + mean.shape[1] * _losses.LOG_2PI)
        log_qz = -0.5 * (eps.square() + log_var + _losses.LOG_2PI).sum(-1)
        return torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(n_samples)

    def _check_n_components(self):
        if self.n_components is None:
            raise ValueError("VariationalAutoencoder needs an integer n_components.")

    def _start_output_bias(self):
        """Keep the zero output bias. A decoder that starts at the mean image lets the KL
        term switch the code off before the decoder learns to use it (posterior collapse):
        on 8x8 digits, ``VariationalAutoencoder(64)`` then ended at the mean image
        (``benchmarks/output_bias.py``)."""

    def _resolve_code_activation(self):
        if self.code_activation not in (None, "identity"):
            raise ValueError("The VAE's mean and log-variance are linear: code_activation must "
                             f"be None or 'identity', got {self.code_activation!r}.")
        return "identity"

    def _posterior(self, encoded):
        mean, raw = encoded.chunk(2, dim=1)
        bound = self._log_var_bound
        return mean, bound * torch.tanh(raw / bound)

    def _code(self, encoded):
        return encoded[:, : encoded.shape[1] // 2]

    def _sample_code(self, encoded, generator):
        mean, log_var = self._posterior(encoded)
        eps = _randn_like(mean, generator)
        kl = _losses.gaussian_kl(mean, log_var).mean()
        return mean + torch.exp(0.5 * log_var) * eps, {"kl": self.beta * kl}

    def _reconstruction(self, output, target):
        return self._nll(output, target).mean()

    def _nll(self, output, target):
        """Per-sample -log p(x | z) in the network's (standardised) units."""
        if self.loss_ == "bce":
            return _losses.reconstruction(output, target, "bce")
        return _losses.gaussian_nll(output, target)

    def _score_tensor(self, x, networks, in_loss_units=False):  # a log-density: no scale
        encoder, decoder = networks
        x_net = self._scaler(x, "normalize")
        mean, log_var = self._posterior(encoder(x_net))
        eps = torch.randn(mean.shape[1], generator=torch.Generator().manual_seed(self._seed),
                          dtype=torch.float32)  # the same draw whatever torch's default dtype
        z = mean + torch.exp(0.5 * log_var) * eps.to(dtype=x.dtype, device=x.device)
        nll = self._log_density_shift(self._nll(decoder(z), self._target(x, x_net)))
        return -(nll + _losses.gaussian_kl(mean, log_var))

    def _score_scale(self):
        # log-densities: the data's units shift them by a constant (see _log_density_shift)
        return 1.0

    def _log_density_shift(self, nll):
        """A Gaussian decoder's density is of the standardised data: convert to data units."""
        if self.loss_ == "bce":
            return nll
        return nll + self.n_features_in_ * math.log(self._x_scale)

    def _draw_codes(self, n_samples, rng):
        return rng.standard_normal((n_samples, self.n_components_))

    def _update_code_distribution(self, X, reset):
        """Nothing to gather: ``sample`` draws codes from the prior, N(0, I)."""


def _dense(array):
    return array.toarray() if hasattr(array, "toarray") else np.asarray(array)


def _rand_like(x, generator):
    """Uniform draws shaped like ``x`` from a CPU generator (see ``_training.draw``)."""
    return draw(torch.rand, x, generator)


def _randn_like(x, generator):
    """Standard normal draws shaped like ``x`` from a CPU generator."""
    return draw(torch.randn, x, generator)
