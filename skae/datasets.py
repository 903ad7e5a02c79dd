"""Dataset loaders.

Currently provides :func:`load_mnist`, which reads the MNIST handwritten
digits from the four standard IDX ``.gz`` files, verifying their SHA-256
checksums, and downloads them from a list of mirrors when they are missing.
"""

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["get_data_home", "load_mnist"]

_ENV_VAR = "SKAE_DATA"
_DEFAULT_DATA_HOME = "~/skae_data"
_MNIST_DIR = "mnist"

# Mirrors are tried in order; each must serve the four files under this base URL.
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# subset -> (images file, labels file)
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# SHA-256 of the compressed (.gz) files.
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

_DOWNLOAD_TIMEOUT = 60  # seconds, per request
_CHUNK_SIZE = 1 << 16

_MNIST_DESCR = """\
MNIST handwritten digits
------------------------

Grayscale 28x28 images of handwritten digits 0-9: 60,000 training and
10,000 test samples (Y. LeCun, C. Cortes and C. J. C. Burges).

- ``data``: float32 array of shape (n_samples, 784), pixel intensities
  scaled to [0, 1] (raw value / 255), row-major over the 28x28 image.
- ``images``: the same values as a (n_samples, 28, 28) view of ``data``.
- ``target``: int64 array of shape (n_samples,) with the digit labels.
"""


def get_data_home(data_home=None):
    """Return the folder that holds skae's datasets.

    The folder is not created by this function.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to use. If None, the environment variable ``SKAE_DATA`` is
        used when set (and non-empty), else ``~/skae_data``. A leading ``~``
        is expanded.

    Returns
    -------
    data_home : pathlib.Path
        The data folder. Datasets live in sub-folders of it, e.g. MNIST in
        ``<data_home>/mnist/``.

    Examples
    --------
    >>> from skae.datasets import get_data_home
    >>> get_data_home("/tmp/my_data").as_posix()
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(_ENV_VAR) or _DEFAULT_DATA_HOME
    return Path(os.fspath(data_home)).expanduser()


def load_mnist(subset="train", *, data_home=None, download=True, return_X_y=False):
    """Load the MNIST handwritten digits dataset.

    The four standard IDX files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``) are read from ``<data_home>/mnist/``.
    Each file's SHA-256 checksum is verified before it is parsed. Missing
    files are downloaded when ``download=True``.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        Which split to load: the 60,000 training samples or the 10,000 test
        samples.

    data_home : str or path-like, default=None
        Folder that contains (or will contain) the ``mnist/`` sub-folder.
        If None, the environment variable ``SKAE_DATA`` is used when set,
        else ``~/skae_data``. See :func:`get_data_home`.

    download : bool, default=True
        If True, download the files of ``subset`` that are missing. If
        False, raise :class:`FileNotFoundError` when a file is missing.

    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype float32
            Pixel intensities scaled to [0, 1].
        target : ndarray of shape (n_samples,), dtype int64
            Digit labels, 0 to 9.
        images : ndarray of shape (n_samples, 28, 28), dtype float32
            The images; a reshaped view of ``data`` (not a copy).
        feature_names : list of str
            ``"pixel_<row>_<col>"`` for each of the 784 columns of ``data``.
        target_names : ndarray of shape (10,)
            The digits ``0`` to ``9``.
        DESCR : str
            Description of the dataset.

    (data, target) : tuple
        Returned instead when ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``subset`` is invalid, or a file is corrupted (checksum mismatch)
        or not a valid IDX file.
    TypeError
        If ``download`` or ``return_X_y`` is not a bool.
    FileNotFoundError
        If a file is missing and ``download`` is False.
    NotADirectoryError
        If ``data_home`` or its ``mnist/`` sub-folder is a file.
    OSError
        If a file is missing and could not be downloaded from any mirror.

    Examples
    --------
    >>> from skae.datasets import load_mnist
    >>> mnist = load_mnist("test")  # doctest: +SKIP
    >>> mnist.data.shape, mnist.target.shape  # doctest: +SKIP
    ((10000, 784), (10000,))
    >>> X, y = load_mnist("train", return_X_y=True)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (60000, 784)
    """
    if not isinstance(subset, str) or subset not in _MNIST_FILES:
        raise ValueError(
            f"subset must be one of {sorted(_MNIST_FILES)}, got {subset!r}."
        )
    for name, flag in (("download", download), ("return_X_y", return_X_y)):
        if not isinstance(flag, (bool, np.bool_)):  # "no" would count as True
            raise TypeError(f"{name} must be True or False, got {flag!r}.")
    folder = get_data_home(data_home) / _MNIST_DIR
    _check_folder(folder)
    images_file, labels_file = _MNIST_FILES[subset]
    images_path = _fetch_file(folder, images_file, download=download)
    labels_path = _fetch_file(folder, labels_file, download=download)

    images = _read_idx_gz(images_path, expected_magic=_IDX_IMAGES_MAGIC)
    labels = _read_idx_gz(labels_path, expected_magic=_IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path.name} holds {images.shape[0]} images but "
            f"{labels_path.name} holds {labels.shape[0]} labels."
        )

    n_samples, n_rows, n_cols = images.shape
    data = images.reshape(n_samples, n_rows * n_cols).astype(np.float32)
    data /= 255
    target = labels.astype(np.int64)
    if return_X_y:
        return data, target

    return Bunch(
        data=data,
        target=target,
        images=data.reshape(n_samples, n_rows, n_cols),
        feature_names=[
            f"pixel_{row}_{col}" for row in range(n_rows) for col in range(n_cols)
        ],
        target_names=np.arange(10),
        DESCR=_MNIST_DESCR,
    )


def _check_folder(folder):
    """Refuse a data folder, or a folder above it, that is a file."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise NotADirectoryError(
                    f"{str(path)!r} is a file, not a folder: data_home (or the "
                    f"{_ENV_VAR} environment variable) must name a folder, whose "
                    f"{_MNIST_DIR}/ sub-folder holds the MNIST files."
                )
            return


