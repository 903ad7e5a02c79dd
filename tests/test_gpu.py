"""The CUDA path: skipped cleanly on machines without a GPU (CI has none)."""

import numpy as np
import pytest
import torch

import skae
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("make", [
    lambda **kw: Autoencoder(3, **kw),
    lambda **kw: ConvAutoencoder(4, conv_filters=(4,), image_shape=(3, 4), **kw),
    lambda **kw: VariationalAutoencoder(2, hidden_layer_sizes=(8,), **kw),
    lambda **kw: DenoisingAutoencoder(3, **kw),
    lambda **kw: SparseAutoencoder(6, **kw),
    lambda **kw: ContractiveAutoencoder(3, **kw),
], ids=["dense", "conv", "vae", "denoising", "sparse", "contractive"])
def test_cuda_fit_matches_the_cpu_fit(unit_data, make):
    cpu = make(max_iter=5, random_state=0).fit(unit_data)
    gpu = make(max_iter=5, random_state=0, device="cuda").fit(unit_data)
    assert gpu.device_.startswith("cuda")
    assert next(gpu.encoder_.parameters()).is_cuda
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(gpu.transform(unit_data), cpu.transform(unit_data),
                               rtol=1e-2, atol=1e-3)


def test_a_fitted_model_moves_with_set_params(unit_data):
    ae = Autoencoder(3, max_iter=3, warm_start=True, random_state=0).fit(unit_data)
    codes = ae.transform(unit_data)
    ae.set_params(device="cuda")
    np.testing.assert_allclose(ae.transform(unit_data), codes, rtol=1e-4, atol=1e-5)
    assert next(ae.encoder_.parameters()).is_cuda and ae.device_.startswith("cuda")
    ae.fit(unit_data)  # warm start continues on the GPU, optimizer state included
    assert ae.n_iter_ == 6
    ae.set_params(device="cpu")
    assert ae.transform(unit_data).shape == codes.shape
    assert not next(ae.encoder_.parameters()).is_cuda and ae.device_ == "cpu"


def test_a_model_fitted_on_cuda_saves_and_loads(tmp_path, unit_data):
    gpu = Autoencoder(3, max_iter=3, device="cuda", random_state=0).fit(unit_data)
    skae.save(gpu, tmp_path / "m.skae")
    loaded = skae.load(tmp_path / "m.skae")
    np.testing.assert_allclose(loaded.transform(unit_data), gpu.transform(unit_data),
                               rtol=1e-5, atol=1e-6)
    assert loaded.device_.startswith("cuda")  # device="cuda" is a parameter: it goes back


def test_training_data_is_moved_once(unit_data, monkeypatch):
    from skae._training import BatchSource

    source = BatchSource(unit_data, "cuda")
    assert source._tensor.is_cuda  # the whole array, once
    batch = source.take(np.arange(10))
    assert batch.is_cuda


def test_the_sub_pixel_layer_on_cuda_matches_the_cpu():
    from skae._nn import UpsampledConv2d

    generator = torch.Generator().manual_seed(0)
    layer = UpsampledConv2d(3, 1, 3)
    with torch.no_grad():
        for param in layer.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    x = torch.randn(2, 3, 5, 6, generator=generator)
    expected = layer(x).detach()  # the sub-pixel convolution on the CPU
    layer.to("cuda")
    got = layer(x.to("cuda")).detach().cpu()  # upsampling then convolution on the GPU
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    sub_pixel = layer._sub_pixel(x.to("cuda")).detach().cpu()
    torch.testing.assert_close(sub_pixel, expected, rtol=1e-4, atol=1e-4)


def _fit_counting_captures(monkeypatch, make, X, graphs):
    from skae import _training

    captures = []
    capture = _training.GraphedStep._capture
    monkeypatch.setattr(_training, "CUDA_GRAPHS", graphs)
    monkeypatch.setattr(_training.GraphedStep, "_capture",
                        lambda self: captures.append(1) or capture(self))
    return make().fit(X), len(captures)


@pytest.mark.parametrize("make, graphed", [
    (lambda: Autoencoder(3, batch_size=64, max_iter=4, device="cuda", random_state=0), True),
    (lambda: ConvAutoencoder(4, conv_filters=(4,), image_shape=(3, 4), batch_size=64,
                             max_iter=4, device="cuda", random_state=0), True),
    (lambda: SparseAutoencoder(6, batch_size=64, max_iter=4, device="cuda", random_state=0),
     True),
    # draws its noise from a CPU generator: never captured, still trained
    (lambda: DenoisingAutoencoder(3, batch_size=64, max_iter=4, device="cuda",
                                  random_state=0), False),
], ids=["dense", "conv", "sparse", "denoising"])
def test_cuda_graph_replay_trains_as_the_op_by_op_steps(monkeypatch, make, graphed):
    X = np.random.RandomState(0).rand(1000, 12).astype(np.float32)  # 15 full batches + 40
    replayed, captures = _fit_counting_captures(monkeypatch, make, X, graphs=True)
    eager, no_captures = _fit_counting_captures(monkeypatch, make, X, graphs=False)
    assert (captures == 1, no_captures) == (graphed, 0)  # one capture serves every epoch
    np.testing.assert_allclose(replayed.loss_curve_, eager.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(replayed.transform(X), eager.transform(X), rtol=1e-4,
                               atol=1e-5)


def test_cuda_graph_replay_with_partial_fit_and_early_stopping(monkeypatch):
    X = np.random.RandomState(1).rand(1000, 12).astype(np.float32)

    def make():
        return Autoencoder(3, batch_size=64, early_stopping=True, max_iter=6,
                           n_iter_no_change=2, device="cuda", random_state=0)

    fits = {}
    for graphs in (True, False):
        monkeypatch.setattr(skae._training, "CUDA_GRAPHS", graphs)
        fitted = make().fit(X)
        fitted.partial_fit(X).partial_fit(X)  # a new trainer, and capture, per call
        fits[graphs] = fitted
    np.testing.assert_allclose(fits[True].loss_curve_, fits[False].loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(fits[True].validation_scores_, fits[False].validation_scores_,
                               rtol=1e-5)
    np.testing.assert_allclose(fits[True].transform(X), fits[False].transform(X), rtol=1e-4,
                               atol=1e-5)
