"""Inference paths: the decoder's code scale, float64 inference, inference batch sizes
(from a mutation audit: each test fails on a one-line bug that no other test caught)."""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

import skae._base
from skae import Autoencoder, ConvAutoencoder, VariationalAutoencoder
from skae._nn import Architecture, build_networks


def test_decoder_code_scale_is_on_its_first_layer_only():
    """Kills: effective_weights scaling another layer's weights than the first."""
    arch = Architecture(n_features=6, code_width=3, code_size=3, hidden_layer_sizes=(5,),
                        code_scale=10.0)
    _, decoder = build_networks(arch, torch.Generator().manual_seed(0))
    weights = [p for p in decoder.parameters() if p.dim() >= 2]
    assert len(weights) == 2
    effective = decoder.effective_weights()
    torch.testing.assert_close(effective[0], 10.0 * weights[0])
    torch.testing.assert_close(effective[1], weights[1])
    # and the forward pass reads the code through exactly those weights
    code = torch.randn(4, 3)
    first, act, last = decoder
    with torch.no_grad():
        expected = last(act(code @ effective[0].T + first.bias))
        torch.testing.assert_close(decoder(code), expected)


def test_float64_inference_resolves_changes_below_float32_precision(tabular_data):
    """Kills: float64 X silently computed by the float32 networks (cast in, cast out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(3, hidden_layer_sizes=(8,), activation="tanh",
                         code_activation="tanh", max_iter=3, random_state=0).fit(tabular_data)
    X = tabular_data[:20].astype(np.float32).astype(np.float64)  # float32 values
    nudged = X * (1 + 1e-9)  # float32 rounds these back to X
    assert np.array_equal(X.astype(np.float32), nudged.astype(np.float32))
    Z = ae.transform(X)
    assert Z.dtype == np.float64 and not np.array_equal(Z, ae.transform(nudged))
    assert not np.array_equal(ae.inverse_transform(Z), ae.inverse_transform(Z + 1e-10))
    assert not np.array_equal(ae.score_samples(X), ae.score_samples(nudged))


def test_inference_batches_keep_every_layer_within_the_value_budget(monkeypatch):
    """Kills: the inference batch size computed from the wrong layer (ignoring the conv
    stages, or the narrowest layer instead of the widest)."""
    X = np.random.RandomState(0).rand(50, 64).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = ConvAutoencoder(conv_filters=(4, 2), max_iter=1, random_state=0).fit(X)
    widest = 4 * 8 * 8  # the first conv stage's output, per row
    budget = 10 * widest
    monkeypatch.setattr(skae._base, "_INFERENCE_VALUES", budget)
    seen, handles = [], []
    for net in (ae.encoder_, ae.decoder_):
        for module in net.modules():
            if not list(module.children()):
                handles.append(module.register_forward_hook(
                    lambda m, inputs, output: seen.append(output.numel())))
    try:
        expected = ae.transform(X)
        codes = ae._map_rows(X, lambda x: ae._code(ae.encoder_(ae._scaler(x, "normalize"))))
        ae.inverse_transform(expected)
        ae.score_samples(X)
    finally:
        for handle in handles:
            handle.remove()
    assert max(seen) == budget  # full batches of 10 rows: within the budget, not below
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)


def test_inference_batches_count_an_overcomplete_code(unit_data, monkeypatch):
    # the code layer can be the widest (12 features, 40 code units; a VAE's encoder
    # outputs twice its code size): its values count against the budget too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(40, max_iter=1, random_state=0).fit(unit_data)
        vae = VariationalAutoencoder(40, hidden_layer_sizes=(8,), max_iter=1,
                                     random_state=0).fit(unit_data)
    monkeypatch.setattr(skae._base, "_INFERENCE_VALUES", 10 * 80)
    assert ae._inference_batch_size() == 20
    assert vae._inference_batch_size() == 10



def test_importing_skae_and_transforming_a_loaded_model_make_no_optimizer(tmp_path):
    # any torch optimizer imports torch._dynamo (about a second): import skae, and a process
    # that only loads a model and transforms (a server, a joblib worker), need not pay it
    import subprocess
    import sys

    X = np.random.RandomState(0).rand(50, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        skae.save(Autoencoder(2, max_iter=1, random_state=0).fit(X), tmp_path / "m.skae")
    code = ("import sys, numpy as np, skae\n"
            "imported = 'torch._dynamo' in sys.modules\n"
            f"skae.load({str(tmp_path / 'm.skae')!r}).transform(np.random.rand(5, 6))\n"
            "print(imported, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.split() == ["False", "False"]
