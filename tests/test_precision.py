"""``precision="bfloat16"``: mixed-precision training steps, float32 everywhere else."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

import skae
from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae._base import _check_precision

FACTORIES = {
    "dense": lambda **kw: Autoencoder(16, hidden_layer_sizes=(64,), **kw),
    "conv": lambda **kw: ConvAutoencoder(16, conv_filters=(8, 4), image_shape=(8, 8), **kw),
    "denoising": lambda **kw: DenoisingAutoencoder(16, noise_level=0.2, **kw),
    "sparse": lambda **kw: SparseAutoencoder(32, **kw),
    "contractive": lambda **kw: ContractiveAutoencoder(16, **kw),
    "contractive-exact": lambda **kw: ContractiveAutoencoder(4, hidden_layer_sizes=(16,),
                                                             jacobian="exact", **kw),
    "vae": lambda **kw: VariationalAutoencoder(8, hidden_layer_sizes=(64,), **kw),
}


def _fit(name, X, **kw):
    return FACTORIES[name](**{"batch_size": 64, "max_iter": 15, "random_state": 0, **kw}).fit(X)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_bfloat16_trains_as_well_as_float32(name, digits):
    X_train, X_test = digits
    full = _fit(name, X_train)
    mixed = _fit(name, X_train, precision="bfloat16")
    # it learns as much: a stale bfloat16 copy of the first step's weights would keep the
    # loss flat
    def fall(model):
        return model.loss_curve_[0] - model.loss_curve_[-1]
    assert fall(full) > 0 and fall(mixed) > 0.8 * fall(full)
    # as well as float32, on held-out digits (scores are minus nats per image, about -20)
    assert mixed.score(X_test) == pytest.approx(full.score(X_test), rel=0.03)
    # and not by training in float32: the rounding changes the weights
    assert not np.array_equal(mixed.transform(X_test), full.transform(X_test))


def _dtypes_seen(model, action):
    """``(training, dtype)`` of the outputs of every layer while ``action`` runs: the
    networks are in training mode during training steps only."""
    seen = set()
    layers = [m for net in (model.encoder_, model.decoder_) for m in net.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    handles = [m.register_forward_hook(lambda mod, args, out: seen.add((mod.training, out.dtype)))
               for m in layers]
    try:
        action()
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("name", ["dense", "conv", "vae", "sparse", "contractive"])
def test_only_the_training_steps_run_in_bfloat16(name, digits):
    X = digits[0][:256]
    model = _fit(name, X, max_iter=1, precision="bfloat16")
    # the code's terms (the VAE's draw and KL) and the penalties get a float32 code
    code_dtypes = set()
    for hook in ("_sample_code", "_penalties"):
        def recorded(*args, _hook=getattr(model, hook)):
            code_dtypes.add(args[-2].dtype)  # (..., encoded, generator)
            return _hook(*args)
        setattr(model, hook, recorded)
    # training steps in bfloat16, the pass for sample's code statistics in float32
    seen = _dtypes_seen(model, lambda: model.partial_fit(X))
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    assert {dtype for training, dtype in seen if not training} <= {torch.float32}
    assert code_dtypes == {torch.float32}
    for hook in ("_sample_code", "_penalties"):
        delattr(model, hook)
    for action in (lambda: model.transform(X), lambda: model.score(X),
                   lambda: model.inverse_transform(model.transform(X)),
                   lambda: model.sample(3, random_state=0)):
        assert all(dtype != torch.bfloat16 for _, dtype in _dtypes_seen(model, action))
    assert model.transform(X).dtype == np.float32
    assert all(p.dtype == torch.float32 for net in (model.encoder_, model.decoder_)
               for p in net.parameters())
    state = model._optimizer_state[1]["state"]
    assert all(t.dtype == torch.float32 for s in state.values() for t in s.values()
               if t.dim())
    # float32 training steps by default, on the same network
    seen = _dtypes_seen(model.set_params(precision="float32"), lambda: model.partial_fit(X))
    assert (True, torch.float32) in seen and (True, torch.bfloat16) not in seen


def test_bfloat16_fits_are_reproducible(digits):
    X = digits[0][:500]
    first = _fit("conv", X, max_iter=3, precision="bfloat16")
    second = _fit("conv", X, max_iter=3, precision="bfloat16")
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


def test_the_callers_autocast_does_not_change_a_bfloat16_fit(digits):
    X = digits[0][:500]
    plain = _fit("dense", X, max_iter=3, precision="bfloat16")
    with torch.autocast("cpu", dtype=torch.float16):
        inside = _fit("dense", X, max_iter=3, precision="bfloat16")
    assert inside.loss_curve_ == plain.loss_curve_
    np.testing.assert_array_equal(inside.transform(X), plain.transform(X))


def test_save_and_load_keep_bfloat16_and_files_at_the_default_stay_readable(digits,
                                                                             tmp_path):
    X = digits[0][:500]
    model = _fit("dense", X, max_iter=2, precision="bfloat16")
    skae.save(model, tmp_path / "model.skae")
    loaded = skae.load(tmp_path / "model.skae")
    assert loaded.precision == "bfloat16"
    assert (True, torch.bfloat16) in _dtypes_seen(loaded, lambda: loaded.partial_fit(X))
    assert loaded.n_iter_ == 3
    # at the default the file has no "precision", as files written before it existed:
    # skae from before then reads it, and this skae reads such files as float32
    skae.save(loaded.set_params(precision="float32"), tmp_path / "default.skae")
    with safe_open(tmp_path / "default.skae", "np") as f:
        assert "precision" not in json.loads(f.metadata()["params"])
    assert skae.load(tmp_path / "default.skae").precision == "float32"


def test_a_model_pickled_before_precision_existed_reads_as_float32(digits):
    model = _fit("dense", digits[0][:200], max_iter=1)
    state = model.__getstate__()
    del state["precision"]
    old = Autoencoder.__new__(Autoencoder)
    old.__setstate__(state)
    assert old.get_params()["precision"] == "float32"
    assert clone(old).precision == "float32"
    old.partial_fit(digits[0][:200])
    assert old.n_iter_ == 2


def test_fit_refuses_bfloat16_on_a_device_without_it(digits, monkeypatch):
    X = digits[0][:200]
    model = _fit("dense", X, max_iter=1)
    before = model.transform(X)
    monkeypatch.setattr(skae._base, "_resolve_device", lambda device: "mps")
    for call in (lambda: model.set_params(precision="bfloat16").partial_fit(X),
                 lambda: Autoencoder(4, precision="bfloat16").fit(X)):
        with pytest.raises(ValueError, match="precision='bfloat16' needs device 'cpu'"):
            call()
    monkeypatch.undo()
    assert model.n_iter_ == 1
    np.testing.assert_array_equal(model.transform(X), before)


@pytest.mark.parametrize("precision", ["float16", "bf16", None])
def test_an_unknown_precision_is_refused(precision, digits):
    with pytest.raises(InvalidParameterError, match="precision"):
        Autoencoder(4, precision=precision).fit(digits[0][:50])


def test_bfloat16_needs_a_device_with_bfloat16_autocast(monkeypatch):
    _check_precision("float32", "mps")  # float32 needs nothing
    _check_precision("bfloat16", "cpu")
    with pytest.raises(ValueError, match="precision='bfloat16' needs device 'cpu' or 'cuda'"):
        _check_precision("bfloat16", "mps")
    capabilities = {"cuda:0": (8, 0), "cuda:1": (7, 5)}  # an A100 beside a T4
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: capabilities[d])
    _check_precision("bfloat16", "cuda:0")
    with pytest.raises(ValueError, match="the GPU 'cuda:1' has no bfloat16 arithmetic .*"
                                         "precision='float32' or device='cpu'"):
        _check_precision("bfloat16", "cuda:1")
