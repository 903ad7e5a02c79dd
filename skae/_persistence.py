"""Save and load fitted estimators without pickle.

A file is one safetensors container: the arrays (weights, optimizer state, scaling and code
statistics) as tensors, and in its metadata the class name, the format version,
``get_params()`` and the other fitted attributes as tagged JSON, with a SHA-256 of the
arrays and of that metadata (so a flipped byte anywhere is caught, not only in the arrays).
Loading parses JSON and raw arrays only, looks the class up in an allow-list, accepts only
that class's parameter names and plain attribute names, and never executes anything from
the file.
"""

import hashlib
import json
import math
import os
import struct
from numbers import Integral
from pathlib import Path

import numpy as np
from safetensors.numpy import load as _load_tensors
from safetensors.numpy import save as _save_tensors

from . import _autoencoders
from ._nn import Architecture
from ._training import TrainingState

FORMAT = "skae"
FORMAT_VERSION = 1
_HEADER_LIMIT = 100_000_000
_SIGNED_KEYS = ("format", "format_version", "class", "params", "state")


def _allowed_classes():
    return {name: getattr(_autoencoders, name) for name in _autoencoders.__all__}


def save(estimator, path):
    """Save an skae estimator, fitted or not, to ``path`` without pickle.

    Parameters
    ----------
    estimator : skae estimator
        The estimator to save; the file holds its parameters, its fitted state and, once
        fitted, its optimizer state (so training can continue after :func:`load`).
    path : str or path-like
        Destination file (conventionally ``.skae``). A failed write leaves a file that
        was there before unchanged.

    Raises
    ------
    TypeError
        If ``estimator`` is not of one of skae's six classes (a subclass too: pickle it),
        or its ``random_state`` is not an int or None (a ``RandomState`` instance cannot
        be written without pickle).
    IsADirectoryError
        If ``path`` names a folder.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skae import Autoencoder, save, load
    >>> X = np.random.RandomState(0).rand(50, 6)
    >>> ae = Autoencoder(n_components=2, max_iter=3, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "ae.skae")
    >>> save(ae, path)
    >>> np.array_equal(load(path).transform(X), ae.transform(X))
    True
    """
    name = type(estimator).__name__
    if _allowed_classes().get(name) is not type(estimator):
        raise TypeError(f"save() takes one of skae's estimator classes, got "
                        f"{type(estimator).__qualname__} (a subclass or another class: use "
                        "pickle or joblib for it).")
    params = estimator.get_params(deep=False)
    if not isinstance(params["random_state"], (Integral, type(None))):
        raise TypeError(f"save() keeps random_state as an int or None, got "
                        f"{params['random_state']!r}; set an int seed to save the estimator.")
    state = {k: v for k, v in estimator.__getstate__().items() if k not in params}
    arrays = {}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "class": name,
        "params": json.dumps(_encode(params, arrays)),
        "state": json.dumps(_encode(state, arrays)),
    }
    metadata["sha256"] = _digest(arrays, metadata)
    path = _file_path(path)
    partial = path.with_name(f".{path.name}.part")
    try:  # a failed write never replaces a good file
        partial.write_bytes(_save_tensors(arrays, metadata=metadata))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _file_path(path):
    """``path`` as a Path, refused where it names a folder (``Path`` drops a final "/")."""
    text = os.fsdecode(os.fspath(path))
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise IsADirectoryError(f"save() writes a file, but {text!r} names a folder; give a "
                                f"file name in it, such as "
                                f"{os.path.join(text, 'model.skae')!r}.")
    path = Path(text)
    if not path.parent.is_dir():  # else the error would name the temporary file
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise FileNotFoundError(f"save() cannot write {text!r}: its folder "
                                f"{str(path.parent)!r} {what}.")
    return path


