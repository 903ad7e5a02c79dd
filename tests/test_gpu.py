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


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 0),
                    reason="needs a GPU with bfloat16 arithmetic")
@pytest.mark.parametrize("make", [
    lambda: Autoencoder(3, hidden_layer_sizes=(64,), batch_size=64, max_iter=4,
                        device="cuda", random_state=0, precision="bfloat16"),
    lambda: ConvAutoencoder(4, conv_filters=(4,), image_shape=(3, 4), batch_size=64,
                            max_iter=4, device="cuda", random_state=0, precision="bfloat16"),
], ids=["dense", "conv"])
def test_bfloat16_on_cuda_trains_and_replays_from_a_graph(monkeypatch, make):
    X = np.random.RandomState(0).rand(1000, 12).astype(np.float32)
    replayed, captures = _fit_counting_captures(monkeypatch, make, X, graphs=True)
    eager, _ = _fit_counting_captures(monkeypatch, make, X, graphs=False)
    assert captures == 1
    assert replayed.loss_curve_[-1] < replayed.loss_curve_[0]
    np.testing.assert_allclose(replayed.loss_curve_, eager.loss_curve_, rtol=1e-3)
    full = make().set_params(precision="float32").fit(X)
    np.testing.assert_allclose(replayed.loss_curve_, full.loss_curve_, rtol=0.05)
    assert not np.array_equal(replayed.transform(X), full.transform(X))  # not float32 steps
    assert replayed.transform(X).dtype == np.float32
    seen = set()
    layer = next(m for m in eager.encoder_.modules() if isinstance(m, (torch.nn.Linear,
                                                                        torch.nn.Conv2d)))
    layer.register_forward_hook(lambda mod, args, out: seen.add((mod.training, out.dtype)))
    eager.partial_fit(X)  # op by op: the hook sees the training steps
    assert (True, torch.bfloat16) in seen and (True, torch.float32) not in seen


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


def test_cuda_is_pinned_to_the_current_device(unit_data):
    current = f"cuda:{torch.cuda.current_device()}"
    ae = Autoencoder(3, max_iter=1, device="cuda").fit(unit_data)
    assert ae.device_ == current
    assert Autoencoder(3, max_iter=1, device="auto").fit(unit_data).device_ == current
    ae.set_params(device=current).transform(unit_data)  # one device by two names: no move
    assert ae.device_ == current


def test_the_data_stays_on_the_host_without_headroom(unit_data, monkeypatch):
    from skae._training import BatchSource

    _, total = torch.cuda.mem_get_info()
    cpu = Autoencoder(3, max_iter=3, random_state=0).fit(unit_data)
    for name in ("memory_reserved", "memory_allocated"):  # nothing held by torch's allocator
        monkeypatch.setattr(torch.cuda, name, lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info",
                        lambda device=None: (unit_data.nbytes // 2, total))  # too little
    source = BatchSource(unit_data, "cuda")
    assert not source.on_gpu and source.take(np.arange(10)).is_cuda  # batch by batch
    gpu = Autoencoder(3, max_iter=3, random_state=0, device="cuda").fit(unit_data)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-3)
    monkeypatch.setattr(torch.cuda, "mem_get_info",
                        lambda device=None: (2 * unit_data.nbytes, total))  # enough
    assert BatchSource(unit_data, "cuda").on_gpu


def test_a_model_moved_between_epochs_trains_as_one_fit(unit_data):
    # Adam's step counts move with the model (fused: float32 on the parameters' device)
    ae = Autoencoder(3, max_iter=3, warm_start=True, random_state=0).fit(unit_data)
    ae.set_params(device="cuda").fit(unit_data)
    steps = [s["step"] for s in ae._optimizer_state[1]["state"].values()]
    assert all(s.is_cuda and s.dtype == torch.float32 and s.item() == 6 for s in steps)
    ae.set_params(device="cpu", max_iter=2).fit(unit_data)
    reference = Autoencoder(3, max_iter=8, random_state=0).fit(unit_data)
    np.testing.assert_allclose(ae.loss_curve_, reference.loss_curve_, rtol=1e-3)


def _networks(model):
    return [p for net in (model.encoder_, model.decoder_) for p in net.parameters()]


def test_a_graphed_fit_leaves_no_gradients_and_counts_its_steps():
    X = np.random.RandomState(0).rand(1000, 12).astype(np.float32)  # 15 full batches + 40
    ae = Autoencoder(3, batch_size=64, max_iter=2, warm_start=True, device="cuda",
                     random_state=0).fit(X)
    assert all(p.grad is None for p in _networks(ae))
    steps = [s["step"].item() for s in ae._optimizer_state[1]["state"].values()]
    assert steps == [2 * 16] * len(steps)  # every replay counted, once
    ae.fit(X)  # and it captures afresh and goes on as op by op
    skae._training.CUDA_GRAPHS = False
    try:
        eager = Autoencoder(3, batch_size=64, max_iter=4, device="cuda", random_state=0).fit(X)
    finally:
        skae._training.CUDA_GRAPHS = True
    np.testing.assert_allclose(ae.loss_curve_, eager.loss_curve_, rtol=1e-5)


@pytest.mark.parametrize("error", [KeyboardInterrupt, torch.cuda.OutOfMemoryError])
def test_a_graphed_epoch_cut_short_is_undone(monkeypatch, error):
    X = np.random.RandomState(0).rand(1000, 12).astype(np.float32)
    params = dict(batch_size=64, warm_start=True, device="cuda", random_state=0)
    replay = torch.cuda.CUDAGraph.replay
    replays = {"n": 0}

    def failing_replay(graph):  # epoch 1 replays 12 steps (3 warm up): the 5th of epoch 2
        replays["n"] += 1
        if replays["n"] == 12 + 5:
            raise error("cut short")
        return replay(graph)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", failing_replay)
    ae = Autoencoder(3, max_iter=3, **params)
    if error is KeyboardInterrupt:
        with pytest.warns(UserWarning, match="interrupted"):
            ae.fit(X)
    else:
        with pytest.raises(error):
            ae.fit(X)
    monkeypatch.undo()
    one = Autoencoder(3, max_iter=1, **params).fit(X)
    assert ae.n_iter_ == 1
    for got, expected in zip(_networks(ae), _networks(one)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for got, expected in zip(ae._optimizer_state[1]["state"].values(),
                             one._optimizer_state[1]["state"].values()):
        assert got["step"].item() == expected["step"].item() == 16
        torch.testing.assert_close(got["exp_avg_sq"], expected["exp_avg_sq"], rtol=0, atol=0)
    ae.set_params(max_iter=2).fit(X)
    three = Autoencoder(3, max_iter=3, **params).fit(X)
    np.testing.assert_allclose(ae.loss_curve_, three.loss_curve_, rtol=1e-5)
