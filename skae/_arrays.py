"""Input validation for out-of-core arrays: np.memmap and duck-typed lazy arrays.

In-memory data goes through scikit-learn's ``validate_data`` as usual. A ``np.memmap`` or a
lazy array (dask, zarr, h5py) is wrapped in :class:`ChunkedArray`, which checks what
``check_array`` checks by reading the data once in chunks, so it is never loaded or
converted whole.
"""

from numbers import Integral

import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import validate_data

FLOAT_DTYPES = (np.float64, np.float32)
INFERENCE_BATCH = 4096  # rows per block of X for the code statistics, out-of-core reads
CHUNK_VALUES = 2**17  # values per chunk when scanning out-of-core X (1 MiB in float64)


def is_out_of_core(X):
    """Whether ``X`` is validated and read in row chunks rather than loaded whole.

    True for a ``np.memmap`` and for duck-typed lazy arrays: anything with ``shape``,
    ``__getitem__`` and a numpy ``dtype`` that is not an in-memory ndarray, a sparse matrix
    or a pandas object (dask, zarr and h5py arrays, for instance).
    """
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray) or hasattr(X, "toarray") or hasattr(X, "iloc"):
        return False
    return (isinstance(getattr(X, "dtype", None), np.dtype) and hasattr(X, "shape")
            and hasattr(X, "__getitem__"))


def validate(estimator, X, reset, training=False):
    """``validate_data`` for ``estimator``; chunk by chunk for out-of-core ``X``, which
    ``training`` must also be able to read by arrays of row numbers."""
    if not is_out_of_core(X):
        return validate_data(estimator, X, reset=reset, accept_sparse="csr", dtype=FLOAT_DTYPES)
    X = ChunkedArray(X, type(estimator).__name__)
    validate_data(estimator, X, reset=reset, skip_check_array=True)  # n_features_in_, names
    if training:  # before the pass over all of X
        X.check_row_indexing()
    return X.scan(moments=reset)


def row_blocks(X, rows=INFERENCE_BATCH):
    """Consecutive blocks of ``rows`` rows of validated ``X`` (views of an ndarray).

    Whatever is computed per block -- codes, their float64 copies -- is then never held for
    all of ``X`` at once.
    """
    return (X[start:start + rows] for start in range(0, X.shape[0], rows))


class ChunkedArray:
    """An out-of-core 2-D array (see ``is_out_of_core``), validated and read in row chunks.

    Construction checks the shape and dtype only. :meth:`scan` then reads ``X`` once, chunk
    by chunk (``CHUNK_VALUES`` values at a time), checks that every value is finite and
    records what fitting needs: the per-feature minimum and maximum and, with ``moments``,
    the per-feature mean and the summed squared deviations from it (merged pairwise, Chan et
    al.). Indexing reads rows of the source and returns them as an in-memory array in
    ``dtype`` -- float32 for float32 data, else float64, as ``check_array`` -- so a
    conversion never holds more than the rows asked for.
    """

    ndim = 2

    def __init__(self, X, estimator_name):
        shape = tuple(X.shape)
        if not all(isinstance(n, Integral) for n in shape):
            raise ValueError(f"X has an unknown shape {shape}; compute its chunk sizes first "
                             "(dask: X.compute_chunk_sizes()).")
        if len(shape) != 2:
            hint = (" Reshape your data either using array.reshape(-1, 1) if your data has a "
                    "single feature or array.reshape(1, -1) if it contains a single sample."
                    if len(shape) == 1 else "")
            raise ValueError(f"Expected 2D array, got {len(shape)}D {type(X).__name__} of shape "
                             f"{shape} instead.{hint}")
        for n, what in zip(shape, ("sample", "feature")):
            if n < 1:
                raise ValueError(f"Found array with 0 {what}(s) (shape={shape}) while a minimum "
                                 f"of 1 is required by {estimator_name}.")
        if np.dtype(X.dtype).kind not in "biuf":
            raise ValueError(f"X has dtype {X.dtype}, but an out-of-core X (a np.memmap or a "
                             "lazy array) must hold real numbers: floats, integers or booleans.")
        self.source, self.estimator_name = X, estimator_name
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        self.chunk_rows = max(1, CHUNK_VALUES // self.shape[1])
        self._mean = None

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        return np.asarray(self.source[rows], dtype=self.dtype)

    def check_row_indexing(self):
        """Refuse a source that training cannot read: it takes batches by row numbers."""
        rows = np.unique([0, self.shape[0] - 1])  # increasing, as h5py needs
        try:
            got = np.shape(self.source[rows])
        except Exception as exc:  # whatever the source raises
            got = f"{type(exc).__name__}: {exc}"
        if got != (len(rows), self.shape[1]):
            raise ValueError(
                f"Training reads an out-of-core X by arrays of row numbers, as np.memmap, "
                f"dask, zarr and h5py arrays allow; this {type(self.source).__name__} gave "
                f"{got} for X[{rows.tolist()}]. Load it into memory (np.asarray) first.")

    def scan(self, moments=True):
        """Read every chunk once: finite values, extremes and (``moments``) mean and spread."""
        n_features = self.shape[1]
        low, high = np.full(n_features, np.inf), np.full(n_features, -np.inf)
        count, mean, squared = 0, np.zeros(n_features), 0.0
        for start in range(0, self.shape[0], self.chunk_rows):
            rows = self[start:start + self.chunk_rows]
            assert_all_finite(rows, estimator_name=self.estimator_name, input_name="X")
            low, high = np.minimum(low, rows.min(axis=0)), np.maximum(high, rows.max(axis=0))
            if moments:
                chunk = rows.astype(np.float64)
                k, chunk_mean = len(chunk), chunk.mean(axis=0)
                chunk -= chunk_mean
                delta, total = chunk_mean - mean, count + k
                squared += float(np.vdot(chunk, chunk)) + float(delta @ delta) * count * k / total
                mean += delta * (k / total)
                count = total
        self._low, self._high = low, high
        if moments:
            self._mean, self.squared_deviations = mean, squared
        return self

    def min(self, axis=None):
        return self._low.copy() if axis == 0 else float(self._low.min())

    def max(self, axis=None):
        return self._high.copy() if axis == 0 else float(self._high.max())

    def mean(self, axis=0, dtype=np.float64):
        if axis != 0 or self._mean is None:
            raise ValueError("Only the per-feature mean of a scanned out-of-core X is known.")
        return self._mean.copy()