def _fetch_file(folder, filename, *, download):
    """Return the path of a verified MNIST file, downloading it if needed."""
    path = folder / filename
    if path.exists():
        _check_sha256(path, _MNIST_SHA256[filename])
        return path
    if not download:
        raise FileNotFoundError(
            f"MNIST file {filename!r} not found in {str(folder)!r} and "
            f"download=False. Pass download=True to fetch it, or set "
            f"data_home (or the {_ENV_VAR} environment variable) to a folder "
            f"containing mnist/{filename}."
        )
    _download(filename, path)
    return path


def _sha256(path):
    """Return the hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path, expected):
    """Raise ValueError if the file's SHA-256 differs from ``expected``."""
    actual = _sha256(path)
    if actual != expected:
        raise ValueError(
            f"MNIST file {str(path)!r} is corrupted: its SHA-256 checksum is "
            f"{actual}, expected {expected}. Delete it so that it is "
            f"downloaded again."
        )


def _download(filename, dest):
    """Download ``filename`` to ``dest`` from the first mirror that works.

    The file is written to a temporary file in ``dest``'s folder, its
    checksum is verified, and only then is it renamed to ``dest``, so that
    a failed or interrupted download leaves no partial file behind.
    """
    created = [path for path in (dest.parent, *dest.parent.parents) if not path.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    try:
        for mirror in _MNIST_MIRRORS:
            url = mirror + filename
            try:
                _download_verified(url, dest, _MNIST_SHA256[filename])
            except (OSError, http.client.HTTPException, ValueError) as exc:
                errors.append(f"  {url}: {exc}")
            else:
                return
    finally:
        if not dest.exists():  # a failed download leaves no folders it made behind
            for path in created:  # the deepest first
                try:
                    path.rmdir()
                except OSError:  # not empty: another process wrote to it meanwhile
                    break
    raise OSError(
        f"MNIST file {filename!r} is missing from {str(dest.parent)!r} and "
        f"could not be downloaded:\n" + "\n".join(errors) + "\n"
        f"Without network access, set data_home (or the {_ENV_VAR} "
        f"environment variable) to a folder that contains mnist/ with the "
        f"four MNIST files: {', '.join(_MNIST_SHA256)}."
    )


def _download_verified(url, dest, expected_sha256):
    """Fetch ``url`` into a temporary file, verify it, then rename to ``dest``."""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
    )
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
                for chunk in iter(lambda: response.read(_CHUNK_SIZE), b""):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != expected_sha256:
            raise ValueError(
                f"downloaded data has SHA-256 {digest.hexdigest()}, "
                f"expected {expected_sha256}"
            )
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_idx_gz(path, *, expected_magic):
    """Decompress and parse a gzipped IDX file; see :func:`_parse_idx`."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{path.name}: not a valid gzip file ({exc})."
        ) from exc
    return _parse_idx(raw, expected_magic=expected_magic, name=path.name)


def _parse_idx(raw, *, expected_magic, name="<idx>"):
    """Parse the bytes of an unsigned-byte IDX file into a uint8 array.

    The IDX format is a big-endian header -- a 4-byte magic number
    (``0x0000 08 <ndim>`` for unsigned bytes), then ``ndim`` 4-byte
    dimension sizes -- followed by the data in row-major order.

    Parameters
    ----------
    raw : bytes
        Uncompressed file contents.
    expected_magic : int
        2051 for image files (3 dimensions), 2049 for label files (1 dimension).
    name : str, default="<idx>"
        File name used in error messages.

    Returns
    -------
    array : ndarray of dtype uint8
        Read-only array of shape given by the header.
    """
    header_start = 4
    if len(raw) < header_start:
        raise ValueError(
            f"{name}: truncated IDX file ({len(raw)} bytes, too short for a header)."
        )
    magic = int.from_bytes(raw[:header_start], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{name}: invalid IDX magic number {magic}, expected {expected_magic}."
        )
    ndim = magic & 0xFF
    header_size = header_start + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{name}: truncated IDX file ({len(raw)} bytes, header needs "
            f"{header_size})."
        )
    shape = tuple(
        int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=header_start)
    )
    expected_size = header_size + math.prod(shape)  # exact: no int64 overflow
    if len(raw) != expected_size:
        problem = "truncated" if len(raw) < expected_size else "oversized"
        raise ValueError(
            f"{name}: {problem} IDX file: {len(raw)} bytes, expected "
            f"{expected_size} for shape {shape}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
