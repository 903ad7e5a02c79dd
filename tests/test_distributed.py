"""Data-parallel training with torch.distributed (gloo): 2 local processes against 1."""

import copy
import os
import pickle
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae.distributed import data_parallel

# (estimator, params) pairs trained in each process; random_state=None checks the seed sharing
# (the ranks would otherwise build and shuffle differently)
CONFIGS = [
    (Autoencoder, dict(n_components=8, batch_size=64, max_iter=4, random_state=0)),
    (SparseAutoencoder, dict(n_components=16, batch_size=50, max_iter=3, early_stopping=True,
                             random_state=0)),
    (ConvAutoencoder, dict(conv_filters=(4, 4), batch_size=64, max_iter=3, random_state=0)),
    (Autoencoder, dict(n_components=4, max_iter=1, random_state=None)),
    # random draws in every step: each process must draw what one process draws for its rows
    (DenoisingAutoencoder, dict(n_components=8, noise="masking", batch_size=64, max_iter=2,
                                random_state=0)),
    (VariationalAutoencoder, dict(n_components=2, hidden_layer_sizes=(16,), batch_size=64,
                                  max_iter=2, random_state=0)),
    (ContractiveAutoencoder, dict(n_components=4, hidden_layer_sizes=(8,), jacobian="projection",
                                  batch_size=64, max_iter=2, random_state=0)),
    # mixed precision: each process's slice gradients are rounded through bfloat16 apart
    (Autoencoder, dict(n_components=8, hidden_layer_sizes=(32,), batch_size=64, max_iter=3,
                       random_state=0, precision="bfloat16")),
]


def _train_in_group(rank, world_size, init_file, X, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size,
                            timeout=timedelta(seconds=60))  # a hang fails within a minute
    try:
        with data_parallel():
            models = [cls(**params).fit(X) for cls, params in CONFIGS]
            errors = []
            fitted = models[0]
            n_iter = fitted.n_iter_
            for model, method, data in [  # every process must pass the same X; enough rows
                    (Autoencoder(4, max_iter=1), "fit", X[: len(X) - rank]),
                    (Autoencoder(2, batch_size=1, max_iter=1), "fit", X[:4]),
                    (Autoencoder(4), "partial_fit", X[:1]),
                    (fitted, "partial_fit", X[:1]),
                    # data that only one process refuses: the other must not wait for it
                    (Autoencoder(4, max_iter=1), "fit", X if rank == 0 else X + np.nan),
                    (Autoencoder(4, max_iter=1, early_stopping=True, validation_fraction=0.5),
                     "fit", X[:4 - 3 * rank]),
                    (fitted, "partial_fit", X if rank == 0 else X[:, :-1]),
                    # a validation split that leaves one training row for two processes
                    (Autoencoder(2, max_iter=1, early_stopping=True, validation_fraction=0.5),
                     "fit", X[:2]),
                    # the same X, split otherwise for validation in each process
                    (Autoencoder(2, max_iter=1, early_stopping=True,
                                 validation_fraction=0.1 + 0.1 * rank), "fit", X[:100]),
                    # X of the same sizes but other values
                    (Autoencoder(2, max_iter=1), "fit", X if rank == 0 else 1 - X),
                    # a parameter, or a device, that only process 1 refuses
                    (copy.deepcopy(fitted).set_params(batch_size=1 - rank), "partial_fit", X),
                    (copy.deepcopy(fitted).set_params(device="tpu" if rank else "cpu"),
                     "partial_fit", X),
                    # one that sklearn's _fit_context checks before fit begins
                    (Autoencoder(2, max_iter=1, learning_rate_init=-1.0 if rank else 1e-3),
                     "fit", X)]:
                was_fitted = hasattr(model, "encoder_")
                try:
                    getattr(model, method)(data)
                except Exception as exc:  # refused before the model changed
                    errors.append((f"{type(exc).__name__}: {exc}",
                                   not was_fitted and hasattr(model, "encoder_")))
            errors.append(fitted.n_iter_ == n_iter)
            # a first batch of exactly one row per process trains
            errors.append(Autoencoder(2, batch_size=2, max_iter=1).fit(X[:50]).n_iter_)
        # a group without global rank 0: the seed is that of its own first process
        subgroup = dist.new_group([1])  # every process takes part in making it
        if rank == 1:
            with data_parallel(subgroup):
                alone = Autoencoder(2, max_iter=1, random_state=None).fit(X[:200])
            with open(out_dir / "subgroup.pkl", "wb") as f:
                pickle.dump(alone, f)
        with open(out_dir / f"rank{rank}.pkl", "wb") as f:
            pickle.dump((models, errors), f)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def two_process_models(digits, out_dir):
    X = digits[0][:1000]
    context = mp.spawn(_train_in_group, args=(2, str(out_dir / "init"), X, out_dir),
                       nprocs=2, join=False)
    deadline = time.monotonic() + 300  # a process waiting for one that left would hang
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the data-parallel processes did not finish in 300 s")
    results = []
    for rank in range(2):
        with open(out_dir / f"rank{rank}.pkl", "rb") as f:
            results.append(pickle.load(f))
    return X, results