def load(path):
    """Load an estimator written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : skae estimator
        The estimator, with ``get_params()`` as saved and its networks on the CPU.

    Raises
    ------
    ValueError
        If the file is truncated, corrupted, from a newer format or not an skae file.
    IsADirectoryError
        If ``path`` is a folder.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"load() reads a file written by save(), but "
                                f"{os.fsdecode(os.fspath(path))!r} is a folder.")
    data = Path(path).read_bytes()
    metadata = _read_metadata(data, path)
    name = metadata.get("class")
    cls = _allowed_classes().get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{path} holds class {name!r}, which skae does not load; it loads "
                         f"only {sorted(_allowed_classes())}.")
    try:
        arrays = _load_tensors(data)
    except Exception as exc:  # safetensors raises its own error type
        raise ValueError(f"{path} is truncated or corrupted: {exc}") from exc
    if _digest(arrays, metadata) != metadata.get("sha256"):
        raise ValueError(f"{path} is corrupted: its contents do not match their SHA-256 "
                         "checksum.")
    try:
        params = _decode(json.loads(metadata["params"]), arrays)
        state = _decode(json.loads(metadata["state"]), arrays)
        _check_names(cls, params, state)
        estimator = cls(**params)
        estimator.__setstate__(state)
    except Exception as exc:  # whatever a bad file makes fail, the answer is a ValueError
        raise ValueError(f"{path} is corrupted: its estimator cannot be rebuilt "
                         f"({type(exc).__name__}: {exc}).") from exc
    return estimator


def _check_names(cls, params, state):
    """Only ``cls``'s parameters, and attributes that shadow none of its methods."""
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise TypeError("params and state must be mappings")
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise TypeError(f"unknown parameters {sorted(map(str, unknown))}")
    for name in state:
        if (not isinstance(name, str) or not name.isidentifier() or name.startswith("__")
                or name in params or callable(getattr(cls, name, None))):
            raise TypeError(f"attribute name {name!r} is not allowed")


def _read_metadata(data, path):
    """The metadata of a safetensors header, checked to be an skae file of a known version."""
    if len(data) < 8:
        raise ValueError(f"{path} is not an skae file (too short).")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(len(data) - 8, _HEADER_LIMIT):
        raise ValueError(f"{path} is not an skae file, or it is truncated.")
    try:
        metadata = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError) as exc:
        raise ValueError(f"{path} is not an skae file (unreadable header).") from exc
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} is not an skae file (unreadable header).")
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not an skae file.")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(f"{path} has format version {metadata.get('format_version')!r}; "
                         f"this version of skae reads format version {str(FORMAT_VERSION)!r} "
                         "only (a file from a newer skae needs that skae).")
    return metadata


def _digest(arrays, metadata):
    """SHA-256 of the signed metadata and of every array (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    signed = {key: metadata.get(key) for key in _SIGNED_KEYS}
    digest.update(json.dumps(signed, sort_keys=True).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _encode(obj, arrays):
    """JSON-able form of ``obj``; arrays go to ``arrays`` and are referred to by key."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return {"__strings__": [str(v) for v in obj]}
        key = f"a{len(arrays)}"
        # (np.ascontiguousarray would make a 0-d array, such as Adam's step count, 1-d)
        arrays[key] = obj if obj.flags.c_contiguous else np.ascontiguousarray(obj)
        return {"__array__": key}
    if isinstance(obj, Architecture):
        return {"__architecture__": _encode(obj.to_dict(), arrays)}
    if isinstance(obj, TrainingState):
        fields = dict(vars(obj))
        if fields["validation_epochs"] == list(range(1, len(obj.validation_scores) + 1)):
            del fields["validation_epochs"]  # the default: files older skae can read
        return {"__training_state__": _encode(fields, arrays)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save a value of type {type(obj).__name__}: {obj!r}")


def _decode(obj, arrays):
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    (tag, value), = obj.items()
    if tag == "__array__":
        return arrays[value]
    if tag == "__strings__":
        return np.asarray(value, dtype=object)
    if tag == "__tuple__":
        return tuple(_decode(v, arrays) for v in value)
    if tag == "__dict__":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value}
    if tag == "__float__":
        return float(value)
    if tag == "__architecture__":
        return Architecture.from_dict(_decode(value, arrays))
    if tag == "__training_state__":
        return TrainingState(**_decode(value, arrays))
    raise ValueError(f"unknown tag {tag!r}")
