"""Tests for skae.datasets."""

import gzip
import hashlib
import http.client
import inspect
import io
import os
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from skae import datasets
from skae.datasets import get_data_home, load_mnist

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
TEST_FILES = MNIST_FILES[2:]


def _shared_data_home():
    env = os.environ.get("SKAE_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA_HOME = _shared_data_home()
HAVE_MNIST = all((SHARED_DATA_HOME / "mnist" / f).is_file() for f in MNIST_FILES)
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST,
    reason=(
        f"MNIST files not found in {SHARED_DATA_HOME / 'mnist'} "
        "(set SKAE_DATA to a folder containing mnist/ with the four IDX .gz files)"
    ),
)


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test", data_home=SHARED_DATA_HOME, download=False)


@pytest.fixture(scope="module")
def mnist_train():
    return load_mnist("train", data_home=SHARED_DATA_HOME, download=False)


@pytest.fixture
def test_copy(tmp_path):
    """A data_home in tmp_path holding a copy of the test-subset files."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in TEST_FILES:
        shutil.copy(SHARED_DATA_HOME / "mnist" / name, folder / name)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Make every download attempt fail as if offline; record the URLs tried."""
    tried = []

    def fake_urlopen(url, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return tried


def _serve_from(folder, *, fail_first=0, payload=None):
    """A fake urlopen serving files from ``folder``; the first calls may fail."""
    calls = []

    def fake_urlopen(url, *args, **kwargs):
        calls.append(url)
        if len(calls) <= fail_first:
            raise urllib.error.URLError("mirror down")
        name = url.rsplit("/", 1)[-1]
        data = payload if payload is not None else (folder / name).read_bytes()
        return io.BytesIO(data)

    fake_urlopen.calls = calls
    return fake_urlopen


def _check_bunch(bunch, n_samples):
    assert bunch.data.shape == (n_samples, 784)
    assert bunch.data.dtype == np.float32
    assert bunch.target.shape == (n_samples,)
    assert bunch.target.dtype == np.int64
    assert bunch.data.min() == 0.0
    assert bunch.data.max() == 1.0
    assert bunch.images.shape == (n_samples, 28, 28)
    assert bunch.images.dtype == np.float32
    assert np.shares_memory(bunch.images, bunch.data)
    assert bunch.images.base is bunch.data  # a reshape view, not a copy
    # (np.array_equal rather than assert_array_equal: much faster on 47M values)
    assert np.array_equal(bunch.images.reshape(n_samples, -1), bunch.data)
    np.testing.assert_array_equal(bunch.images[-1, 3], bunch.data[-1, 84:112])
    np.testing.assert_array_equal(np.unique(bunch.target), np.arange(10))
    assert len(bunch.feature_names) == 784
    assert bunch.feature_names[0] == "pixel_0_0"
    assert bunch.feature_names[29] == "pixel_1_1"
    assert bunch.feature_names[-1] == "pixel_27_27"
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert "MNIST" in bunch.DESCR


# --------------------------------------------------------------------------
# Loading the real files


@needs_mnist
def test_load_test_subset(mnist_test):
    _check_bunch(mnist_test, 10000)
    # Known values of the standard test set.
    np.testing.assert_array_equal(mnist_test.target[:5], [7, 2, 1, 0, 4])
    # Pixels are raw bytes / 255.
    np.testing.assert_array_equal(
        np.unique(np.round(mnist_test.data[0] * 255)) % 1, 0
    )


@needs_mnist
def test_load_train_subset(mnist_train):
    _check_bunch(mnist_train, 60000)
    np.testing.assert_array_equal(mnist_train.target[:5], [5, 0, 4, 1, 9])


def test_signature():
    params = inspect.signature(load_mnist).parameters
    assert params["subset"].default == "train"
    assert params["subset"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name in ("data_home", "download", "return_X_y"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


@needs_mnist
def test_return_X_y(mnist_test):
    X, y = load_mnist("test", data_home=SHARED_DATA_HOME, return_X_y=True)
    np.testing.assert_array_equal(X, mnist_test.data)
    np.testing.assert_array_equal(y, mnist_test.target)
    assert X.dtype == np.float32 and y.dtype == np.int64


def test_signature_keyword_only():
    with pytest.raises(TypeError):
        load_mnist("test", "/some/where")


@needs_mnist
def test_env_var_is_honoured(monkeypatch, mnist_test):
    monkeypatch.setenv("SKAE_DATA", str(SHARED_DATA_HOME))
    X, y = load_mnist("test", download=False, return_X_y=True)
    np.testing.assert_array_equal(y, mnist_test.target)


@needs_mnist
def test_env_var_used_for_missing_files(monkeypatch, tmp_path):
    monkeypatch.setenv("SKAE_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_mnist("test", download=False)


# --------------------------------------------------------------------------
# get_data_home


def test_get_data_home_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("SKAE_DATA", "/elsewhere")
    assert get_data_home(tmp_path) == tmp_path
    assert get_data_home(str(tmp_path)) == tmp_path


def test_get_data_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SKAE_DATA", str(tmp_path))
    assert get_data_home() == tmp_path


def test_get_data_home_default(monkeypatch):
    monkeypatch.delenv("SKAE_DATA", raising=False)
    assert get_data_home() == Path.home() / "skae_data"
    monkeypatch.setenv("SKAE_DATA", "")
    assert get_data_home() == Path.home() / "skae_data"


def test_get_data_home_does_not_create(tmp_path):
    target = tmp_path / "not_there"
    assert get_data_home(target) == target
    assert not target.exists()


# --------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("subset", ["valid", "TRAIN", "", None, 0, ["train"]])
def test_bad_subset(subset, tmp_path):
    with pytest.raises(ValueError, match=r"subset must be one of.*'test'.*'train'"):
        load_mnist(subset, data_home=tmp_path)


@pytest.mark.parametrize("download", ["no", 0, None])
def test_download_must_be_a_bool(download, tmp_path):
    # a truthy "no" would download
    with pytest.raises(TypeError, match="download must be True or False"):
        load_mnist("test", data_home=tmp_path, download=download)


@pytest.mark.parametrize("return_X_y", ["no", 1, None])
def test_return_X_y_must_be_a_bool(return_X_y, tmp_path):
    # a truthy "no" returned a tuple
    with pytest.raises(TypeError, match="return_X_y must be True or False"):
        load_mnist("test", data_home=tmp_path, download=False, return_X_y=return_X_y)


@needs_mnist
@pytest.mark.parametrize("name", TEST_FILES)
def test_corrupted_file(test_copy, name):
    path = test_copy / "mnist" / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted") as excinfo:
        load_mnist("test", data_home=test_copy, download=False)
    message = str(excinfo.value)
    assert name in message
    assert "SHA-256" in message
    assert "Delete" in message


@needs_mnist
def test_corrupted_file_is_not_redownloaded(test_copy, monkeypatch):
    path = test_copy / "mnist" / TEST_FILES[0]
    path.write_bytes(path.read_bytes()[:-10])
    fake = _serve_from(SHARED_DATA_HOME / "mnist")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ValueError, match="corrupted"):
        load_mnist("test", data_home=test_copy, download=True)
    assert fake.calls == []


def test_missing_files_no_download(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist("test", data_home=tmp_path, download=False)
    message = str(excinfo.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message
    assert "download=False" in message
    assert no_network == []


def test_missing_files_no_network(tmp_path, no_network):
    with pytest.raises(OSError) as excinfo:
        load_mnist("test", data_home=tmp_path, download=True)
    assert not isinstance(excinfo.value, FileNotFoundError)
    message = str(excinfo.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message
    assert "could not be downloaded" in message
    assert "network is unreachable" in message
    assert "SKAE_DATA" in message
    # Every mirror was tried, and nothing was left behind.
    assert len(no_network) == len(datasets._MNIST_MIRRORS)
    assert all(url.endswith("t10k-images-idx3-ubyte.gz") for url in no_network)
    assert list(tmp_path.iterdir()) == []  # not even the mnist/ folder


@pytest.mark.parametrize(
    "error",
    [TimeoutError("timed out"), ConnectionResetError("reset"), OSError("boom"),
     http.client.IncompleteRead(b"partial")],  # an HTTPException, not an OSError
)
def test_download_other_network_errors(tmp_path, monkeypatch, error):
    def fake_urlopen(url, *args, **kwargs):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(OSError, match="could not be downloaded"):
        load_mnist("test", data_home=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_removes_only_the_folders_it_made(tmp_path, no_network):
    home = tmp_path / "new" / "home"
    with pytest.raises(OSError, match="could not be downloaded"):
        load_mnist("test", data_home=home)
    assert list(tmp_path.iterdir()) == []  # new/home/mnist/ was made for the download
    (tmp_path / "mnist").mkdir()
    with pytest.raises(OSError, match="could not be downloaded"):
        load_mnist("test", data_home=tmp_path)
    assert (tmp_path / "mnist").is_dir()  # the user's folder stays


# --------------------------------------------------------------------------
# Downloading (with a fake urlopen serving the shared files)


@needs_mnist
def test_download_missing_files(tmp_path, monkeypatch, mnist_test):
    fake = _serve_from(SHARED_DATA_HOME / "mnist")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    X, y = load_mnist("test", data_home=tmp_path, return_X_y=True)
    np.testing.assert_array_equal(X, mnist_test.data)
    np.testing.assert_array_equal(y, mnist_test.target)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        TEST_FILES
    )
    assert fake.calls == [datasets._MNIST_MIRRORS[0] + name for name in TEST_FILES]


@needs_mnist
def test_download_only_missing_file(test_copy, monkeypatch):
    (test_copy / "mnist" / TEST_FILES[1]).unlink()
    fake = _serve_from(SHARED_DATA_HOME / "mnist")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    load_mnist("test", data_home=test_copy, return_X_y=True)
    assert [url.rsplit("/", 1)[-1] for url in fake.calls] == [TEST_FILES[1]]


@needs_mnist
def test_download_falls_back_to_next_mirror(tmp_path, monkeypatch):
    fake = _serve_from(SHARED_DATA_HOME / "mnist", fail_first=1)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    load_mnist("test", data_home=tmp_path, return_X_y=True)
    mirrors = datasets._MNIST_MIRRORS
    assert fake.calls[:2] == [m + TEST_FILES[0] for m in mirrors[:2]]


def test_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    fake = _serve_from(tmp_path, payload=b"<html>not the file</html>")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(OSError, match="SHA-256"):
        load_mnist("test", data_home=tmp_path)
    assert len(fake.calls) == len(datasets._MNIST_MIRRORS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [ConnectionResetError("connection lost"), KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch, error):
    class Broken(io.BytesIO):
        def read(self, *args):
            if self.tell() > 0:
                raise error
            return super().read(*args)

    def fake_urlopen(url, *args, **kwargs):
        return Broken(b"x" * (1 << 20))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    # a network error fails over to the next mirror; Ctrl-C stops at once
    with pytest.raises(OSError if isinstance(error, OSError) else KeyboardInterrupt,
                       match=str(error) or None):
        load_mnist("test", data_home=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# IDX parsing


def _idx_bytes(magic, dims, data):
    return struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(data)


def test_parse_idx_images():
    data = np.arange(2 * 3 * 4, dtype=np.uint8)
    raw = _idx_bytes(2051, (2, 3, 4), data)
    out = datasets._parse_idx(raw, expected_magic=2051)
    assert out.dtype == np.uint8
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, data.reshape(2, 3, 4))


def test_parse_idx_labels():
    raw = _idx_bytes(2049, (5,), [3, 1, 4, 1, 5])
    out = datasets._parse_idx(raw, expected_magic=2049)
    np.testing.assert_array_equal(out, [3, 1, 4, 1, 5])


def test_parse_idx_big_endian_dims():
    # 256 samples: would read as 65536 if the dims were little-endian.
    raw = _idx_bytes(2049, (256,), np.zeros(256, dtype=np.uint8))
    assert datasets._parse_idx(raw, expected_magic=2049).shape == (256,)


@pytest.mark.parametrize("magic", [2049, 2052, 0, 0x03080000])
def test_parse_idx_wrong_magic(magic):
    raw = _idx_bytes(magic, (1, 2, 2), [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"foo\.idx.*magic number.*2051"):
        datasets._parse_idx(raw, expected_magic=2051, name="foo.idx")


@pytest.mark.parametrize("cut", [0, 2, 4, 9, 16, 17, 19])
def test_parse_idx_truncated(cut):
    raw = _idx_bytes(2051, (1, 2, 2), [0, 1, 2, 3])[:cut]
    with pytest.raises(ValueError, match=r"foo\.idx.*truncated"):
        datasets._parse_idx(raw, expected_magic=2051, name="foo.idx")


def test_parse_idx_huge_dimensions_report_their_exact_size():
    raw = struct.pack(">I", 2051) + b"\xff" * 12  # three dimensions of 2**32 - 1
    expected = 16 + (2**32 - 1) ** 3
    with pytest.raises(ValueError, match=f"truncated IDX file: 16 bytes, expected {expected} "):
        datasets._parse_idx(raw, expected_magic=2051)


def test_parse_idx_trailing_bytes():
    raw = _idx_bytes(2049, (2,), [1, 2, 3])
    with pytest.raises(ValueError, match=r"foo\.idx.*oversized"):
        datasets._parse_idx(raw, expected_magic=2049, name="foo.idx")


def test_read_idx_gz(tmp_path):
    path = tmp_path / "tiny-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(2049, (3,), [7, 8, 9])))
    out = datasets._read_idx_gz(path, expected_magic=2049)
    np.testing.assert_array_equal(out, [7, 8, 9])
    with pytest.raises(ValueError, match=r"tiny-idx1-ubyte\.gz.*magic"):
        datasets._read_idx_gz(path, expected_magic=2051)


def test_read_idx_gz_truncated_gzip(tmp_path):
    path = tmp_path / "tiny-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(2049, (300,), bytes(300)))[:-12])
    with pytest.raises(ValueError, match=r"tiny-idx1-ubyte\.gz"):
        datasets._read_idx_gz(path, expected_magic=2049)


def test_read_idx_gz_not_gzip(tmp_path):
    path = tmp_path / "plain-idx1-ubyte.gz"
    path.write_bytes(_idx_bytes(2049, (3,), [7, 8, 9]))
    with pytest.raises(ValueError, match=r"plain-idx1-ubyte\.gz.*gzip"):
        datasets._read_idx_gz(path, expected_magic=2049)


def test_checksum_constants():
    assert set(datasets._MNIST_SHA256) == set(MNIST_FILES)
    assert all(len(h) == 64 for h in datasets._MNIST_SHA256.values())


@needs_mnist
def test_checksum_constants_match_sha256sums():
    sums_file = SHARED_DATA_HOME / "mnist" / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip(f"{sums_file} not found")
    sums = dict(
        reversed(line.split()) for line in sums_file.read_text().splitlines() if line
    )
    assert {k: sums[k] for k in MNIST_FILES} == datasets._MNIST_SHA256


def _write_idx_gz(path, magic, dims, data):
    raw = struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(data)
    path.write_bytes(gzip.compress(raw))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_label_count_unlike_the_image_count_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    images, labels = datasets._MNIST_FILES["test"]
    checksums = {
        images: _write_idx_gz(folder / images, 2051, (3, 28, 28), np.zeros(3 * 784, np.uint8)),
        labels: _write_idx_gz(folder / labels, 2049, (2,), [1, 2]),
    }
    for name, digest in checksums.items():  # these small files stand in for the real ones
        monkeypatch.setitem(datasets._MNIST_SHA256, name, digest)
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        datasets.load_mnist("test", data_home=tmp_path, download=False)
    # the same files with matching counts load (the refusal is about the counts)
    monkeypatch.setitem(datasets._MNIST_SHA256, labels,
                        _write_idx_gz(folder / labels, 2049, (3,), [1, 2, 3]))
    X, y = datasets.load_mnist("test", data_home=tmp_path, download=False, return_X_y=True)
    assert X.shape == (3, 784) and list(y) == [1, 2, 3]


def _small_test_files(folder, monkeypatch):
    """Small stand-ins for the test subset's two files in ``folder``, with their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = datasets._MNIST_FILES["test"]
    for name, (magic, dims, data) in {images: (2051, (2, 28, 28), bytes(2 * 784)),
                                      labels: (2049, (2,), [3, 4])}.items():
        monkeypatch.setitem(datasets._MNIST_SHA256, name,
                            _write_idx_gz(folder / name, magic, dims, data))
    return images, labels


def test_download_creates_a_data_home_that_does_not_exist_yet(tmp_path, monkeypatch):
    _small_test_files(tmp_path / "served", monkeypatch)
    monkeypatch.setattr(urllib.request, "urlopen", _serve_from(tmp_path / "served"))
    home = tmp_path / "new" / "home"  # as ~/skae_data before the first download
    X, y = load_mnist("test", data_home=home, return_X_y=True)
    assert X.shape == (2, 784) and list(y) == [3, 4]


def test_a_missing_labels_file_is_not_downloaded_with_download_false(tmp_path, monkeypatch,
                                                                     no_network):
    _, labels = _small_test_files(tmp_path / "mnist", monkeypatch)
    (tmp_path / "mnist" / labels).unlink()
    with pytest.raises(FileNotFoundError, match=labels):
        load_mnist("test", data_home=tmp_path, download=False)
    assert no_network == []


@pytest.mark.parametrize("file_at", ["home", "mnist", "above"])
@pytest.mark.parametrize("download", [True, False])
def test_a_data_home_that_is_a_file_is_named(tmp_path, no_network, file_at, download):
    home = tmp_path / "home"
    if file_at == "home":
        home.write_text("not a folder")
    elif file_at == "mnist":
        home.mkdir()
        (home / "mnist").write_text("not a folder")
    else:
        (tmp_path / "above").write_text("not a folder")
        home = tmp_path / "above" / "home"
    with pytest.raises(NotADirectoryError, match="is a file, not a folder: data_home"):
        load_mnist("test", data_home=home, download=download)
    assert no_network == []
