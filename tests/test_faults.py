"""Faults that must lose nothing: a real SIGINT, or an error, in the middle of an epoch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# The child trains; a thread sends the process a real SIGINT in the middle of epoch 3 (after
# the 5th batch of that epoch has started), as Ctrl-C in a terminal does.
CHILD = textwrap.dedent("""
    import json, os, signal, threading, warnings
    import numpy as np
    from skae import {cls}
    from skae import _training

    X = np.random.RandomState(0).rand(2000, 20).astype(np.float32)
    params = dict(batch_size=50, random_state=0, {params})
    started = threading.Event()
    original = _training.Trainer.batch_step
    calls = {{"n": 0}}

    def batch_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 40 + 5:   # 40 batches per epoch: the 5th batch of epoch 3
            started.set()
        return original(self, batch)

    _training.Trainer.batch_step = batch_step

    def interrupt():
        started.wait()
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, even where the launcher ignores SIGINT (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = {cls}(max_iter=50, **params).fit(X)
    _training.Trainer.batch_step = original
    reference = {cls}(max_iter=2, **params).fit(X)
    same = all(
        np.array_equal(a.detach().numpy(), b.detach().numpy())
        for net, ref in ((model.encoder_, reference.encoder_), (model.decoder_, reference.decoder_))
        for a, b in zip(net.parameters(), ref.parameters()))
    model.set_params(warm_start=True, max_iter=1).fit(X)   # and it can go on training
    print(json.dumps({{
        "warnings": [str(w.message) for w in caught],
        "n_iter": model.n_iter_ - 1,
        "batches_run": calls["n"],
        "same_as_two_epochs": same,
        "finite_codes": bool(np.isfinite(model.transform(X)).all()),
        "continued_curve": model.loss_curve_[:2] == reference.loss_curve_,
    }}))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to self needs POSIX signals")
@pytest.mark.parametrize("cls, params", [
    ("Autoencoder", "n_components=4"),
    ("VariationalAutoencoder", "n_components=2, hidden_layer_sizes=(16,)"),
])
def test_sigint_mid_epoch_keeps_the_last_complete_epoch_and_warns(cls, params):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", CHILD.format(cls=cls, params=params)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert any("interrupted" in w for w in result["warnings"])
    assert 2 * 40 + 5 <= result["batches_run"] < 3 * 40  # it really stopped mid-epoch 3
    assert result["n_iter"] == 2
    assert result["same_as_two_epochs"]  # the weights of the last complete epoch, exactly
    assert result["finite_codes"]
    assert result["continued_curve"]


class _OutOfMemory(RuntimeError):
    pass


def _params(model):
    return [p.detach().clone() for net in (model.encoder_, model.decoder_)
            for p in net.parameters()]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_an_error_mid_epoch_keeps_the_last_complete_epoch_and_its_optimizer_state(
        monkeypatch, solver):
    from skae import Autoencoder, _training

    X = np.random.RandomState(0).rand(400, 12).astype(np.float32)
    params = dict(n_components=3, batch_size=50, solver=solver, random_state=0)
    original = _training.Trainer.batch_step
    calls = {"n": 0}

    def batch_step(self, batch):  # fails in the 5th batch of epoch 3 (8 batches an epoch)
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 5:
            raise _OutOfMemory("out of memory")
        return original(self, batch)

    monkeypatch.setattr(_training.Trainer, "batch_step", batch_step)
    model = Autoencoder(max_iter=5, warm_start=True, **params)
    with pytest.raises(_OutOfMemory):  # the error itself, unchanged
        model.fit(X)
    monkeypatch.undo()
    two = Autoencoder(max_iter=2, **params).fit(X)
    assert model.n_iter_ == 2 and model.loss_curve_ == two.loss_curve_
    for got, expected in zip(_params(model), _params(two)):
        assert torch.equal(got, expected)  # no half-done epoch
    # the optimizer state went with them: going on trains as an uninterrupted fit does
    model.set_params(max_iter=2).fit(X)
    four = Autoencoder(max_iter=4, **params).fit(X)
    assert model.loss_curve_ == four.loss_curve_
    for got, expected in zip(_params(model), _params(four)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_an_error_mid_epoch_with_early_stopping_keeps_the_best_epoch_as_ctrl_c_does(
        monkeypatch):
    from skae import Autoencoder, _base, _training

    X = np.random.RandomState(0).rand(400, 12).astype(np.float32)
    original_step, original_record = _training.Trainer.batch_step, _training.TrainingState.record
    calls = {"n": 0}
    epochs = []  # the weights at the end of each complete epoch

    def batch_step(self, batch):  # 360 training rows, 8 batches an epoch: the 5th of epoch 3
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 5:
            raise _OutOfMemory("out of memory")
        return original_step(self, batch)

    def record(state, terms, score=None):
        original_record(state, terms, score)
        epochs.append(_params(model))

    scores = iter([-1.0, -2.0])  # epoch 1 scores best, epoch 2 is the last complete one
    monkeypatch.setattr(_training.Trainer, "batch_step", batch_step)
    monkeypatch.setattr(_training.TrainingState, "record", record)
    monkeypatch.setattr(_base.BaseAutoencoder, "_validation_score",
                        lambda self, source, rows: next(scores))
    model = Autoencoder(n_components=3, batch_size=50, early_stopping=True, max_iter=5,
                        random_state=0)
    with pytest.raises(_OutOfMemory):
        model.fit(X)
    assert model.n_iter_ == len(epochs) == 2 and model.validation_scores_ == [-1.0, -2.0]
    assert not all(torch.equal(a, b) for a, b in zip(epochs[0], epochs[1]))
    for got, expected in zip(_params(model), epochs[0]):
        assert torch.equal(got, expected)  # the best epoch, not a half-done one


def test_ctrl_c_once_an_epoch_is_recorded_keeps_that_epoch(monkeypatch):
    from skae import Autoencoder, _training

    X = np.random.RandomState(0).rand(400, 12).astype(np.float32)
    params = dict(n_components=3, batch_size=50, random_state=0)

    def report(state, *args):  # Ctrl-C while epoch 2's line is printed
        if state.n_iter == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_training, "_report", report)
    with pytest.warns(UserWarning, match="interrupted"):
        model = Autoencoder(max_iter=5, verbose=1, **params).fit(X)
    monkeypatch.undo()
    two = Autoencoder(max_iter=2, **params).fit(X)
    assert model.n_iter_ == 2 and model.loss_curve_ == two.loss_curve_
    for got, expected in zip(_params(model), _params(two)):
        assert torch.equal(got, expected)  # epoch 2, counted, is kept


def test_a_first_fit_cut_short_by_an_error_says_why_sample_cannot_draw(monkeypatch):
    from sklearn.exceptions import NotFittedError

    from skae import Autoencoder, _training
    from skae.plotting import ManifoldDisplay

    X = np.random.RandomState(0).rand(400, 16).astype(np.float32)
    original = _training.Trainer.batch_step
    calls = {"n": 0}

    def batch_step(self, batch):  # the 5th batch of epoch 3
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 5:
            raise _OutOfMemory("out of memory")
        return original(self, batch)

    monkeypatch.setattr(_training.Trainer, "batch_step", batch_step)
    model = Autoencoder(2, batch_size=50, max_iter=5, random_state=0)
    with pytest.raises(_OutOfMemory):
        model.fit(X)
    monkeypatch.undo()
    assert model.transform(X).shape == (400, 2)  # the weights of epoch 2 encode
    for draw in (lambda: model.sample(3), lambda: ManifoldDisplay.from_estimator(model)):
        with pytest.raises(NotFittedError, match="stopped with an error.*fit or partial_fit"):
            draw()
    assert model.partial_fit(X).sample(3).shape == (3, 16)  # gathered once training goes on


@pytest.mark.parametrize("first", [True, False, "refit"])
def test_ctrl_c_in_the_code_statistics_pass_leaves_whole_statistics(monkeypatch, first):
    # the pass after training pooled block by block into the model: cut short, sample drew
    # from the codes of part of X
    from sklearn.exceptions import NotFittedError

    from skae import Autoencoder, _base

    X = np.random.RandomState(0).rand(3 * _base.INFERENCE_BATCH, 4).astype(np.float32)
    model = Autoencoder(2, max_iter=1, random_state=0)
    if first is not True:
        model.fit(X[:100])
    before = getattr(model, "_code_stats", None)
    original, calls = _base._gram, {"n": 0}

    def gram(a):  # Ctrl-C in the second block of the pass
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(a)

    monkeypatch.setattr(_base, "_gram", gram)
    with pytest.raises(KeyboardInterrupt):
        if first == "refit":  # a new network: the old one's statistics do not describe it
            model.set_params(n_components=3).fit(X)
        else:
            model.partial_fit(X)
    monkeypatch.undo()
    if first is False:
        assert model._code_stats is before  # those of the last whole pass
    else:
        with pytest.raises(NotFittedError, match="stopped with an error before the code"):
            model.sample(1)


def test_ctrl_c_while_a_warm_start_scores_its_starting_weights_stops_as_training_does(
        monkeypatch):
    # the score of the starting weights came before the guarded epochs: a raw
    # KeyboardInterrupt left fit, where the README promises a warning
    from skae import Autoencoder

    X = np.random.RandomState(0).rand(300, 12).astype(np.float32)
    model = Autoencoder(3, max_iter=2, early_stopping=True, warm_start=True,
                        random_state=0).fit(X)
    before, n_iter = _params(model), model.n_iter_

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(model), "_validation_score", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        try:
            model.fit(X)
        except KeyboardInterrupt:  # not to pytest, which would stop the whole run
            pytest.fail("Ctrl-C while scoring the starting weights escaped fit")
    monkeypatch.undo()
    assert model.n_iter_ == n_iter
    for got, expected in zip(_params(model), before):
        assert torch.equal(got, expected)
