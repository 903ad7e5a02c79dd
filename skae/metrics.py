"""Reconstruction metrics and label-free scorers for any invertible transformer.

``PCA.score`` is an average Gaussian log-likelihood and an autoencoder's ``score`` is minus
its training loss, so the two cannot be ranked against each other in a model search. The
functions here measure what both do, reconstruct ``X`` from its code,
``X_hat = estimator.inverse_transform(estimator.transform(X))``, on a common scale:

- :func:`reconstruction_mse`: the squared error per entry of ``X``;
- :func:`reconstruction_r2`: the fraction of the variance of ``X`` that the reconstruction
  explains; for a fitted ``PCA`` on its training data it equals
  ``explained_variance_ratio_.sum()``.

They accept ``PCA``, ``IncrementalPCA``, ``KernelPCA(fit_inverse_transform=True)``, every
skae estimator and a ``Pipeline`` whose steps all have ``inverse_transform``.

:func:`neg_reconstruction_mse_scorer` and :func:`reconstruction_r2_scorer` are scorers
(``scorer(estimator, X, y=None)``, greater is better) for ``GridSearchCV(scoring=...)``,
``cross_validate`` and friends; they ignore ``y``, so a search can run without labels.
"""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_array

__all__ = [
    "neg_reconstruction_mse_scorer",
    "reconstruction_mse",
    "reconstruction_r2",
    "reconstruction_r2_scorer",
]

# A sum of squares below this has lost digits to float64's subnormal range (or underflowed
# to 0 from nonzero residuals); it is summed again from data brought to about 1.
_SMALLEST_SUM = 2.0**-900
# Residuals are formed in float64 blocks of about this many entries, so scoring a large
# (or sparse) X never holds more than one dense float64 block beyond the reconstruction.
_BLOCK_ENTRIES = 1 << 22


def reconstruction_mse(estimator, X):
    """Mean squared reconstruction error per entry of ``X``.

    ``mean((X - estimator.inverse_transform(estimator.transform(X))) ** 2)`` over all
    samples and features, computed in float64: the same number as
    ``sklearn.metrics.mean_squared_error(X, X_hat)``. Lower is better; for a
    greater-is-better scorer see :func:`neg_reconstruction_mse_scorer`.

    Parameters
    ----------
    estimator : fitted transformer
        Any estimator with ``transform`` and ``inverse_transform``: ``PCA``,
        ``KernelPCA(fit_inverse_transform=True)``, a skae autoencoder, or a ``Pipeline`` in
        which every step has ``inverse_transform``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data to reconstruct; passed to ``estimator.transform`` as given. It is read
        whole (a ``np.memmap`` or lazy array too), unlike the estimators' own methods.

    Returns
    -------
    mse : float
        Squared error averaged over samples and features, in the squared units of ``X``.

    Raises
    ------
    TypeError
        If ``estimator`` has no ``transform`` or no ``inverse_transform``.
    ValueError
        If ``X`` is not finite, or its reconstruction is not a finite real array of the
        shape of ``X``.

    See Also
    --------
    reconstruction_r2 : The same error as a fraction of the variance of ``X``.
    neg_reconstruction_mse_scorer : Minus this value, as a scorer for model selection.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skae.metrics import reconstruction_mse
    >>> X = np.array([[0., 0., 1.], [1., 1., 0.], [2., 2., 1.], [3., 3., 0.]])
    >>> pca = PCA(n_components=1).fit(X)
    >>> round(reconstruction_mse(pca, X), 4)
    0.0653
    >>> round(reconstruction_mse(PCA(n_components=3).fit(X), X), 12)
    0.0
    """
    sse, _, size, exponent = _reconstruction_sums(estimator, X, need_total=False)
    with np.errstate(over="ignore"):  # an error beyond float64's range is inf
        return float(np.ldexp(sse / size, exponent))


