"""Persistence: pickle / joblib round trips, and skae.save / skae.load (safetensors, no pickle)."""

import builtins
import json
import os
import pickle
import stat
import struct

import joblib
import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors
from sklearn.decomposition import PCA

import skae
from skae import Autoencoder
from skae._persistence import _digest

# ---------------------------------------------------------------------------------- helpers


def _small_fitted(X, **params):
    params = {"n_components": 3, "max_iter": 2, "batch_size": 64, "random_state": 0, **params}
    return Autoencoder(**params).fit(X)


def _same_value(a, b):
    """Equal and of the same type, recursively (a tuple stays a tuple, a list a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _assert_same_params(a, b):
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for name in pa:
        assert _same_value(pa[name], pb[name]), (name, pa[name], pb[name])


def _assert_same_outputs(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    Z = a.transform(X)
    np.testing.assert_array_equal(a.inverse_transform(Z), b.inverse_transform(Z))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(7, random_state=0), b.sample(7, random_state=0))


def _split(data):
    """(header dict, metadata dict, arrays) of a safetensors file's bytes."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    return header, dict(header["__metadata__"]), load_tensors(data)


def _rewrite(src, dst, mutate):
    """Write ``dst``: ``src`` with its skae metadata mutated and a *valid* checksum."""
    _, metadata, arrays = _split(src.read_bytes())
    mutate(metadata)
    metadata["sha256"] = _digest(arrays, metadata)
    dst.write_bytes(save_tensors(arrays, metadata=metadata))
    return dst


def _mutate_json(key, function):
    def mutate(metadata):
        metadata[key] = json.dumps(function(json.loads(metadata[key])))
    return mutate


@pytest.fixture
def saved(tmp_path, unit_data):
    ae = _small_fitted(unit_data, hidden_layer_sizes=(5,))
    path = tmp_path / "model.skae"
    skae.save(ae, path)
    return ae, path


# ---------------------------------------------------------------------------------- pickle


def test_pickle_round_trip_is_bit_identical(unit_data):
    ae = _small_fitted(unit_data, hidden_layer_sizes=(8,))
    restored = pickle.loads(pickle.dumps(ae))
    assert restored is not ae and restored.encoder_ is not ae.encoder_
    _assert_same_outputs(ae, restored, unit_data)
    _assert_same_params(ae, restored)
    assert restored.loss_curve_ == ae.loss_curve_ and restored.n_iter_ == ae.n_iter_


def test_pickled_state_holds_numpy_weights_on_the_cpu(unit_data):
    ae = _small_fitted(unit_data)
    state = ae.__getstate__()
    for name in ("encoder_", "decoder_"):
        weights = state[name]
        assert set(weights) == set(getattr(ae, name).state_dict())
        assert weights and all(type(w) is np.ndarray for w in weights.values())
    solver, opt_state = state["_optimizer_state"]
    moments = [v for s in opt_state["state"].values() for v in s.values()]
    assert moments and all(type(v) is np.ndarray for v in moments)
    # __getstate__ converts copies: the estimator itself still holds torch modules
    assert isinstance(ae.encoder_, torch.nn.Module)
    assert b"torch" not in pickle.dumps(ae)  # nothing in the pickle needs torch to unpickle


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_joblib_mmap_load_copies_tensors_and_can_keep_training(tmp_path, tabular_data):
    ae = _small_fitted(tabular_data)  # mse: the scaling statistics are arrays too
    path = tmp_path / "model.joblib"
    joblib.dump(ae, path)
    loaded = joblib.load(path, mmap_mode="r")
    assert isinstance(loaded._code_stats[1], np.memmap)  # the memory map really was used
    assert not loaded._code_stats[1].flags.writeable
    _assert_same_outputs(ae, loaded, tabular_data)
    assert all(p.requires_grad for p in loaded.encoder_.parameters())
    before = loaded.transform(tabular_data)
    loaded.partial_fit(tabular_data)  # writes into the tensors: they must not be the maps
    ae.partial_fit(tabular_data)
    assert loaded.n_iter_ == 3
    assert not np.array_equal(loaded.transform(tabular_data), before)
    np.testing.assert_array_equal(loaded.transform(tabular_data), ae.transform(tabular_data))


def test_unfitted_estimator_pickles(unit_data):
    ae = Autoencoder(3, hidden_layer_sizes=[6], max_iter=2, random_state=4)
    restored = pickle.loads(pickle.dumps(ae))
    _assert_same_params(ae, restored)
    assert not hasattr(restored, "encoder_")
    np.testing.assert_array_equal(restored.fit(unit_data).transform(unit_data),
                                  ae.fit(unit_data).transform(unit_data))


# ---------------------------------------------------------------------------------- save/load


def test_save_load_round_trip_is_bit_identical(saved, unit_data):
    ae, path = saved
    loaded = skae.load(path)
    assert type(loaded) is Autoencoder and loaded.device_ == "cpu"
    _assert_same_outputs(ae, loaded, unit_data)
    assert skae.load(str(path)).transform(unit_data[:3]).tobytes() == \
        ae.transform(unit_data[:3]).tobytes()  # a str path works too