def _weights(model):
    return [p.detach().numpy() for net in (model.encoder_, model.decoder_)
            for p in net.parameters()]


def test_processes_end_with_identical_models(two_process_models):
    X, [(models_0, _), (models_1, _)] = two_process_models
    for m0, m1 in zip(models_0, models_1):
        for w0, w1 in zip(_weights(m0), _weights(m1)):
            np.testing.assert_array_equal(w0, w1)
        assert m0.loss_curve_ == m1.loss_curve_
        np.testing.assert_array_equal(m0.transform(X), m1.transform(X))


@pytest.mark.parametrize("config", [0, 2, 4, 5, 6],
                         ids=["dense", "conv", "denoising", "variational", "contractive"])
def test_two_processes_take_the_steps_of_one(two_process_models, config):
    # the summed slice gradients are the whole batch's gradient: same trajectory up to rounding
    X, [(models, _), _] = two_process_models
    cls, params = CONFIGS[config]
    single = cls(**params).fit(X)
    np.testing.assert_allclose(models[config].loss_curve_, single.loss_curve_, rtol=1e-4)
    for w_parallel, w_single in zip(_weights(models[config]), _weights(single)):
        np.testing.assert_allclose(w_parallel, w_single, rtol=1e-3, atol=1e-4)


def test_bfloat16_steps_over_two_processes_are_close_to_one_process(two_process_models):
    # not equal: the slices' gradients are rounded apart, then summed in float32
    X, [(models, _), _] = two_process_models
    cls, params = CONFIGS[7]
    single = cls(**params).fit(X)
    np.testing.assert_allclose(models[7].loss_curve_, single.loss_curve_, rtol=1e-3)
    assert models[7].score(X) == pytest.approx(single.score(X), rel=1e-3)


def test_batch_statistics_per_slice_still_train_comparably(two_process_models):
    # the KL sparsity uses each slice's mean activation: close to, not equal to, one process
    X, [(models, _), _] = two_process_models
    cls, params = CONFIGS[1]
    single = cls(**params).fit(X)
    assert models[1].n_iter_ == single.n_iter_ == params["max_iter"]
    assert models[1].best_validation_score_ == pytest.approx(
        single.best_validation_score_, rel=0.05)
    assert models[1].transform(X).mean() == pytest.approx(single.transform(X).mean(), rel=0.1)


def test_bad_data_is_the_same_clear_error_in_every_process(two_process_models):
    _, [(_, errors_0), (_, errors_1)] = two_process_models
    for rank, errors in enumerate((errors_0, errors_1)):  # none waits for the other
        *refused, unchanged, trained = errors
        assert len(refused) == 13 and unchanged and trained == 1
        assert all(message.startswith("ValueError: ") for message, _ in refused[:10])
        assert "the same sizes but other values" in refused[9][0]
        for (message, _), why in zip(refused[10:], ["InvalidParameterError: The "
                                                    "'batch_size' parameter",
                                                    "ValueError: device='tpu'",
                                                    "InvalidParameterError: The "
                                                    "'learning_rate_init' parameter"]):
            assert why in message
            assert message.startswith("ValueError: data-parallel training stopped before "
                                      "it began: process 1") == (rank == 0)
        assert "same X in every process" in refused[0][0]
        for message, _ in refused[1:4] + refused[7:8]:
            assert "at least as many samples in the first batch as processes (2)" in message
        assert "(samples, training samples) = [(100, 90), (100, 80)]" in refused[8][0]
        # process 1 alone refuses its data: it raises its own error, and process 0 one
        # that names it
        for (message, _), why in zip(refused[4:7], ["Input X contains NaN",
                                                    "early_stopping needs at least one",
                                                    "X has 63 features"]):
            assert why in message
            named = message.startswith("ValueError: data-parallel training stopped before it "
                                       "began: process 1 of the group refused")
            assert named == (rank == 0)
        # the refused fits left no half-fitted model behind
        assert not any(half_fitted for _, half_fitted in refused)


def test_a_group_without_global_rank_0_trains(two_process_models, out_dir):
    # its seed is broadcast from its own rank 0 (global rank 1), not from global rank 0
    with open(out_dir / "subgroup.pkl", "rb") as f:
        assert pickle.load(f).n_iter_ == 1


def test_data_parallel_needs_an_initialised_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        with data_parallel():
            pass


def test_the_block_ends_data_parallel_training(digits):
    X = digits[0][:200]
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with data_parallel():
            Autoencoder(2, max_iter=1, random_state=0).fit(X)
        with pytest.raises(ValueError), data_parallel():  # also when the block raises
            Autoencoder(2, max_iter=1).fit(X[:, :0])
    finally:
        dist.destroy_process_group()
    # the group is gone: a fit that still ran data-parallel would fail on it
    assert Autoencoder(2, max_iter=1, random_state=0).fit(X).n_iter_ == 1


def test_the_torchrun_example_trains_over_two_processes(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(root / "examples" / "train_data_parallel.py"),
               "--quick"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 process(es)" in done.stdout and "epoch   2: loss" in done.stdout