def reconstruction_r2(estimator, X):
    """Fraction of the variance of ``X`` explained by its reconstruction.

    ``1 - SSE / SST``, with ``SSE`` the squared error of
    ``X_hat = estimator.inverse_transform(estimator.transform(X))`` summed over all
    entries and ``SST`` the squared deviation of ``X`` from its own per-feature mean,
    summed likewise. Where no feature of ``X`` is constant, that is
    ``sklearn.metrics.r2_score(X, X_hat, multioutput="variance_weighted")`` (which gives a
    constant feature no weight; here its squared error counts, as a blank border's does in
    an image's). For a ``PCA`` on the data it was fitted on it equals
    ``pca.explained_variance_ratio_.sum()`` (both sides divide by ``n_samples - 1``): the
    autoencoder analogue of PCA's explained variance. Higher is
    better; 1 is a perfect reconstruction and a model that always outputs the mean of
    ``X`` scores 0. A model that outputs another constant (its training mean, on new
    data) scores below 0.

    Parameters
    ----------
    estimator : fitted transformer
        Any estimator with ``transform`` and ``inverse_transform``: ``PCA``,
        ``KernelPCA(fit_inverse_transform=True)``, a skae autoencoder, or a ``Pipeline`` in
        which every step has ``inverse_transform``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data to reconstruct; passed to ``estimator.transform`` as given. Its per-feature
        mean is the baseline, as in ``r2_score``. It is read whole (a ``np.memmap`` or
        lazy array too), unlike the estimators' own methods.

    Returns
    -------
    r2 : float
        Explained variance fraction, at most 1. When every feature of ``X`` is constant
        (``SST = 0``, e.g. a single sample), it is 1.0 for an exact reconstruction and
        0.0 otherwise (skae's rule: ``r2_score`` scores such features one by one).

    Raises
    ------
    TypeError
        If ``estimator`` has no ``transform`` or no ``inverse_transform``.
    ValueError
        If ``X`` is not finite, or its reconstruction is not a finite real array of the
        shape of ``X``.

    See Also
    --------
    reconstruction_mse : The unnormalised squared error.
    reconstruction_r2_scorer : This value as a scorer for model selection.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skae.metrics import reconstruction_r2
    >>> X = np.array([[0., 0., 1.], [1., 1., 0.], [2., 2., 1.], [3., 3., 0.]])
    >>> pca = PCA(n_components=1).fit(X)
    >>> round(reconstruction_r2(pca, X), 4)
    0.9288
    >>> round(float(pca.explained_variance_ratio_.sum()), 4)
    0.9288
    """
    sse, sst, _, _ = _reconstruction_sums(estimator, X, need_total=True)  # both scaled alike
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst


def neg_reconstruction_mse_scorer(estimator, X, y=None):
    """Scorer: minus :func:`reconstruction_mse`, so that greater is better.

    Named after scikit-learn's ``"neg_mean_squared_error"``. Use it as
    ``GridSearchCV(..., scoring=neg_reconstruction_mse_scorer)`` or as a value of a
    ``scoring`` dict; fit the search with or without ``y``.

    Parameters
    ----------
    estimator : fitted transformer
        Any estimator with ``transform`` and ``inverse_transform``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data to reconstruct (the held-out fold in a search).
    y : object, default=None
        Ignored; present for the scorer signature.

    Returns
    -------
    score : float
        ``-reconstruction_mse(estimator, X)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skae.metrics import neg_reconstruction_mse_scorer
    >>> X = np.random.RandomState(0).rand(30, 5)
    >>> search = GridSearchCV(PCA(), {"n_components": [1, 4]},
    ...                       scoring=neg_reconstruction_mse_scorer, cv=3).fit(X)
    >>> search.best_params_
    {'n_components': 4}
    """
    return -reconstruction_mse(estimator, X)


def reconstruction_r2_scorer(estimator, X, y=None):
    """Scorer: :func:`reconstruction_r2`, the explained variance fraction.

    Use it as ``GridSearchCV(..., scoring=reconstruction_r2_scorer)`` or as a value of a
    ``scoring`` dict; fit the search with or without ``y``. Unlike each estimator's own
    ``score`` it means the same for ``PCA`` and an autoencoder, so one search can compare
    them.

    Parameters
    ----------
    estimator : fitted transformer
        Any estimator with ``transform`` and ``inverse_transform``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data to reconstruct (the held-out fold in a search).
    y : object, default=None
        Ignored; present for the scorer signature.

    Returns
    -------
    score : float
        ``reconstruction_r2(estimator, X)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import cross_val_score
    >>> from skae.metrics import reconstruction_r2_scorer
    >>> X = np.random.RandomState(0).rand(30, 5)
    >>> scores = cross_val_score(PCA(n_components=5), X, scoring=reconstruction_r2_scorer)
    >>> np.allclose(scores, 1.0)
    True
    """
    return reconstruction_r2(estimator, X)


# --------------------------------------------------------------------------- helpers