PARAMS = [
    dict(n_components=3, hidden_layer_sizes=(16, 8), image_shape=None, learning_rate_init=0.0123,
         tol=0.0, shuffle=False, random_state=7, code_activation="identity", max_iter=2),
    dict(n_components=2, hidden_layer_sizes=[16, 8], random_state=None, loss="mse",
         solver="sgd", batch_size=17, early_stopping=True, validation_fraction=0.25,
         warm_start=True, n_iter_no_change=3, activation="tanh", max_iter=2),
    dict(n_components=None, conv_filters=(2,), kernel_size=1, image_shape=(3, 4),
         hidden_layer_sizes=4, random_state=3, max_iter=1),
    dict(n_components=2, image_shape=[4, 3, 1], verbose=0, device="cpu", max_iter=1,
         learning_rate_init=1e-3 / 3, tol=1e-300),
]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("fitted", [False, True])
def test_save_load_restores_params_exactly(tmp_path, unit_data, params, fitted):
    ae = Autoencoder(**params)
    if fitted:
        ae.fit(unit_data)
    skae.save(ae, tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    _assert_same_params(ae, loaded)
    assert repr(loaded) == repr(ae)
    assert hasattr(loaded, "encoder_") == fitted
    if fitted:
        _assert_same_outputs(ae, loaded, unit_data)


def test_save_load_restores_fitted_attributes(tmp_path, unit_data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(unit_data, columns=[f"pixel {i}" for i in range(12)])
    ae = Autoencoder(3, image_shape=(3, 4), early_stopping=True, max_iter=3,
                     random_state=0).fit(df)
    skae.save(ae, tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    assert loaded.n_features_in_ == 12 and type(loaded.n_features_in_) is int
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.feature_names_in_, ae.feature_names_in_)
    assert loaded.loss_ == ae.loss_ == "bce"
    assert loaded.n_components_ == ae.n_components_ == 3
    assert loaded.image_shape_ == ae.image_shape_ == (3, 4, 1)
    assert type(loaded.image_shape_) is tuple
    assert loaded.loss_curve_ == ae.loss_curve_ and len(ae.loss_curve_) == 3
    assert loaded.loss_terms_ == ae.loss_terms_
    assert loaded.n_iter_ == ae.n_iter_ == 3
    assert loaded.validation_scores_ == ae.validation_scores_
    assert loaded.best_validation_score_ == ae.best_validation_score_
    assert loaded.best_loss_ is None
    np.testing.assert_array_equal(loaded.transform(df), ae.transform(df))
    assert list(loaded.get_feature_names_out()) == list(ae.get_feature_names_out())
    # the names are live: an unnamed array warns, a renamed frame is refused
    with pytest.warns(UserWarning, match="feature names"):
        loaded.transform(unit_data)
    with pytest.raises(ValueError, match="feature names"):
        loaded.transform(df.rename(columns={"pixel 0": "other"}))


def test_save_load_mse_model_restores_the_scaling(tmp_path, tabular_data):
    ae = _small_fitted(tabular_data)
    assert ae.loss_ == "mse" and ae._x_scale != 1.0
    skae.save(ae, tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    assert loaded._x_scale == ae._x_scale
    np.testing.assert_array_equal(loaded._x_mean, ae._x_mean)
    _assert_same_outputs(ae, loaded, tabular_data)


def test_save_keeps_the_optimizer_state_so_warm_start_continues_exactly(tmp_path, unit_data):
    """2 epochs, save, load, 2 more == 2 + 2 in memory (== 4 in one run)."""
    make = lambda: Autoencoder(3, max_iter=2, warm_start=True, random_state=0,  # noqa: E731
                               batch_size=50)
    in_memory = make().fit(unit_data).fit(unit_data)
    skae.save(make().fit(unit_data), tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    steps = [param_state["step"] for param_state in loaded._optimizer_state[1]["state"].values()]
    assert steps and all(step.shape == () for step in steps)  # 0-d, as torch keeps them
    resumed = loaded.set_params(warm_start=True).fit(unit_data)
    assert resumed.n_iter_ == in_memory.n_iter_ == 4
    assert resumed.loss_curve_ == in_memory.loss_curve_
    np.testing.assert_array_equal(resumed.transform(unit_data), in_memory.transform(unit_data))
    # the check has teeth: without Adam's moments the continued run differs
    fresh_optimizer = skae.load(tmp_path / "m.skae")
    fresh_optimizer._optimizer_state = None
    fresh_optimizer.fit(unit_data)
    assert not np.array_equal(fresh_optimizer.transform(unit_data), in_memory.transform(unit_data))


VARIANTS = {
    "ConvAutoencoder": lambda **kw: skae.ConvAutoencoder(conv_filters=(2,), image_shape=(3, 4),
                                                         **kw),
    "DenoisingAutoencoder": lambda **kw: skae.DenoisingAutoencoder(3, noise="masking", **kw),
    "SparseAutoencoder": lambda **kw: skae.SparseAutoencoder(6, **kw),
    "ContractiveAutoencoder": lambda **kw: skae.ContractiveAutoencoder(3, **kw),
    "VariationalAutoencoder": lambda **kw: skae.VariationalAutoencoder(2, hidden_layer_sizes=(6,),
                                                                       **kw),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_saves_loads_and_continues_training_exactly(tmp_path, unit_data, name):
    make = lambda: VARIANTS[name](max_iter=1, warm_start=True, batch_size=50,  # noqa: E731
                                  random_state=0)
    in_memory = make().fit(unit_data).fit(unit_data)
    skae.save(make().fit(unit_data), tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    assert type(loaded).__name__ == name
    _assert_same_params(make(), loaded)
    resumed = loaded.fit(unit_data)
    assert resumed.loss_terms_ == in_memory.loss_terms_ and resumed.n_iter_ == 2
    _assert_same_outputs(in_memory, resumed, unit_data)


def test_a_float32_parameter_saves_loads_and_continues_training(tmp_path, unit_data):
    # save writes numpy scalars as Python floats: the network check must take them as equal
    make = lambda: skae.SparseAutoencoder(  # noqa: E731
        6, sparsity_target=np.float32(0.05), max_iter=1, warm_start=True, batch_size=50,
        random_state=0)
    in_memory = make().fit(unit_data).fit(unit_data)
    skae.save(make().fit(unit_data), tmp_path / "m.skae")
    resumed = skae.load(tmp_path / "m.skae").fit(unit_data)
    assert resumed.n_iter_ == 2
    np.testing.assert_allclose(resumed.loss_curve_, in_memory.loss_curve_, rtol=1e-6)


def test_a_training_state_pickled_before_validation_epochs_existed_loads():
    from skae._training import TrainingState

    old = TrainingState(n_iter=3, loss_curve=[3.0, 2.0, 1.0], validation_scores=[-2.0, -1.0])
    del old.validation_epochs  # as skae pickled it before the field
    assert pickle.loads(pickle.dumps(old)).validation_epochs == [1, 2]


def test_a_file_leaves_out_validation_epochs_where_older_skae_would_assume_them(tmp_path,
                                                                               unit_data):
    # older skae builds TrainingState from the file and refuses a field it lacks
    ae = Autoencoder(3, max_iter=2, early_stopping=True, warm_start=True,
                     random_state=0).fit(unit_data)
    skae.save(ae, tmp_path / "m.skae")
    assert "validation_epochs" not in _split((tmp_path / "m.skae").read_bytes())[1]["state"]
    assert skae.load(tmp_path / "m.skae")._state.validation_epochs == [1, 2]
    ae.set_params(early_stopping=False).fit(unit_data)  # scores no longer at epochs 1 to 4
    ae.set_params(early_stopping=True).fit(unit_data)
    skae.save(ae, tmp_path / "m.skae")
    assert skae.load(tmp_path / "m.skae")._state.validation_epochs == [1, 2, 5, 6]


@pytest.mark.parametrize("solver", ["adamw", "sgd", "rmsprop", "adadelta"])
def test_every_solvers_state_survives_save_and_load(tmp_path, unit_data, solver):
    ae = Autoencoder(3, solver=solver, max_iter=1, warm_start=True, batch_size=50,
                     random_state=0).fit(unit_data)
    skae.save(ae, tmp_path / "m.skae")
    resumed = skae.load(tmp_path / "m.skae").fit(unit_data)
    np.testing.assert_array_equal(resumed.transform(unit_data),
                                  ae.fit(unit_data).transform(unit_data))


def test_set_output_survives_save_and_load(tmp_path, unit_data):
    pd = pytest.importorskip("pandas")
    ae = _small_fitted(unit_data).set_output(transform="pandas")
    skae.save(ae, tmp_path / "m.skae")
    out = skae.load(tmp_path / "m.skae").transform(unit_data)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(ae.get_feature_names_out())


def test_partial_fit_after_load_equals_partial_fit_in_memory(saved, unit_data):
    ae, path = saved
    loaded = skae.load(path)
    np.testing.assert_array_equal(loaded.partial_fit(unit_data).transform(unit_data),
                                  ae.partial_fit(unit_data).transform(unit_data))


def test_save_refuses_what_is_not_an_skae_estimator(tmp_path, unit_data):
    class MyAutoencoder(Autoencoder):
        pass

    from skae._base import BaseAutoencoder

    for obj in (PCA(2), MyAutoencoder(), BaseAutoencoder(), "model", {"encoder_": 1}):
        with pytest.raises(TypeError, match="one of skae's estimator classes.*pickle"):
            skae.save(obj, tmp_path / "x.skae")
    assert not (tmp_path / "x.skae").exists()


def test_save_refuses_unsavable_parameters_without_writing(tmp_path):
    ae = Autoencoder(random_state=np.random.RandomState(0))
    with pytest.raises(TypeError, match="random_state as an int or None, got RandomState"):
        skae.save(ae, tmp_path / "x.skae")
    assert not (tmp_path / "x.skae").exists()
    skae.save(ae.set_params(random_state=np.int64(3)), tmp_path / "x.skae")  # a numpy int
    assert skae.load(tmp_path / "x.skae").random_state == 3


@pytest.mark.parametrize("name", ["new_folder/", "existing"])
def test_save_refuses_a_folder_for_the_file(tmp_path, name):
    (tmp_path / "existing").mkdir()
    path = f"{tmp_path}/{name}"
    with pytest.raises(IsADirectoryError, match=r"names a folder; give a file name in it"):
        skae.save(Autoencoder(), path)
    assert not (tmp_path / "new_folder").exists()
    assert list((tmp_path / "existing").iterdir()) == []


def test_load_of_a_folder_says_it_is_one(tmp_path):
    with pytest.raises(IsADirectoryError, match="load.. reads a file written by save.*folder"):
        skae.load(tmp_path)


def test_save_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"its folder '.*missing' does not exist"):
        skae.save(Autoencoder(), tmp_path / "missing" / "ae.skae")
    (tmp_path / "file").write_text("")
    with pytest.raises(FileNotFoundError, match=r"its folder '.*file' is not a folder"):
        skae.save(Autoencoder(), tmp_path / "file" / "ae.skae")


def test_a_failed_save_leaves_the_file_it_would_replace(tmp_path, unit_data, monkeypatch):
    from skae import _persistence

    ae = _small_fitted(unit_data)
    skae.save(ae, tmp_path / "m.skae")
    good = (tmp_path / "m.skae").read_bytes()

    new_temporary = _persistence._new_temporary

    class HalfWritten:  # dies half-way, as on a full disk
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:10])
            raise OSError(28, "No space left on device")

    def failing(folder, mode):
        partial, handle = new_temporary(folder, mode)
        return partial, HalfWritten(handle)

    monkeypatch.setattr(_persistence, "_new_temporary", failing)
    with pytest.raises(OSError, match="No space"):
        skae.save(ae, tmp_path / "m.skae")
    monkeypatch.undo()
    assert (tmp_path / "m.skae").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skae"]  # no partial file left


def test_saves_racing_for_one_path_each_leave_a_whole_file(tmp_path, unit_data):
    from concurrent.futures import ThreadPoolExecutor

    models = [_small_fitted(unit_data, random_state=seed) for seed in (0, 1)]
    path = tmp_path / "m.skae"
    with ThreadPoolExecutor(4) as pool:  # each save has a temporary file of its own
        list(pool.map(lambda i: skae.save(models[i % 2], path), range(40)))
    codes = skae.load(path).transform(unit_data)
    assert any(np.array_equal(codes, m.transform(unit_data)) for m in models)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skae"]


def test_save_writes_through_a_link_and_keeps_a_replaced_files_permissions(tmp_path,
                                                                          unit_data,
                                                                          monkeypatch):
    from skae import _persistence

    ae = _small_fitted(unit_data)
    (tmp_path / "link.skae").symlink_to(tmp_path / "target.skae")
    skae.save(ae, tmp_path / "link.skae")
    assert (tmp_path / "link.skae").is_symlink()
    np.testing.assert_array_equal(skae.load(tmp_path / "target.skae").transform(unit_data),
                                  ae.transform(unit_data))
    os.chmod(tmp_path / "target.skae", 0o600)
    new_temporary, modes = _persistence._new_temporary, []

    def recording(folder, mode):  # a private file is never readable by others, even briefly
        partial, handle = new_temporary(folder, mode)
        modes.append(stat.S_IMODE(os.stat(partial).st_mode))
        return partial, handle

    monkeypatch.setattr(_persistence, "_new_temporary", recording)
    skae.save(ae, tmp_path / "link.skae")
    assert modes == [0o600]
    assert stat.S_IMODE(os.stat(tmp_path / "target.skae").st_mode) == 0o600


def test_save_refuses_a_path_that_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="regular file.*'.*pipe' is not one"):
        skae.save(Autoencoder(), tmp_path / "pipe")
    assert (tmp_path / "pipe").is_fifo()


def test_save_takes_the_longest_file_name_the_system_allows(tmp_path, unit_data):
    ae = _small_fitted(unit_data)
    path = tmp_path / ("n" * 250 + ".skae")  # 255 bytes: a temporary name beside it is short
    skae.save(ae, path)
    np.testing.assert_array_equal(skae.load(path).transform(unit_data), ae.transform(unit_data))


def test_empty_and_bytes_paths(tmp_path, unit_data):
    for function in (lambda p: skae.save(Autoencoder(), p), skae.load):
        with pytest.raises(ValueError, match="needs a file name, got an empty path"):
            function("")
    ae = _small_fitted(unit_data)
    skae.save(ae, os.fsencode(tmp_path / "b.skae"))
    np.testing.assert_array_equal(skae.load(os.fsencode(tmp_path / "b.skae")).transform(
        unit_data), ae.transform(unit_data))


def test_a_non_finite_numpy_scalar_parameter_is_saved_as_standard_json(tmp_path):
    path = tmp_path / "m.skae"
    skae.save(Autoencoder(alpha=np.float64(np.inf), tol=np.float32(np.nan)), path)
    _, metadata, _ = _split(path.read_bytes())

    def refuse(constant):
        raise AssertionError(f"{constant} in the metadata")

    json.loads(metadata["params"], parse_constant=refuse)
    loaded = skae.load(path)
    assert loaded.alpha == np.inf and np.isnan(loaded.tol)


# ---------------------------------------------------------------------------------- refusals


def _cut_points(data):
    (size,) = struct.unpack("<Q", data[:8])
    return {"empty": 0, "in the length": 3, "after the length": 8,
            "in the header": 8 + size // 2, "8 bytes before the header's end": size,
            "end of header": 8 + size,
            "in the data": 8 + size + 5, "last byte": len(data) - 1}


def test_truncated_files_are_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for where, cut in _cut_points(data).items():
        bad = tmp_path / "cut.skae"
        bad.write_bytes(data[:cut])
        # (not just "truncated": tmp_path, named after this test, holds that word)
        with pytest.raises(ValueError, match="too short|or it is truncated|truncated or corrupted"):
            skae.load(bad)


def test_a_flipped_byte_in_the_tensor_data_is_refused(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack("<Q", data[:8])
    for position in (8 + size, 8 + size + 101, len(data) - 1):
        bad = bytearray(data)
        bad[position] ^= 0x01
        (tmp_path / "bad.skae").write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="corrupted.*SHA-256"):
            skae.load(tmp_path / "bad.skae")


@pytest.mark.parametrize("needle, replacement, message", [
    # still valid JSON, still an skae file: only the checksum over the metadata can tell
    (b'[\\"max_iter\\", 2]', b'[\\"max_iter\\", 3]', "corrupted.*SHA-256"),
    (b'[\\"activation\\", \\"relu\\"]', b'[\\"activation\\", \\"tanh\\"]', "corrupted.*SHA-256"),
    (b'[\\"n_iter\\", 2]', b'[\\"n_iter\\", 9]', "corrupted.*SHA-256"),
    (b'"format_version":"1"', b'"format_version":"2"', "format version '2'"),
    (b'"format":"skae"', b'"format":"skaf"', "not an skae file"),
    (b'"F32"', b'"F16"', "truncated or corrupted"),
    # no longer JSON
    (b'"__metadata__":{', b'"__metadata__":[', "unreadable header"),
])
def test_a_flipped_byte_in_the_header_is_refused(saved, tmp_path, needle, replacement, message):
    _, path = saved
    data = path.read_bytes()
    assert data.count(needle) >= 1 and len(needle) == len(replacement)
    (tmp_path / "bad.skae").write_bytes(data.replace(needle, replacement, 1))
    with pytest.raises(ValueError, match=message):
        skae.load(tmp_path / "bad.skae")


def test_every_single_byte_flip_is_refused(tmp_path):
    """Exhaustive over a tiny model's file: no one-byte corruption loads silently."""
    X = np.random.RandomState(0).rand(20, 3)
    path = tmp_path / "tiny.skae"
    skae.save(Autoencoder(1, max_iter=1, random_state=0).fit(X), path)
    data = path.read_bytes()
    bad_path = tmp_path / "bad.skae"
    loaded = []
    for position in range(len(data)):
        bad = bytearray(data)
        bad[position] ^= 0x01
        bad_path.write_bytes(bytes(bad))
        try:
            skae.load(bad_path)
        except ValueError:
            continue
        loaded.append(position)
    assert loaded == []


def test_foreign_files_are_refused(tmp_path, unit_data):
    ae = _small_fitted(unit_data)
    np.save(tmp_path / "array.npy", unit_data)
    torch.save(ae.encoder_.state_dict(), tmp_path / "weights.pt")
    foreign = {
        "random.skae": np.random.RandomState(0).bytes(1000),
        "empty.skae": b"",
        "json.skae": json.dumps({"format": "skae", "class": "Autoencoder"}).encode(),
        "pickle.skae": pickle.dumps(ae),
        "joblib.skae": None,
        "numpy.skae": (tmp_path / "array.npy").read_bytes(),
        "torch.skae": (tmp_path / "weights.pt").read_bytes(),
        "plain_safetensors.skae": save_tensors({"w": unit_data}),
        "other_safetensors.skae": save_tensors({"w": unit_data}, metadata={"format": "pt"}),
    }
    joblib.dump(ae, tmp_path / "joblib.skae")
    for name, content in foreign.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not an skae file"):
            skae.load(tmp_path / name)


@pytest.mark.parametrize("cls", ["os.system", "BaseAutoencoder", "skae._base.BaseAutoencoder",
                                 "skae.Autoencoder", "PCA", "autoencoder", "", "__builtins__",
                                 None])
def test_classes_outside_the_allow_list_are_refused(saved, tmp_path, cls):
    _, path = saved

    def mutate(metadata):
        if cls is None:
            del metadata["class"]
        else:
            metadata["class"] = cls

    bad = _rewrite(path, tmp_path / "bad.skae", mutate)
    with pytest.raises(ValueError, match="does not load"):
        skae.load(bad)


def _raw_file(header, data=b""):
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize("header, message", [
    ({"__metadata__": "skae"}, "not an skae file"),
    ([{"__metadata__": {"format": "skae"}}], "not an skae file"),
    (b"[" * 100_000, "not an skae file"),
    (b"\xff\xfe{}", "not an skae file"),
    ({"__metadata__": {"format": "skae", "format_version": 1}}, "format version 1"),
    ({"__metadata__": {"format": "skae", "format_version": "1", "class": ["Autoencoder"]}},
     "does not load"),
    ({"__metadata__": {"format": "skae", "format_version": "1", "class": "Autoencoder"},
      "w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, "truncated"),
])
def test_malformed_headers_are_refused(tmp_path, header, message):
    (tmp_path / "bad.skae").write_bytes(_raw_file(header))
    with pytest.raises(ValueError, match=message):
        skae.load(tmp_path / "bad.skae")


def _unsigned(src, dst, mutate):
    """Write ``dst``: ``src`` with its safetensors header mutated and the old checksum kept."""
    data = src.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    mutate(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header to 8 bytes
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size :])
    return dst


def _reshape_a_matrix(header):
    name = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 2
                and v["shape"][0] != v["shape"][1])
    header[name]["shape"] = header[name]["shape"][::-1]  # the same bytes, another shape


@pytest.mark.parametrize("mutate", [
    lambda header: header["__metadata__"].update({"class": "ConvAutoencoder"}),
    _reshape_a_matrix,
], ids=["class", "array shape"])
def test_the_checksum_covers_the_class_and_the_array_shapes(saved, tmp_path, mutate):
    _, path = saved
    skae.load(_unsigned(path, tmp_path / "same.skae", lambda header: None))  # control: loads
    with pytest.raises(ValueError, match="corrupted.*SHA-256"):
        skae.load(_unsigned(path, tmp_path / "bad.skae", mutate))


def test_the_metadata_is_standard_json(saved):
    # JSON has no Infinity or NaN (Python's json writes them; other readers refuse them):
    # the non-finite floats of the training state are tagged, and come back as they were
    ae, path = saved
    _, metadata, _ = _split(path.read_bytes())

    def refuse(constant):
        raise AssertionError(f"{constant} in the metadata")

    for key in ("params", "state"):
        json.loads(metadata[key], parse_constant=refuse)
    assert ae._state.best_validation_score == -np.inf
    assert skae.load(path)._state.best_validation_score == -np.inf


def test_the_rewrite_helper_itself_produces_loadable_files(saved, tmp_path, unit_data):
    """Control for the crafted-file tests: an unchanged rewrite loads fine."""
    ae, path = saved
    good = _rewrite(path, tmp_path / "good.skae", lambda metadata: None)
    np.testing.assert_array_equal(skae.load(good).transform(unit_data), ae.transform(unit_data))


def test_newer_format_version_is_refused(saved, tmp_path):
    _, path = saved
    bad = _rewrite(path, tmp_path / "new.skae",
                   lambda metadata: metadata.update(format_version="2"))
    with pytest.raises(ValueError, match="format version '2'.*newer"):
        skae.load(bad)


def _add_param(params):
    params["__dict__"].append(["evil", 1])
    return params


def _add_state(name):
    def add(state):
        state["__dict__"].append([name, "x"])
        return state
    return add


def _set_state(name, value):
    def set_value(state):
        return {"__dict__": [[k, value if k == name else v] for k, v in state["__dict__"]]}
    return set_value


@pytest.mark.parametrize("key, function", [
    ("params", _add_param),                              # not a parameter of the class
    ("state", _add_state("fit")),                        # would shadow a method
    ("state", _add_state("__class__")),
    ("state", _add_state("__doc__")),                    # a dunder, though not a method
    ("state", _add_state("n_components")),               # a parameter, not fitted state
    ("state", lambda state: {"__unknown_tag__": state}),
    ("state", _add_state("_parameter_constraints")),     # a class attribute, not a method
    ("state", _set_state("loss_", "weird")),
    ("state", _set_state("_seed", "abc")),
    ("state", _set_state("_x_scale", -1.0)),
    ("state", _set_state("n_features_in_", 10)),         # not the architecture's
    ("state", _set_state("_x_mean", {"__strings__": ["a", "b"]})),
    ("params", lambda params: [1, 2]),
    ("state", lambda state: {"__dict__": [[k, {"__array__": "missing"}] if k == "encoder_"
                                          else [k, v] for k, v in state["__dict__"]]}),
    ("state", lambda state: {"__dict__": [[k, {"__dict__": []}] if k == "encoder_"
                                          else [k, v] for k, v in state["__dict__"]]}),
])
def test_crafted_but_checksummed_metadata_is_refused(saved, tmp_path, key, function):
    _, path = saved
    bad = _rewrite(path, tmp_path / "bad.skae", _mutate_json(key, function))
    with pytest.raises(ValueError, match="corrupted"):
        skae.load(bad)


def test_optimizer_state_of_other_shapes_than_the_weights_is_refused(saved, tmp_path,
                                                                     unit_data):
    # torch checks only the number of parameters: a fused Adam step would write out of bounds
    _, path = saved
    _, metadata, arrays = _split(path.read_bytes())
    state = dict(json.loads(metadata["state"])["__dict__"])
    optimizer = dict(state["_optimizer_state"]["__tuple__"][1]["__dict__"])
    first = dict(dict(optimizer["state"]["__dict__"])[0]["__dict__"])
    arrays[first["exp_avg"]["__array__"]] = np.zeros(1, np.float32)
    metadata["sha256"] = _digest(arrays, metadata)
    bad = tmp_path / "bad.skae"
    bad.write_bytes(save_tensors(arrays, metadata=metadata))
    with pytest.raises(ValueError, match="corrupted.*'exp_avg' of parameter 0 has shape"):
        skae.load(bad)
    ae = _small_fitted(unit_data)  # the same check guards a state set in memory
    ae._optimizer_state[1]["state"][0]["exp_avg"] = torch.zeros(1)
    with pytest.raises(ValueError, match="does not fit the network"):
        ae.partial_fit(unit_data)


# ---------------------------------------------------------------------------------- no code


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_a_malicious_pickle_never_runs_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker))
    pickle.loads(payload).close()  # control: the payload is live
    assert marker.exists()
    marker.unlink()
    for name, content in {"evil.skae": payload,
                          "evil_in_model.skae": pickle.dumps({"model": _Exploit(marker)})}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError):
            skae.load(tmp_path / name)
        assert not marker.exists()


