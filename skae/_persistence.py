"""Save and load fitted estimators without pickle.

A file is one safetensors container: the arrays (weights, optimizer state, scaling and code
statistics) as tensors, and in its metadata the class name, the format version,
``get_params()`` and the other fitted attributes as tagged JSON, with a SHA-256 of the
arrays and of that metadata (so a flipped byte anywhere is caught, not only in the arrays).
Loading parses JSON and raw arrays only, looks the class up in an allow-list, accepts only
that class's parameter names and attribute names that are none of the class's, checks that
the fitted attributes fit together (the checksum catches accidents, not forgery), and never
executes anything from the file.
"""

import hashlib
import inspect
import json
import math
import os
import secrets
import stat
import struct
from numbers import Integral
from pathlib import Path

import numpy as np
from safetensors.numpy import load as _load_tensors
from safetensors.numpy import save as _save_tensors

from . import _autoencoders
from ._nn import Architecture
from ._training import SOLVERS, TrainingState, check_state_fits

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
    path : str, bytes or path-like
        Destination file (conventionally ``.skae``), written through a temporary file
        beside it: a failed write leaves a file that was there before unchanged, and saves
        racing for one path each leave a whole file. A symbolic link is followed, and a
        file replaced keeps its permissions.

    Raises
    ------
    TypeError
        If ``estimator`` is not of one of skae's six classes (a subclass too: pickle it),
        or its ``random_state`` is not an int or None (a ``RandomState`` instance cannot
        be written without pickle).
    ValueError
        If ``path`` is empty, or names something other than a regular file (a pipe, a
        device).
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
        "params": json.dumps(_encode(_without_new_defaults(type(estimator), params), arrays)),
        "state": json.dumps(_encode(state, arrays)),
    }
    metadata["sha256"] = _digest(arrays, metadata)
    _write_replacing(_file_path(path), _save_tensors(arrays, metadata=metadata))


def _write_replacing(path, data):
    """Write ``data`` to ``path`` through a temporary file of its own in the same folder,
    then rename it over ``path``: a failed write never replaces a good file, and writers
    racing for one path each leave a whole file (the last one's). A symbolic link is
    followed (its target is written), and a file replaced keeps its permissions, which
    the temporary file has from the start. An ``OSError`` about the temporary file names
    ``path`` instead (or its folder, where the file cannot be made).
    """
    target = Path(os.path.realpath(path))
    mode = None
    if target.exists():
        if not target.is_file():
            raise ValueError(f"save() writes a regular file, but {str(path)!r} is not one "
                             "(a device, a pipe or a socket).")
        mode = stat.S_IMODE(target.stat().st_mode)
    partial = None
    try:
        partial, handle = _new_temporary(target.parent, 0o666 if mode is None else mode)
        with handle:
            handle.write(data)
        if mode is not None:
            os.chmod(partial, mode)  # the exact bits, whatever the umask took off
        os.replace(partial, target)
    except OSError as exc:
        if partial is None or exc.filename not in (str(partial), partial):
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)


def _new_temporary(folder, mode):
    """A new file in ``folder`` with a short random name (the user's file name may be as
    long as the system allows), created with ``mode`` less the umask, as ``open`` does."""
    for _ in range(100):
        partial = folder / f".skae-{secrets.token_hex(8)}.part"
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        except OSError as exc:  # named after the folder: the temporary name means nothing
            raise type(exc)(exc.errno, exc.strerror, str(folder)) from exc
        return partial, os.fdopen(descriptor, "wb")
    raise FileExistsError(f"save() found no free temporary file name in {str(folder)!r}.")