def _reconstruction_sums(estimator, X, *, need_total):
    """Return ``(SSE, SST, n_entries, exponent)`` of the reconstruction of ``X`` in float64.

    ``SST`` (squared deviation from the per-feature mean of ``X``) is None unless
    ``need_total``. Both are divided by ``2 ** exponent`` (0 unless their squares would
    overflow float64, or underflow it).
    """
    _check_invertible(estimator)
    # CSR or CSC: sliced by rows below (COO, DIA, ... cannot be)
    X_check = check_array(X, accept_sparse=("csr", "csc"), dtype="numeric",
                          ensure_all_finite=True)
    if getattr(X_check, "has_canonical_format", True) is False:  # in a copy: X is the user's
        X_check = X_check.copy()
        X_check.sum_duplicates()  # once, so that every pass below reads the same values
    X_hat = _check_reconstruction(estimator.inverse_transform(estimator.transform(X)),
                                  estimator)
    if X_hat.shape != X_check.shape:
        raise ValueError(
            f"{_name(estimator)}.inverse_transform(transform(X)) has shape {X_hat.shape}, "
            f"but X has shape {X_check.shape}; a reconstruction metric needs both in the "
            "input space.")

    n_samples, n_features = X_check.shape
    blocks = list(gen_batches(n_samples, max(1, _BLOCK_ENTRIES // max(n_features, 1))))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: summed again below
        sums = _squared_sums(X_check, X_hat, blocks, need_total, exponent=0)
    exponent = 0
    if not all(_SMALLEST_SUM < total < math.inf for total in sums if total is not None):
        # squares beyond float64's range, or so small that they lose digits: sum them again
        # divided by a power of two (exact) that brings the data to about 1, so that
        # SSE / SST keeps its digits; terms that then underflow are below its precision
        exponent = _largest_exponent(X_check, X_hat, blocks)
        sums = _squared_sums(X_check, X_hat, blocks, need_total, exponent)
    return (*sums, n_samples * n_features, 2 * exponent)


def _squared_sums(X, X_hat, blocks, need_total, exponent):
    """``(SSE, SST)`` of the data divided by ``2 ** exponent``, block by block in float64.

    The mean is taken over the same float64 blocks: scipy's sparse ``mean`` sums float32
    data in float32 whatever its ``dtype``.
    """
    factor = 2.0**-exponent
    sse, sst, mean = 0.0, None, None
    if need_total:
        sst = 0.0
        mean = _column_sums(X, blocks, factor) / X.shape[0]
    for rows in blocks:
        x = _dense64(X[rows], factor)
        sse += float(np.sum(np.square(x - _dense64(X_hat[rows], factor))))
        if need_total:
            sst += float(np.sum(np.square(x - mean)))
    return sse, sst


def _column_sums(X, blocks, factor):
    """Per-feature sums of ``X * factor`` in float64; a CSR or CSC matrix's from its stored
    entries (duplicates add up, as in ``toarray``), without densifying it."""
    if not sp.issparse(X):
        return sum(_dense64(X[rows], factor).sum(axis=0) for rows in blocks)
    stored = X.indptr[-1]
    features = (X.indices[:stored] if X.format == "csr"
                else np.repeat(np.arange(X.shape[1]), np.diff(X.indptr)))
    values = X.data[:stored].astype(np.float64) * factor
    return np.bincount(features, weights=values, minlength=X.shape[1])


def _largest_exponent(X, X_hat, blocks):
    """The power of two of the largest magnitude in ``X`` and ``X_hat`` (read by blocks,
    so that a sparse matrix's duplicate entries are summed as it means them)."""
    largest = max(float(np.abs(_dense64(A[rows])).max()) for A in (X, X_hat) for rows in blocks)
    return math.frexp(largest)[1]


def _check_reconstruction(X_hat, estimator):
    """``X_hat`` as a finite real array (or CSR/CSC matrix), or a ValueError naming why."""
    try:
        return check_array(X_hat, accept_sparse=("csr", "csc"), dtype="numeric",
                           ensure_all_finite=True, ensure_2d=False, allow_nd=True,
                           ensure_min_samples=0, ensure_min_features=0)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{_name(estimator)}.inverse_transform(transform(X)) is not a "
                         f"finite real array: {exc}") from exc


def _dense64(block, factor=1.0):
    if sp.issparse(block):
        block = block.toarray()
    block = np.asarray(block, dtype=np.float64)
    return block * factor if factor != 1.0 else block


def _check_invertible(estimator):
    for method in ("transform", "inverse_transform"):
        if hasattr(estimator, method):
            continue
        culprit = ""
        steps = getattr(estimator, "steps", None)
        if isinstance(steps, list):
            lacking = [name for name, step in steps
                       if step not in (None, "passthrough") and not hasattr(step, method)]
            if lacking:
                culprit = f" (its step(s) {', '.join(map(repr, lacking))} have none)"
        raise TypeError(
            f"{_name(estimator)} has no {method} method{culprit}; reconstruction metrics "
            "need a fitted transformer with both transform and inverse_transform, e.g. PCA, "
            "KernelPCA(fit_inverse_transform=True) or a skae autoencoder.")


def _name(estimator):
    return type(estimator).__name__