def test_load_never_calls_an_unpickler_or_eval(saved, unit_data, monkeypatch):
    ae, path = saved
    skae.load(path)  # warm up lazy imports before exec is forbidden

    def forbidden(*args, **kwargs):
        raise AssertionError("skae.load must not unpickle or evaluate code")

    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"),
                         (torch, "load"), (np, "load"), (joblib, "load"),
                         (builtins, "eval"), (builtins, "exec")]:
        monkeypatch.setattr(module, name, forbidden)
    with pytest.raises(AssertionError):  # control: the trap is armed
        pickle.loads(pickle.dumps(1))
    loaded = skae.load(path)
    np.testing.assert_array_equal(loaded.transform(unit_data), ae.transform(unit_data))


def test_architecture_without_code_scale_reads_as_factor_one():
    # files written before the KL-sparse decoder's factor existed have no code_scale key,
    # and files of models without the factor still omit it (older skae can read them)
    from skae._nn import Architecture

    plain = Architecture(n_features=4, code_width=2, code_size=2)
    assert "code_scale" not in plain.to_dict()
    assert Architecture.from_dict(plain.to_dict()).code_scale == 1.0
    scaled = Architecture(n_features=4, code_width=2, code_size=2, code_scale=20.0)
    assert Architecture.from_dict(scaled.to_dict()) == scaled