def _file_path(path):
    """``path`` as a Path, refused where it names a folder (``Path`` drops a final "/")."""
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise ValueError("save() needs a file name, got an empty path.")
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
    path : str, bytes or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : skae estimator
        The estimator, with ``get_params()`` as saved and its networks on the CPU.

    Raises
    ------
    ValueError
        If the file is truncated, corrupted, from a newer format or not an skae file, or
        if its fitted attributes do not fit together (an edited file whose checksum was
        computed anew: the checksum catches accidents, not forgery).
    IsADirectoryError
        If ``path`` is a folder.
    """
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("load() needs a file name, got an empty path.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"load() reads a file written by save(), but {path!r} is a "
                                "folder.")
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
        _check_fitted_state(estimator)
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
    for name in state:  # nothing of the class (its methods, _parameter_constraints, ...)
        if (not isinstance(name, str) or not name.isidentifier() or name.startswith("__")
                or name in params or hasattr(cls, name)):
            raise TypeError(f"attribute name {name!r} is not allowed")


_REQUIRED_WHEN_FITTED = ("n_features_in_", "n_components_", "_architecture", "_x_mean",
                         "_x_scale", "loss_", "_seed", "_state", "image_shape_", "decoder_")


def _check_fitted_state(estimator):
    """Refuse fitted attributes that do not fit together (a file edited and checksummed
    anew): without this, such a file loads and fails at its first use, or, with optimizer
    state of other shapes than the weights, makes a fused kernel write out of bounds."""
    state = vars(estimator)
    if "encoder_" not in state:
        return
    missing = [name for name in _REQUIRED_WHEN_FITTED if name not in state]
    if missing:
        raise TypeError(f"a fitted estimator lacks {missing}")
    n_features, arch = state["n_features_in_"], state["_architecture"]
    _expect(_is_int(n_features) and n_features >= 1, "n_features_in_", n_features)
    _expect(isinstance(arch, Architecture) and arch.n_features == n_features
            and arch.code_size == state["n_components_"]
            and arch.code_width in (None, arch.code_size * estimator._code_width_factor),
            "_architecture", arch)
    mean, scale = state["_x_mean"], state["_x_scale"]
    _expect(_is_array(mean, (n_features,)) and np.isfinite(mean).all(), "_x_mean", mean)
    _expect(_is_real(scale) and 0 < scale < math.inf, "_x_scale", scale)
    _expect(state["loss_"] in ("bce", "mse"), "loss_", state["loss_"])
    _expect(_is_int(state["_seed"]), "_seed", state["_seed"])
    shape = state["image_shape_"]
    _expect(shape is None or isinstance(shape, tuple) and all(_is_int(v) and v >= 1 for v in shape)
            and math.prod(shape) == n_features, "image_shape_", shape)
    _check_training_state(state["_state"])
    _check_code_stats(state.get("_code_stats"), arch.code_size)
    _check_optimizer_state(estimator, state.get("_optimizer_state"))


# parameters added after the file format's first release: a file leaves each out at its
# default, so that the skae versions from before it can read it
_NEW_PARAMS = ("precision",)


def _without_new_defaults(cls, params):
    defaults = inspect.signature(cls).parameters
    return {name: value for name, value in params.items()
            if name not in _NEW_PARAMS or value != defaults[name].default}


def _check_training_state(training):
    _expect(isinstance(training, TrainingState) and _is_int(training.n_iter)
            and _is_int(training.no_improvement_count)
            and len(training.loss_curve) == training.n_iter
            and all(map(_is_real, training.loss_curve + training.validation_scores))
            and all(map(_is_int, training.validation_epochs))
            and all(isinstance(name, str) and len(values) == training.n_iter
                    and all(map(_is_real, values))
                    for name, values in training.loss_terms.items())
            and _is_real(training.best_loss) and _is_real(training.best_validation_score),
            "_state", training)


def _check_code_stats(stats, code_size):
    if stats is not None:
        _expect(isinstance(stats, tuple) and len(stats) == 3 and _is_real(stats[0])
                and _is_array(stats[1], (code_size,))
                and _is_array(stats[2], (code_size, code_size)), "_code_stats", stats)


def _check_optimizer_state(estimator, saved):
    """The saved optimizer state fits the networks (see ``check_state_fits``), checked
    without making an optimizer."""
    if saved is None:
        return
    _expect(isinstance(saved, tuple) and len(saved) == 2 and saved[0] in SOLVERS,
            "_optimizer_state", saved)
    parameters = [*estimator.encoder_.parameters(), *estimator.decoder_.parameters()]
    check_state_fits(saved[1], parameters, saved[0])


def _expect(condition, name, value):
    if not condition:
        raise TypeError(f"{name} is not what a fitted estimator holds: {value!r:.200}")


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (Integral, float)) and not isinstance(value, bool)


def _is_array(value, shape):
    return (isinstance(value, np.ndarray) and value.shape == shape
            and value.dtype.kind in "fiu")


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
        obj = obj.item()  # then tagged as a Python scalar, a non-finite float too
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
