"""Visualisations of fitted autoencoders, in scikit-learn's Display style.

Each ``*Display`` stores the data it draws; its ``from_estimator`` classmethod computes
those data from a fitted estimator and calls :meth:`plot`, which draws on a given
matplotlib ``Axes`` (or a new figure) and stores the ``ax_`` and ``figure_`` it used.
matplotlib is imported only when something is drawn, so ``import skae.plotting`` does
not need it.
"""

import math
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = [
    "FilterDisplay",
    "LatentSpaceDisplay",
    "LossCurveDisplay",
    "ManifoldDisplay",
    "ReconstructionDisplay",
]


# ---------------------------------------------------------------------- helpers


def _positive_int(value, name):
    """``value`` as an int, refused unless it is an integer of at least 1 (not a bool)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _grid_values(grid_values, n_cols, n_rows):
    """``grid_values`` as two float arrays of lengths ``n_cols`` and ``n_rows``."""
    try:
        grid_x, grid_y = (np.asarray(v, dtype=float).ravel() for v in grid_values)
    except (TypeError, ValueError):
        grid_x = grid_y = None
    if grid_x is None or (len(grid_x), len(grid_y)) != (n_cols, n_rows):
        raise ValueError(f"grid_values must hold the {n_cols} values of code dimension 1 and "
                         f"the {n_rows} of code dimension 2, got {grid_values!r}.")
    return grid_x, grid_y


def _get_ax(ax):
    """``(ax, figure)``: the given Axes, or a new one on a new figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def _mosaic(images, n_rows, n_cols, pad=1, fill=np.nan):
    """Tile ``images`` row by row into one ``n_rows x n_cols`` image.

    Parameters
    ----------
    images : array-like of shape (n_images, h, w) or (n_images, h, w, 3)
        At most ``n_rows * n_cols`` images; missing tiles are left as ``fill``.
    n_rows, n_cols : int
        Grid size.
    pad : int, default=1
        Width in pixels of the separators between tiles (filled with ``fill``).
    fill : float, default=nan
        Value of separators and empty tiles (``nan`` shows as background in ``imshow``).

    Returns
    -------
    mosaic : ndarray of shape (n_rows*(h+pad)-pad, n_cols*(w+pad)-pad[, 3])
        Tile ``k`` starts at row ``(k // n_cols) * (h + pad)``, column
        ``(k % n_cols) * (w + pad)``.
    """
    images = np.asarray(images, dtype=float)
    if len(images) > n_rows * n_cols:
        raise ValueError(f"{len(images)} images do not fit a {n_rows} x {n_cols} grid.")
    h, w = images.shape[1:3]
    out = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad) + images.shape[3:],
                  fill, dtype=float)
    for k, image in enumerate(images):
        r, c = divmod(k, n_cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
    return out


def _normalize_image_shape(image_shape, n_features):
    """``image_shape`` as an ``(h, w, c)`` tuple holding ``n_features`` values."""
    shape = tuple(image_shape) if np.iterable(image_shape) else ()
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(
            "image_shape must be (height, width) or (height, width, channels), got "
            f"{image_shape!r}.")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {math.prod(shape)} values, but the data have "
            f"{n_features} features.")
    return shape


def _final_step(estimator):
    """The model of ``estimator``: itself, or the last step of a ``Pipeline``."""
    from sklearn.pipeline import Pipeline

    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _skae_model(estimator, display):
    """The fitted skae model of ``estimator`` (or of a ``Pipeline`` ending in one)."""
    from ._base import BaseAutoencoder

    model = _final_step(estimator)
    if not isinstance(model, BaseAutoencoder):
        raise TypeError(f"{display} needs a fitted skae estimator (or a Pipeline ending in "
                        f"one), got {type(model).__name__}.")
    check_is_fitted(estimator)
    return model


def _resolve_image_shape(estimator, image_shape, n_features, infer=True):
    """The image shape to draw with: argument, the model's ``image_shape_``, or a square."""
    if image_shape is not None:
        return _normalize_image_shape(image_shape, n_features)
    fitted = getattr(_final_step(estimator), "image_shape_", None)
    if fitted is not None and fitted[0] > 1:  # (1, n, 1) is a 1-D signal, not an image
        if math.prod(fitted) == n_features:
            return _normalize_image_shape(fitted, n_features)
        infer = True  # images, whose width the steps of a Pipeline before the model changed
    side = math.isqrt(n_features)
    if infer and side > 1 and side * side == n_features:
        return (side, side, 1)
    return None