def test_a_replaced_file_keeps_bits_that_the_umask_would_take_off(tmp_path, unit_data):
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    path = tmp_path / "m.skae"
    skae.save(ae, path)
    os.chmod(path, 0o644)
    old = os.umask(0o077)
    try:
        skae.save(ae, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_the_temporary_file_is_closed_before_it_replaces_the_file(tmp_path, unit_data,
                                                                   monkeypatch):
    from skae import _persistence

    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    new_temporary, handles = _persistence._new_temporary, []

    def recording(folder, mode):
        partial, handle = new_temporary(folder, mode)
        handles.append(handle)
        return partial, handle

    monkeypatch.setattr(_persistence, "_new_temporary", recording)
    skae.save(ae, tmp_path / "m.skae")
    assert len(handles) == 1 and handles[0].closed


def test_a_temporary_name_in_use_is_never_taken_over(tmp_path, unit_data, monkeypatch):
    from skae import _persistence

    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    names = iter(["0" * 16, "0" * 16, "1" * 16])
    monkeypatch.setattr(_persistence.secrets, "token_hex", lambda n: next(names))
    other = tmp_path / f".skae-{'0' * 16}.part"  # another save's temporary file
    other.write_bytes(b"another writer's data")
    skae.save(ae, tmp_path / "m.skae")
    assert other.read_bytes() == b"another writer's data"
    np.testing.assert_array_equal(skae.load(tmp_path / "m.skae").transform(unit_data),
                                  ae.transform(unit_data))


def test_errors_about_the_temporary_file_name_the_users_path(tmp_path, unit_data,
                                                              monkeypatch):
    from skae import _persistence

    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if os.path.basename(path).startswith(".skae-"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(_persistence.os, "open", refusing_open)
    with pytest.raises(PermissionError) as caught:
        skae.save(ae, tmp_path / "m.skae")
    assert caught.value.filename == str(tmp_path)  # the folder, not the temporary name
    monkeypatch.undo()

    def refusing_replace(src, dst):
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr(_persistence.os, "replace", refusing_replace)
    with pytest.raises(PermissionError) as caught:
        skae.save(ae, tmp_path / "m.skae")
    assert caught.value.filename == str(tmp_path / "m.skae")


@pytest.mark.parametrize("key, function", [
    pytest.param("state", _add_state("__custom__"), id="dunder"),  # a dunder the class lacks
    pytest.param("state", _set_state("n_components_", 2), id="n_components"),  # not the code size
    pytest.param("state", _set_state("_x_scale", 0.0), id="zero_scale"),
    pytest.param("state", _set_state("image_shape_", {"__tuple__": [3, 5]}), id="image_shape"),
    pytest.param("state", _set_state("_code_stats", {"__tuple__": [1.0, 2.0]}), id="code_stats"),
    pytest.param("state", _set_state("_seed", True), id="bool_seed"),  # a bool is no int
    pytest.param("state", lambda state: {"__dict__": [
        [k, v] for k, v in state["__dict__"] if k not in ("decoder_", "_optimizer_state")]},
                 id="no_decoder"),
    pytest.param("state", lambda state: {"__dict__": [
        [k, {"__tuple__": v["__tuple__"] + [1]} if k == "_code_stats" else v]
        for k, v in state["__dict__"]]}, id="code_stats_long"),
])
def test_more_crafted_but_checksummed_metadata_is_refused(saved, tmp_path, key, function):
    _, path = saved
    bad = _rewrite(path, tmp_path / "bad.skae", _mutate_json(key, function))
    with pytest.raises(ValueError, match="corrupted"):
        skae.load(bad)


def test_a_training_state_of_inconsistent_length_is_refused(saved, tmp_path):
    def shorter_curve(state):
        items = dict(state["__dict__"])
        fields = dict(items["_state"]["__training_state__"]["__dict__"])
        fields["loss_curve"] = fields["loss_curve"][:1]  # n_iter_ is 2
        items["_state"]["__training_state__"]["__dict__"] = [[k, v] for k, v in fields.items()]
        return {"__dict__": [[k, v] for k, v in items.items()]}

    _, path = saved
    bad = _rewrite(path, tmp_path / "bad.skae", _mutate_json("state", shorter_curve))
    with pytest.raises(ValueError, match="corrupted"):
        skae.load(bad)


def test_a_non_finite_mean_is_refused(saved, tmp_path):
    _, path = saved
    _, metadata, arrays = _split(path.read_bytes())
    state = dict(json.loads(metadata["state"])["__dict__"])
    key = state["_x_mean"]["__array__"]
    arrays[key] = np.full_like(arrays[key], np.nan)
    metadata["sha256"] = _digest(arrays, metadata)
    bad = tmp_path / "bad.skae"
    bad.write_bytes(save_tensors(arrays, metadata=metadata))
    with pytest.raises(ValueError, match="corrupted.*_x_mean"):
        skae.load(bad)


def test_a_file_relabelled_as_another_class_is_refused(tmp_path, unit_data):
    # a VAE's encoder is twice the code wide: as an Autoencoder it would give 6-wide codes
    vae = skae.VariationalAutoencoder(3, hidden_layer_sizes=(5,), max_iter=1,
                                      random_state=0).fit(unit_data)
    skae.save(vae, tmp_path / "vae.skae")
    bad = _rewrite(tmp_path / "vae.skae", tmp_path / "bad.skae",
                   lambda metadata: metadata.update({"class": "Autoencoder"}))
    bad = _rewrite(bad, bad, _mutate_json("params", lambda params: {
        "__dict__": [[k, v] for k, v in params["__dict__"] if k != "beta"]}))
    with pytest.raises(ValueError, match="corrupted"):
        skae.load(bad)


def test_optimizer_state_is_mapped_by_position_and_must_be_skaes_layout(unit_data):
    from skae._training import check_state_fits, make_optimizer

    ae = _small_fitted(unit_data)
    params = [*ae.encoder_.parameters(), *ae.decoder_.parameters()]
    solver, state = ae._optimizer_state
    group = state["param_groups"][0]
    # torch maps ids to parameters by position: ids other than 0..n-1 load the same
    shifted = {"state": {i + 10: v for i, v in state["state"].items()},
               "param_groups": [dict(group, params=[i + 10 for i in group["params"]])]}
    loaded = make_optimizer(solver, params, 1e-3, shifted)
    reference = make_optimizer(solver, params, 1e-3, state)
    for param in params:
        torch.testing.assert_close(loaded.state[param]["exp_avg"],
                                   reference.state[param]["exp_avg"], rtol=0, atol=0)
    half = len(group["params"]) // 2
    first = group["params"][0]
    bad = {
        "two groups": dict(state, param_groups=[dict(group, params=group["params"][:half]),
                                                dict(group, params=group["params"][half:])]),
        "an entry for no parameter": dict(state, state={**state["state"], 999: {}}),
        "no step count": dict(state, state={**state["state"], first: {
            k: v for k, v in state["state"][first].items() if k != "step"}}),
        "keys as strings": dict(state, state={str(k): v for k, v in state["state"].items()}),
    }
    for what, crafted in bad.items():
        with pytest.raises(ValueError, match="optimizer state"):
            check_state_fits(crafted, params, solver)
