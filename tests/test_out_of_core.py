"""Out-of-core data: a ``np.memmap`` or another lazy array is validated and read in chunks.

``fit``, ``partial_fit``, ``transform``, ``score_samples`` and ``inverse_transform`` never
load such an array whole: validation (shape, features, dtype, finite values, the [0, 1]
domain of BCE), the scaling statistics, training batches and inference all read it a chunk
or a batch at a time, casting per chunk.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skae import Autoencoder, DenoisingAutoencoder, VariationalAutoencoder

MiB = 2**20


class LazyArray:
    """A 2-D array known only by ``shape``, ``dtype`` and row indexing, as a zarr or dask one.

    It records the largest read and refuses to be converted whole: ``np.asarray(lazy)``
    raises.
    """

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.largest_read = 0

    def __getitem__(self, key):
        rows = np.array(self._data[key])  # a copy, as if read from storage
        self.largest_read = max(self.largest_read, len(rows))
        return rows

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the lazy array was converted to numpy whole")


@pytest.fixture
def wide_data():
    """10 000 samples x 32 features in [0, 1]: several validation chunks."""
    rng = np.random.RandomState(0)
    t = rng.rand(10000, 2)
    features = np.hstack([t, np.sin(3 * t)]) @ rng.rand(4, 32)
    return (features / features.max()).astype(np.float32)


def _memmap(path, data, mode):
    writer = np.memmap(path, dtype=data.dtype, mode="w+", shape=data.shape)
    writer[:] = data
    writer.flush()
    del writer
    return np.memmap(path, dtype=data.dtype, mode=mode, shape=data.shape)


# ------------------------------------------------------------------ anonymous memory budget

_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import numpy as np
    from skae import Autoencoder

    path, dtype, mode, n_samples, n_features = sys.argv[1:]
    X = np.memmap(path, dtype=dtype, mode=mode, shape=(int(n_samples), int(n_features)))

    def rss_anon():  # bytes of anonymous memory: mapped file pages are not counted
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    make = lambda: Autoencoder(8, hidden_layer_sizes=(32,), max_iter=1, batch_size=512,
                               random_state=0)
    # torch sets up its kernels and allocator pools on first use: a tiny in-memory fit
    # first, so that the baseline holds them and what grows afterwards is due to the data
    make().fit(np.random.RandomState(0).rand(2048, int(n_features)).astype(dtype))
    ae = make()
    baseline = peak = rss_anon()
    done = threading.Event()

    def watch():
        global peak
        while not done.is_set():
            peak = max(peak, rss_anon())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    ae.fit(X)
    fit_peak = peak = max(peak, rss_anon())
    score = ae.score(X)  # inference streams too
    done.set()
    watcher.join()
    peak = max(peak, fit_peak, rss_anon())
    print(json.dumps({"baseline": baseline, "fit_peak": fit_peak, "peak": peak,
                      "n_iter": ae.n_iter_, "score": score}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="needs Linux's /proc/self/status (RssAnon)")
@pytest.mark.parametrize("dtype, mode", [("float32", "r"), ("float64", "r+")])
def test_fitting_a_memmap_keeps_anonymous_memory_within_a_budget(tmp_path, dtype, mode):
    # RLIMIT_AS cannot bound this: the memory map itself counts against it. RssAnon does not
    # count mapped file pages, so it measures what is copied into memory.
    budget, n_features = 32 * MiB, 64
    n_samples = 4 * budget // (n_features * np.dtype(dtype).itemsize)
    path = tmp_path / "X.dat"
    writer = np.memmap(path, dtype=dtype, mode="w+", shape=(n_samples, n_features))
    rng = np.random.default_rng(0)
    for start in range(0, n_samples, 65536):  # written in chunks: never in memory here either
        writer[start:start + 65536] = rng.random((min(65536, n_samples - start), n_features))
    writer.flush()
    del writer
    assert path.stat().st_size >= 4 * budget

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), dtype, mode, str(n_samples), str(n_features)],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    fit_growth, growth = (report[k] - report["baseline"] for k in ("fit_peak", "peak"))
    print(f"{dtype} memmap ({mode}) of {path.stat().st_size / MiB:.0f} MiB: RssAnon peak "
          f"growth {fit_growth / MiB:.1f} MiB in fit, {growth / MiB:.1f} MiB with score "
          f"after it; budget {budget / MiB:.0f} MiB")
    assert fit_growth < budget, (
        f"fitting a {path.stat().st_size / MiB:.0f} MiB memmap grew anonymous memory by "
        f"{fit_growth / MiB:.1f} MiB, over the {budget / MiB:.0f} MiB budget")
    # scoring streams as well (about 12 MiB live at most here, float64), but glibc keeps
    # freed heap pages for reuse, so RssAnon after fit + score is only loosely bounded
    assert growth < 2 * budget
    assert report["n_iter"] == 1 and np.isfinite(report["score"])


# ------------------------------------------------------------------ lazy arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_lazy_array_fits_like_the_in_memory_array_without_being_loaded(wide_data, dtype):
    data = wide_data.astype(dtype)
    lazy = LazyArray(data)
    make = lambda: Autoencoder(3, hidden_layer_sizes=(8,), max_iter=2, batch_size=200,  # noqa: E731
                               random_state=0)
    from_lazy, in_memory = make().fit(lazy), make().fit(data)
    # batches are read in index order but trained on in the shuffled order: the same steps
    # on the same rows, so the same model up to rounding of the scaling statistics
    np.testing.assert_allclose(from_lazy.loss_curve_, in_memory.loss_curve_, rtol=1e-6)
    Z = from_lazy.transform(lazy)
    assert Z.dtype == dtype and from_lazy.n_features_in_ == 32
    np.testing.assert_allclose(Z, in_memory.transform(data), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_lazy.score_samples(lazy), in_memory.score_samples(data),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(from_lazy.inverse_transform(LazyArray(Z)),
                               in_memory.inverse_transform(Z), rtol=1e-5, atol=1e-6)
    from_lazy.partial_fit(lazy)
    in_memory.partial_fit(data)
    np.testing.assert_allclose(from_lazy.transform(lazy), in_memory.transform(data),
                               rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(from_lazy._code_stats, in_memory._code_stats):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert 0 < lazy.largest_read < len(data) // 2  # chunks and batches, never the whole array


def test_a_lazy_array_wider_than_a_validation_chunk_is_read_a_row_at_a_time():
    from skae._arrays import CHUNK_VALUES

    data = np.random.RandomState(0).rand(3, CHUNK_VALUES + 1).astype(np.float32)
    lazy = LazyArray(data)
    make = lambda: Autoencoder(1, max_iter=1, random_state=0)  # noqa: E731
    from_lazy, in_memory = make().fit(lazy), make().fit(data)
    np.testing.assert_allclose(from_lazy.transform(lazy), in_memory.transform(data), rtol=1e-5)


@pytest.mark.parametrize("cls", [DenoisingAutoencoder, VariationalAutoencoder])
def test_random_variants_draw_the_same_noise_per_row_from_a_memmap(tmp_path, unit_data, cls):
    X_map = _memmap(tmp_path / "X.dat", unit_data, "r")
    make = lambda: cls(3, hidden_layer_sizes=(8,), max_iter=3, batch_size=32,  # noqa: E731
                       random_state=0)
    from_map, in_memory = make().fit(X_map), make().fit(unit_data)
    np.testing.assert_allclose(from_map.loss_curve_, in_memory.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(from_map.transform(X_map), in_memory.transform(unit_data),
                               rtol=1e-5, atol=1e-6)


def test_a_float64_memmap_opened_read_write_is_cast_per_batch_and_left_unchanged(
        tmp_path, tabular_data):
    X_map = _memmap(tmp_path / "X.dat", tabular_data, "r+")
    make = lambda: Autoencoder(3, max_iter=3, batch_size=32, random_state=0)  # noqa: E731
    from_map, in_memory = make().fit(X_map), make().fit(tabular_data)
    assert from_map.loss_ == in_memory.loss_ == "mse"
    np.testing.assert_allclose(from_map._x_mean, in_memory._x_mean, rtol=1e-12)
    assert from_map._x_scale == pytest.approx(in_memory._x_scale, rel=1e-12)
    np.testing.assert_allclose(from_map.loss_curve_, in_memory.loss_curve_, rtol=1e-6)
    Z = from_map.transform(X_map)
    assert Z.dtype == np.float64
    np.testing.assert_allclose(Z, in_memory.transform(tabular_data), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(X_map), tabular_data)


def test_integer_and_boolean_lazy_arrays_are_read_as_float64(unit_data):
    counts = (unit_data * 10).round().astype(np.int16)
    ae = Autoencoder(2, max_iter=1, random_state=0).fit(LazyArray(counts))
    assert ae.loss_ == "mse" and ae.transform(LazyArray(counts)).dtype == np.float64
    np.testing.assert_allclose(ae.transform(LazyArray(counts)), ae.transform(counts))
    ae = Autoencoder(2, max_iter=1, random_state=0).fit(LazyArray(counts > 4))
    assert ae.loss_ == "bce"


# ------------------------------------------------------------------ bad lazy input


@pytest.mark.parametrize("value, message", [(np.nan, "Input X contains NaN"),
                                            (np.inf, "Input X contains infinity")])
def test_a_non_finite_value_in_a_late_chunk_is_found(wide_data, value, message):
    bad = wide_data.copy()
    bad[-3, 5] = value
    ae = Autoencoder(3, max_iter=1, random_state=0)
    with pytest.raises(ValueError, match=message):
        ae.fit(LazyArray(bad))
    assert not hasattr(ae, "n_features_in_")  # the failed fit left the estimator unfitted
    ae.fit(LazyArray(wide_data))
    before = ae.transform(wide_data)
    for method in (ae.partial_fit, ae.transform, ae.score_samples):
        with pytest.raises(ValueError, match=message):
            method(LazyArray(bad))
    np.testing.assert_array_equal(ae.transform(wide_data), before)  # partial_fit trained nothing


def test_wrong_width_shape_dtype_and_domain_of_lazy_input_are_refused(unit_data):
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(LazyArray(unit_data))
    assert ae.loss_ == "bce"
    with pytest.raises(ValueError, match="X has 5 features, but Autoencoder is expecting 12"):
        ae.transform(LazyArray(unit_data[:, :5]))
    with pytest.raises(ValueError, match="X has 5 features, but Autoencoder is expecting 12"):
        ae.partial_fit(LazyArray(unit_data[:, :5]))
    with pytest.raises(ValueError, match="inverse_transform expects codes of 3 components"):
        ae.inverse_transform(LazyArray(unit_data[:, :5]))
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\]"):
        ae.score_samples(LazyArray(unit_data * 2))
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\]"):
        ae.partial_fit(LazyArray(unit_data - 0.5))
    for bad in (unit_data[:, 0], unit_data.reshape(20, 10, 12)):
        with pytest.raises(ValueError, match="Expected 2D array"):
            Autoencoder(3).fit(LazyArray(bad))
        with pytest.raises(ValueError, match="Expected 2D array"):
            ae.transform(LazyArray(bad))
    with pytest.raises(ValueError, match="0 sample"):
        Autoencoder(3).fit(LazyArray(unit_data[:0]))
    for dtype in (np.complex64, "U3", object):
        with pytest.raises(ValueError, match="must hold real numbers"):
            Autoencoder(3).fit(LazyArray(unit_data.astype(dtype)))


def test_a_bad_memmap_is_refused_like_a_bad_array(tmp_path, unit_data):
    bad = unit_data.copy()
    bad[150, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        Autoencoder(3).fit(_memmap(tmp_path / "X.dat", bad, "r"))
    with pytest.raises(ValueError, match="Expected 2D array"):
        Autoencoder(3).fit(_memmap(tmp_path / "y.dat", unit_data[:, 0], "r"))


# ------------------------------------------------------------------ a real lazy library


def test_a_dask_array_fits_chunk_by_chunk(wide_data):
    da = pytest.importorskip("dask.array")
    data = wide_data.astype(np.float64)
    lazy = da.from_array(data, chunks=(2500, 32))
    make = lambda: Autoencoder(3, hidden_layer_sizes=(8,), max_iter=2, batch_size=200,  # noqa: E731
                               random_state=0)
    from_dask, in_memory = make().fit(lazy), make().fit(data)
    np.testing.assert_allclose(from_dask.transform(lazy), in_memory.transform(data),
                               rtol=1e-6, atol=1e-9)
    bad = da.where(da.arange(len(data))[:, None] == 9000, np.nan, lazy)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        from_dask.partial_fit(bad)


class SliceOnlyArray(LazyArray):
    """A lazy array read only by slices of rows."""

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"only slices, got {type(key).__name__}")
        return super().__getitem__(key)


def test_training_refuses_a_lazy_array_it_cannot_read_by_row_numbers(unit_data):
    # the full validation pass read it by slices; its batches then failed in epoch 1 and
    # left a model with untrained weights that transform used
    ae = Autoencoder(3, max_iter=1, random_state=0)
    for train in (ae.fit, ae.partial_fit):
        with pytest.raises(ValueError, match=r"by arrays of row numbers.*this SliceOnlyArray "
                                             r"gave TypeError: only slices"):
            train(SliceOnlyArray(unit_data))
        assert not hasattr(ae, "encoder_")
    fitted = ae.fit(unit_data)  # reading by slices still serves everything else
    np.testing.assert_array_equal(fitted.transform(SliceOnlyArray(unit_data)),
                                  fitted.transform(unit_data))