def _to_images(X, image_shape):
    """Rows of ``X`` as drawable images: ``(n, h, w)`` gray, or ``(n, h, w, 3)`` colour.

    Images with 3 channels are kept in colour; any other channel count shows channel 0.
    """
    X = np.asarray(X, dtype=float)
    h, w, c = _normalize_image_shape(image_shape, X.shape[1])
    images = X.reshape(len(X), h, w, c)
    return images if c == 3 else images[..., 0]


def _to_unit_range(images):
    """Colour images scaled to [0, 1] when they leave it (``imshow`` clips RGB)."""
    lo, hi = np.nanmin(images), np.nanmax(images)
    if lo >= 0 and hi <= 1:
        return images
    return (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)


def _show_mosaic(ax, mosaic):
    """``imshow`` a mosaic in gray (or colour) without ticks; returns the image artist."""
    im = ax.imshow(mosaic, cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


# ---------------------------------------------------------------------- reconstruction


class ReconstructionDisplay:
    """Inputs next to their reconstructions, or the per-feature reconstruction error.

    With an image shape, :meth:`plot` draws one mosaic on a single Axes: the inputs in
    the top row and their reconstructions below, on one gray scale (colour for 3
    channels, channel 0 for other channel counts). Without one (tabular data) it draws
    a bar chart of the mean squared reconstruction error of each feature over ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs.
    X_reconstructed : array-like of shape (n_samples, n_features)
        Their reconstructions.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of a row of ``X`` (C-order
        flattening); ``None`` for tabular data.
    feature_names : array-like of str, default=None
        Bar labels for tabular data; ``None`` numbers the features.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The Axes drawn on.
    figure_ : matplotlib Figure
        Its figure.
    im_ : matplotlib AxesImage or None
        The mosaic (images only).
    bars_ : matplotlib BarContainer or None
        The bars (tabular data only).

    Examples
    --------
    >>> import numpy as np
    >>> from skae import Autoencoder
    >>> from skae.plotting import ReconstructionDisplay
    >>> X = np.random.RandomState(0).rand(20, 16)
    >>> ae = Autoencoder(2, max_iter=2, random_state=0).fit(X)
    >>> disp = ReconstructionDisplay.from_estimator(ae, X, n_samples=5)
    >>> disp.ax_.images[0].get_array().shape
    (9, 24)
    """

    def __init__(self, X, X_reconstructed, *, image_shape=None, feature_names=None):
        self.X = X
        self.X_reconstructed = X_reconstructed
        self.image_shape = image_shape
        self.feature_names = feature_names

    @classmethod
    def from_estimator(cls, estimator, X, *, n_samples=10, image_shape=None, ax=None):
        """Reconstruct ``X`` with a fitted autoencoder and plot.

        Parameters
        ----------
        estimator : fitted skae estimator
            The autoencoder, or a Pipeline ending in one (its ``image_shape_`` is used);
            any fitted transformer with ``inverse_transform`` draws too.
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct.
        n_samples : int, default=10
            For images, how many of the first rows of ``X`` to show. Tabular data use
            every row of ``X``.
        image_shape : tuple of int, default=None
            Overrides ``estimator.image_shape_``. When both are ``None`` and the number of
            features is a perfect square, square single-channel images are assumed; else
            the data are drawn as tabular.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : ReconstructionDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        check_is_fitted(estimator)
        n_samples = _positive_int(n_samples, "n_samples")
        feature_names = getattr(estimator, "feature_names_in_", None)
        if len(np.shape(X)) != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {np.shape(X)}.")
        shape = _resolve_image_shape(estimator, image_shape, np.shape(X)[1])
        if shape is not None:  # keep X's type (DataFrame, sparse) for transform
            if sp.issparse(X) and X.format not in ("csr", "csc"):
                X = X.tocsr()  # COO, DIA, ... cannot be sliced
            X = X.iloc[:n_samples] if hasattr(X, "iloc") else X[:n_samples]
        X_rec = np.asarray(estimator.inverse_transform(estimator.transform(X)))
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        disp = cls(X, X_rec, image_shape=shape, feature_names=feature_names)
        return disp.plot(ax=ax)

    def plot(self, ax=None):
        """Draw the reconstructions.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on (images become one mosaic on it); a new figure when ``None``.

        Returns
        -------
        display : ReconstructionDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        X = np.asarray(self.X, dtype=float)
        X_rec = np.asarray(self.X_reconstructed, dtype=float)
        if X.shape != X_rec.shape or X.ndim != 2 or X.size == 0:
            raise ValueError(
                f"X and X_reconstructed must be 2-D of one shape, with rows and features, "
                f"got {X.shape} and {X_rec.shape}.")
        if self.feature_names is not None and len(self.feature_names) != X.shape[1]:
            raise ValueError(f"feature_names must name the {X.shape[1]} features, got "
                             f"{len(self.feature_names)} names.")
        ax, fig = _get_ax(ax)
        self.im_ = self.bars_ = None
        if self.image_shape is not None:
            images = np.concatenate([_to_images(X, self.image_shape),
                                     _to_images(X_rec, self.image_shape)])
            if images.ndim == 4:
                images = _to_unit_range(images)
            mosaic = _mosaic(images, 2, len(X), fill=np.nan if images.ndim == 3 else 1.0)
            self.im_ = _show_mosaic(ax, mosaic)
            h = images.shape[1]
            ax.set_yticks([(h - 1) / 2, h + 1 + (h - 1) / 2], ["input", "reconstruction"])
            ax.tick_params(axis="y", length=0)
        else:
            mse = ((X - X_rec) ** 2).mean(axis=0)
            names = (np.asarray(self.feature_names, dtype=str) if self.feature_names is not None
                     else np.arange(X.shape[1]).astype(str))
            self.bars_ = ax.bar(np.arange(len(mse)), mse)
            ax.set_xticks(np.arange(len(mse)), names, rotation=90 if len(mse) > 10 else 0)
            ax.set_xlabel("feature")
            ax.set_ylabel("reconstruction MSE")
        self.ax_, self.figure_ = ax, fig
        return self


# ---------------------------------------------------------------------- latent space


class LatentSpaceDisplay:
    """Scatter plot of the codes, projected on 2 principal components when wider.

    Parameters
    ----------
    Z : array-like of shape (n_samples, 1) or (n_samples, 2)
        Coordinates to draw (one column is drawn against zeros).
    y : array-like of shape (n_samples,), default=None
        Colours: labels that are not floats (integers, strings, booleans), of at most 20
        classes, get a legend entry each; floats, and more classes, a colorbar (strings
        by their rank in sorted order).
    reduced : bool, default=False
        Whether ``Z`` is a PCA projection of wider codes (sets the axis labels).

    Attributes
    ----------
    ax_ : matplotlib Axes
        The Axes drawn on.
    figure_ : matplotlib Figure
        Its figure.
    scatter_ : matplotlib PathCollection
        The points.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import Autoencoder
    >>> from skae.plotting import LatentSpaceDisplay
    >>> X = np.random.RandomState(0).rand(20, 16)
    >>> ae = Autoencoder(3, max_iter=2, random_state=0).fit(X)
    >>> disp = LatentSpaceDisplay.from_estimator(ae, X, y=np.arange(20) % 2)
    >>> disp.reduced, disp.scatter_.get_offsets().shape
    (True, (20, 2))
    """

    def __init__(self, Z, y=None, *, reduced=False):
        self.Z = Z
        self.y = y
        self.reduced = reduced

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, ax=None):
        """Encode ``X`` and plot the codes (via PCA(2) when wider than 2).

        Parameters
        ----------
        estimator : fitted skae estimator
            Or any fitted transformer, such as a ``Pipeline`` ending in an skae model.
        X : array-like of shape (n_samples, n_features)
            Data to encode.
        y : array-like of shape (n_samples,), default=None
            Colours of the points.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : LatentSpaceDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        check_is_fitted(estimator)
        Z = np.asarray(estimator.transform(X), dtype=float)
        reduced = Z.shape[1] > 2
        if reduced:
            from sklearn.decomposition import PCA

            if len(Z) < 2:
                raise ValueError(f"The codes have {Z.shape[1]} dimensions, which "
                                 "LatentSpaceDisplay projects onto 2 with PCA: that needs at "
                                 f"least 2 rows of X, got {len(Z)}.")

            Z = PCA(2).fit_transform(Z)
        return cls(Z, y, reduced=reduced).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the scatter plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : LatentSpaceDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        Z = np.asarray(self.Z, dtype=float)
        if Z.ndim == 1:
            Z = Z[:, None]
        if Z.ndim != 2 or Z.shape[1] not in (1, 2):
            raise ValueError(f"Z must have 1 or 2 columns, got shape {np.shape(self.Z)}.")
        if Z.shape[1] == 1:
            Z = np.hstack([Z, np.zeros_like(Z)])
        ax, fig = _get_ax(ax)
        kwargs = {"s": 8, "alpha": 0.7}
        if self.y is None:
            self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], **kwargs)
        else:
            y = np.asarray(self.y)
            y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y  # a column, as before
            if y.ndim != 1 or len(y) != len(Z):
                raise ValueError(f"y must hold one label per row of Z ({len(Z)}), got shape "
                                 f"{y.shape}.")
            try:
                classes = np.unique(y)
            except TypeError as exc:  # labels numpy cannot order, e.g. str and None mixed
                raise TypeError(f"y's labels must be of one orderable type: {exc}") from None
            numeric = y.dtype.kind in "iuf"
            if len(classes) <= 20 and y.dtype.kind != "f":  # a legend entry per class
                codes = np.searchsorted(classes, y)
                cmap = "tab10" if len(classes) <= 10 else "tab20"
                self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], c=codes, cmap=cmap,
                                           vmin=-0.5, vmax=(10 if len(classes) <= 10 else 20) - 0.5,
                                           **kwargs)
                handles, _ = self.scatter_.legend_elements(num=None)  # one per class
                ax.legend(handles, [str(c) for c in classes], title="y", fontsize="small")
            else:  # a colour scale: the values, or the rank of many non-numeric classes
                values = y.astype(float) if numeric else np.searchsorted(classes, y)
                self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], c=values, cmap="viridis",
                                           **kwargs)
                fig.colorbar(self.scatter_, ax=ax,
                             label="y" if numeric else "y (classes in sorted order)")
        if self.reduced:
            ax.set_xlabel("PC 1 of the code")
            ax.set_ylabel("PC 2 of the code")
        else:
            ax.set_xlabel("component 1")
            ax.set_ylabel("component 2" if np.shape(self.Z)[-1] == 2 else "")
        self.ax_, self.figure_ = ax, fig
        return self


# ---------------------------------------------------------------------- manifold


class ManifoldDisplay:
    """Decoded images over a grid of the first two code dimensions.

    Dimension 1 of the code varies along x (left to right) and dimension 2 along y
    (larger values upward), as in the Keras VAE example.

    Parameters
    ----------
    images : ndarray of shape (n_rows, n_cols, h, w) or (n_rows, n_cols, h, w, 3)
        ``images[i, j]`` is the decoding at code dimension 1 ``grid_values[0][j]`` and
        code dimension 2 ``grid_values[1][n_rows - 1 - i]`` (row 0 is the top).
    grid_values : tuple of two array-likes
        ``(values_dim_1, values_dim_2)``, increasing, of lengths ``n_cols`` and ``n_rows``.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The Axes drawn on.
    figure_ : matplotlib Figure
        Its figure.
    im_ : matplotlib AxesImage
        The mosaic.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import VariationalAutoencoder
    >>> from skae.plotting import ManifoldDisplay
    >>> X = np.random.RandomState(0).rand(20, 16)
    >>> vae = VariationalAutoencoder(2, hidden_layer_sizes=(8,), max_iter=2,
    ...                              random_state=0).fit(X)
    >>> disp = ManifoldDisplay.from_estimator(vae, n_per_side=5)
    >>> disp.images.shape
    (5, 5, 4, 4)
    """

    def __init__(self, images, *, grid_values):
        self.images = images
        self.grid_values = grid_values

    @classmethod
    def from_estimator(cls, estimator, *, n_per_side=15, quantile_range=(0.05, 0.95),
                       image_shape=None, ax=None):
        """Decode a grid of Gaussian quantiles over code dimensions 1 and 2 and plot.

        The grid takes ``scipy.stats.norm.ppf(np.linspace(*quantile_range, n_per_side))``
        on both dimensions. For a variational autoencoder these are quantiles of the
        prior N(0, 1) and the other code dimensions are 0; for other autoencoders they
        are quantiles of the Gaussian fitted to the training codes (``mean + ppf * std``
        per dimension) and the other dimensions sit at their training mean.

        Parameters
        ----------
        estimator : fitted skae estimator, or a Pipeline ending in one
            With ``n_components_ >= 2`` and an image shape.
        n_per_side : int, default=15
            Tiles per side.
        quantile_range : tuple of float, default=(0.05, 0.95)
            Lowest and highest quantile, in (0, 1).
        image_shape : tuple of int, default=None
            Overrides ``estimator.image_shape_``.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : ManifoldDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        from scipy.stats import norm

        model = _skae_model(estimator, "ManifoldDisplay")
        n = _positive_int(n_per_side, "n_per_side")
        try:
            lo, hi = quantile_range
        except (TypeError, ValueError):  # not a pair
            lo = hi = None
        valid = all(isinstance(q, Real) and not isinstance(q, bool) for q in (lo, hi))
        valid = valid and 0 < lo < hi < 1
        if not valid:
            raise ValueError(
                f"quantile_range must be two numbers with 0 < low < high < 1, got "
                f"{quantile_range!r}.")
        n_components = model.n_components_
        if n_components < 2:
            raise ValueError(
                f"ManifoldDisplay needs a code of at least 2 dimensions; the estimator has "
                f"n_components_={n_components}.")
        n_features = estimator.n_features_in_
        shape = _resolve_image_shape(estimator, image_shape, n_features, infer=False)
        if shape is None:
            raise ValueError(
                "ManifoldDisplay needs an image shape: pass image_shape or fit the estimator "
                "with image_shape (or on square images).")
        ppf = norm.ppf(np.linspace(lo, hi, n))
        if hasattr(model, "log_likelihood"):  # variational: the prior is N(0, I)
            mean, std = np.zeros(n_components), np.ones(n_components)
        else:
            count, mean, scatter = model._code_statistics()
            var = np.diag(scatter) / (count - 1) if count > 1 else np.zeros(len(mean))
            mean, std = np.asarray(mean, dtype=float), np.sqrt(var)
        grid_x, grid_y = mean[0] + ppf * std[0], mean[1] + ppf * std[1]
        Z = np.tile(mean, (n * n, 1))
        rows, cols = np.divmod(np.arange(n * n), n)
        Z[:, 0] = grid_x[cols]
        Z[:, 1] = grid_y[n - 1 - rows]
        decoded = np.asarray(estimator.inverse_transform(Z))
        images = _to_images(decoded, shape)
        images = images.reshape((n, n) + images.shape[1:])
        return cls(images, grid_values=(grid_x, grid_y)).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the grid as one mosaic.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : ManifoldDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        images = np.asarray(self.images, dtype=float)
        if images.ndim not in (4, 5):
            raise ValueError(
                f"images must have shape (n_rows, n_cols, h, w[, 3]), got {images.shape}.")
        if images.size == 0:
            raise ValueError(f"images must hold at least one image, got shape {images.shape}.")
        n_rows, n_cols, h, w = images.shape[:4]
        grid_x, grid_y = _grid_values(self.grid_values, n_cols, n_rows)
        flat = images.reshape((n_rows * n_cols,) + images.shape[2:])
        if flat.ndim == 4:
            flat = _to_unit_range(flat)
        ax, fig = _get_ax(ax)
        mosaic = _mosaic(flat, n_rows, n_cols, fill=np.nan if flat.ndim == 3 else 1.0)
        self.im_ = _show_mosaic(ax, mosaic)
        picks_x = sorted({0, (n_cols - 1) // 2, n_cols - 1})
        picks_y = sorted({0, (n_rows - 1) // 2, n_rows - 1})
        ax.set_xticks([j * (w + 1) + (w - 1) / 2 for j in picks_x],
                      [f"{round(grid_x[j], 6) + 0.0:.2g}" for j in picks_x])
        ax.set_yticks([(n_rows - 1 - i) * (h + 1) + (h - 1) / 2 for i in picks_y],
                      [f"{round(grid_y[i], 6) + 0.0:.2g}" for i in picks_y])
        ax.set_xlabel("code dimension 1")
        ax.set_ylabel("code dimension 2")
        self.ax_, self.figure_ = ax, fig
        return self


# ---------------------------------------------------------------------- loss curve


class LossCurveDisplay:
    """Training loss per epoch, its terms, and the validation loss.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss per epoch (``loss_curve_``).
    loss_terms : dict of str to array-like, default=None
        Named loss terms per epoch (``loss_terms_``); drawn dashed when there are at
        least two.
    validation_scores : array-like, default=None
        Validation scores per epoch (``validation_scores_``); drawn negated, as a loss.
        They are :meth:`score` values on the clean validation data, in data units, so
        they need not match the training loss's scale (e.g. the denoising loss is on
        corrupted inputs, and penalties are not part of the score).
    validation_epochs : array-like of int, default=None
        The epoch (counted from 1) of each validation score; by default the first ones.
        :meth:`from_estimator` gives them: a warm start that turns early stopping on
        scores only its own epochs.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The Axes drawn on.
    figure_ : matplotlib Figure
        Its figure.
    lines_ : dict of str to matplotlib Line2D
        The drawn lines by label.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.plotting import LossCurveDisplay
    >>> X = np.random.RandomState(0).rand(20, 16)
    >>> ae = SparseAutoencoder(4, max_iter=2, random_state=0).fit(X)
    >>> disp = LossCurveDisplay.from_estimator(ae)
    >>> list(disp.lines_)[0]
    'training loss'
    """

    def __init__(self, loss_curve, *, loss_terms=None, validation_scores=None,
                 validation_epochs=None):
        self.loss_curve = loss_curve
        self.loss_terms = loss_terms
        self.validation_scores = validation_scores
        self.validation_epochs = validation_epochs

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot a fitted estimator's ``loss_curve_``, ``loss_terms_`` and validation scores.

        Parameters
        ----------
        estimator : fitted skae estimator, or a Pipeline ending in one
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : LossCurveDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        model = _skae_model(estimator, "LossCurveDisplay")
        epochs = model._state.validation_epochs
        return cls(model.loss_curve_, loss_terms=model.loss_terms_,
                   validation_scores=model.validation_scores_,
                   validation_epochs=list(epochs) if epochs else None).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : LossCurveDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        try:
            loss_curve = np.asarray(self.loss_curve, dtype=float)
        except (TypeError, ValueError):  # e.g. strings
            loss_curve = np.empty(())
        if loss_curve.ndim != 1:
            raise ValueError(f"loss_curve must be a sequence of losses, one per epoch, got "
                             f"{self.loss_curve!r}.")
        curves = {"training loss": (loss_curve, "-", None)}
        if self.loss_terms is not None and not isinstance(self.loss_terms, Mapping):
            raise TypeError(f"loss_terms must map each term's name to its losses, like "
                            f"loss_terms_, got {type(self.loss_terms).__name__}.")
        if self.loss_terms is not None and len(self.loss_terms) > 1:
            for name, values in self.loss_terms.items():
                curves[name] = (np.asarray(values, dtype=float), "--", None)
        if self.validation_scores is None and self.validation_epochs is not None:
            raise ValueError("validation_epochs needs validation_scores.")
        if self.validation_scores is not None:
            scores = -np.asarray(self.validation_scores, dtype=float)
            epochs = self.validation_epochs
            if epochs is not None and len(epochs) != len(scores):
                raise ValueError(f"validation_epochs has {len(epochs)} entries for "
                                 f"{len(scores)} validation_scores.")
            curves["validation loss (-score)"] = (scores, "-", epochs)
        ax, fig = _get_ax(ax)
        self.lines_ = {}
        for label, (values, style, epochs) in curves.items():
            epochs = np.arange(1, len(values) + 1) if epochs is None else np.asarray(epochs)
            (self.lines_[label],) = ax.plot(epochs, values, style, label=label)
        values = np.concatenate([v for v, _, _ in curves.values()])
        if len(values) and np.all(values > 0) and values.max() > 10 * values.min():
            ax.set_yscale("log")  # only when the curve spans more than a decade
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if len(curves) > 1:
            ax.legend()
        self.ax_, self.figure_ = ax, fig
        return self


# ---------------------------------------------------------------------- filters


class FilterDisplay:
    """The first layer's weights as images (each tile scaled to its own range).

    Parameters
    ----------
    filters : ndarray of shape (n_units, n_features), (n_filters, h, w) or
            (n_filters, in_channels, kh, kw)
        Dense weight rows (need ``image_shape``; 3 channels show in colour, others
        channel 0), ready tiles, or convolution kernels (input channel 0 is shown).
    image_shape : tuple of int, default=None
        Shape of a weight row for dense weights.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The Axes drawn on.
    figure_ : matplotlib Figure
        Its figure.
    im_ : matplotlib AxesImage
        The mosaic.
    tiles_ : ndarray of shape (n_filters, h, w[, 3])
        The drawn tiles, each scaled to [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skae import SparseAutoencoder
    >>> from skae.plotting import FilterDisplay
    >>> X = np.random.RandomState(0).rand(20, 16)
    >>> ae = SparseAutoencoder(6, max_iter=2, random_state=0).fit(X)
    >>> FilterDisplay.from_estimator(ae).tiles_.shape
    (6, 4, 4)
    """

    def __init__(self, filters, *, image_shape=None):
        self.filters = filters
        self.image_shape = image_shape

    @classmethod
    def from_estimator(cls, estimator, *, X=None, n_filters=64, image_shape=None, ax=None):
        """Plot the first ``nn.Linear`` or ``nn.Conv2d`` layer of ``estimator.encoder_``.

        Parameters
        ----------
        estimator : fitted skae estimator, or a Pipeline ending in one
        X : array-like of shape (n_samples, n_features), default=None
            The training data, for dense weights: the weights of features that are
            constant in ``X`` (such as MNIST's blank border) never receive a gradient and
            keep their random initial values; they are drawn as 0, so only learnt weights
            stand out.
        n_filters : int, default=64
            Most tiles to show (the first units / kernels).
        image_shape : tuple of int, default=None
            Shape of an input sample for dense weights; overrides
            ``estimator.image_shape_``.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : FilterDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        import torch

        model = _skae_model(estimator, "FilterDisplay")
        n_filters = _positive_int(n_filters, "n_filters")
        if X is not None and model is not estimator:  # what the model's first layer reads
            X = estimator[:-1].transform(X)
        layer = next((m for m in model.encoder_.modules()
                      if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))), None)
        if layer is None:
            raise ValueError("The encoder has no nn.Linear or nn.Conv2d layer.")
        weights = layer.weight.detach().cpu().numpy()[:n_filters]
        shape = None
        if isinstance(layer, torch.nn.Linear):
            shape = _resolve_image_shape(estimator, image_shape, weights.shape[1], infer=False)
            if shape is None:
                raise ValueError(
                    "FilterDisplay needs an image shape to draw dense weights: pass "
                    "image_shape or fit the estimator with image_shape (or on square images).")
            if X is not None:
                X = check_array(X, accept_sparse=False)
                if X.shape[1] != weights.shape[1]:
                    raise ValueError(f"X has {X.shape[1]} features, but the estimator's "
                                     f"first layer reads {weights.shape[1]}.")
                weights = np.where(np.ptp(X, axis=0) > 0, weights, 0.0)
        return cls(weights, image_shape=shape).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the filters as a near-square mosaic.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : FilterDisplay
            The display, drawn (``ax_`` and ``figure_`` set).
        """
        filters = np.asarray(self.filters, dtype=float)
        if filters.size == 0:
            raise ValueError(f"filters must hold at least one filter of at least one value, "
                             f"got shape {filters.shape}.")
        if filters.ndim == 2:
            if self.image_shape is None:
                raise ValueError("Dense weights (2-D filters) need image_shape to be drawn.")
            tiles = _to_images(filters, self.image_shape)
        elif filters.ndim == 3:
            tiles = filters
        elif filters.ndim == 4:
            tiles = filters[:, 0]
        else:
            raise ValueError(f"filters must be 2-, 3- or 4-D, got shape {filters.shape}.")
        axes = tuple(range(1, tiles.ndim))
        lo = tiles.min(axis=axes, keepdims=True)
        span = tiles.max(axis=axes, keepdims=True) - lo
        tiles = np.divide(tiles - lo, span, out=np.full_like(tiles, 0.5), where=span > 0)
        n = len(tiles)
        n_cols = math.ceil(math.sqrt(n))
        n_rows = math.ceil(n / n_cols)
        ax, fig = _get_ax(ax)
        self.tiles_ = tiles
        self.im_ = _show_mosaic(ax, _mosaic(tiles, n_rows, n_cols,
                                            fill=np.nan if tiles.ndim == 3 else 1.0))
        self.ax_, self.figure_ = ax, fig
        return self
