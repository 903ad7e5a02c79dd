"""skae on a dask.distributed cluster: GridSearchCV under joblib's dask backend, estimators
shipped to worker processes and back, one torch thread per worker.

The cluster is a LocalCluster of 2 worker processes (one thread each) on loopback, started
once for the module. Dask is an optional extra (``pip install -e ".[dask]"``); without it
the module is skipped.
"""

import importlib
import os
import warnings
from operator import methodcaller

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skae import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae.metrics import reconstruction_r2_scorer

distributed = pytest.importorskip("distributed")

# Thread settings the test process inherited, read before any Nanny writes its
# pre-spawn environment (OMP_NUM_THREADS=1, ...) into this process's os.environ.
_INHERITED_THREADS = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                      if k in os.environ}


@pytest.fixture(scope="module")
def client():
    environ = dict(os.environ)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(importlib.import_module, "skae")  # both workers import torch at once
        # short fits stop at max_iter; quiet them on the workers as conftest does here
        client.run(warnings.simplefilter, "ignore", ConvergenceWarning)
        yield client
    # each Nanny also set its pre-spawn variables in this process; later tests'
    # subprocesses should not inherit them
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    os.environ.update(environ)


@pytest.fixture(scope="module")
def X():
    """240 of the 8x8 digits in [0, 1] (float32)."""
    return (load_digits().data[:240] / 16.0).astype(np.float32)


def _searches():
    own_score = GridSearchCV(
        Autoencoder(max_iter=4, batch_size=32, random_state=0),
        {"n_components": [4, 12], "learning_rate_init": [1e-3, 1e-2]}, cv=2)
    pipeline = GridSearchCV(
        Pipeline([("scale", MinMaxScaler()), ("reduce", PCA())]),
        {"reduce": [PCA(), Autoencoder(max_iter=4, batch_size=32, random_state=0),
                    VariationalAutoencoder(hidden_layer_sizes=(16,), max_iter=4, batch_size=32,
                                           random_state=0)],
         "reduce__n_components": [2, 6]},
        scoring=reconstruction_r2_scorer, cv=2)
    return {"own score": own_score, "pipeline, r2 scorer": pipeline}


@pytest.mark.parametrize("case", list(_searches()))
def test_grid_search_on_dask_matches_the_local_search(client, X, case):
    local = clone(_searches()[case]).set_params(n_jobs=1).fit(X)
    search = _searches()[case]
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        search.fit(X)

    # the fits ran as tasks on the two worker processes, not in this one
    workers = set(client.scheduler_info()["workers"])
    assert len(tasks.data) >= 1
    assert {task["worker"] for task in tasks.data} <= workers
    assert client.run(os.getpid).keys() == workers
    assert os.getpid() not in client.run(os.getpid).values()

    n_splits = search.n_splits_
    assert repr(search.cv_results_["params"]) == repr(local.cv_results_["params"])
    for key in ["mean_test_score"] + [f"split{i}_test_score" for i in range(n_splits)]:
        np.testing.assert_allclose(search.cv_results_[key], local.cv_results_[key], rtol=1e-5)
        assert np.isfinite(search.cv_results_[key]).all()
    assert search.best_params_.keys() == local.best_params_.keys()
    assert search.best_index_ == local.best_index_


# tiny settings: 8x8 digits, a few epochs
FACTORIES = {
    "Autoencoder": lambda: Autoencoder(4, hidden_layer_sizes=(16,)),
    "ConvAutoencoder": lambda: ConvAutoencoder(conv_filters=(4, 2)),
    "DenoisingAutoencoder": lambda: DenoisingAutoencoder(4, noise="masking", noise_level=0.2),
    "SparseAutoencoder": lambda: SparseAutoencoder(16),
    "ContractiveAutoencoder": lambda: ContractiveAutoencoder(4, jacobian="projection"),
    "VariationalAutoencoder": lambda: VariationalAutoencoder(2, hidden_layer_sizes=(16,)),
}


class _one_torch_thread:
    """Compute here with the workers' one thread, so results can be compared bit for bit."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_models_travel_to_workers_and_back_intact(client, X, name):
    est = FACTORIES[name]().set_params(max_iter=3, batch_size=32, random_state=0)
    with _one_torch_thread():
        local = clone(est).fit(X)
        # an unfitted model goes to a worker, is fitted and used there, and comes back
        remote = client.submit(clone(est).fit, X, pure=False)
        code_there = client.submit(methodcaller("transform", X), remote, pure=False)
        score_there = client.submit(methodcaller("score_samples", X), remote, pure=False)
        code_there, score_there, back = client.gather([code_there, score_there, remote])
        # a model fitted here goes to a worker and transforms there
        sent = client.gather([client.submit(local.transform, X, pure=False),
                              client.submit(local.inverse_transform, local.transform(X),
                                            pure=False)])

        assert type(back) is type(local) and back is not local
        assert back.get_params() == local.get_params()
        assert back.n_iter_ == local.n_iter_ == 3
        assert back.loss_curve_ == local.loss_curve_
        for a, b in zip(back.encoder_.state_dict().values(), local.encoder_.state_dict().values()):
            assert torch.equal(a, b)
        code = local.transform(X)
        np.testing.assert_array_equal(code_there, code)
        np.testing.assert_array_equal(back.transform(X), code)
        np.testing.assert_array_equal(back.inverse_transform(code), local.inverse_transform(code))
        np.testing.assert_array_equal(score_there, local.score_samples(X))
        np.testing.assert_array_equal(back.score_samples(X), local.score_samples(X))
        np.testing.assert_array_equal(sent[0], code)
        np.testing.assert_array_equal(sent[1], local.inverse_transform(code))
    # with this process's default threads the models still agree closely
    np.testing.assert_allclose(back.transform(X), local.transform(X), rtol=1e-5, atol=1e-6)


def test_each_worker_runs_torch_on_one_thread(client, X):
    if any(value != "1" for value in _INHERITED_THREADS.values()):
        pytest.skip(f"the test process sets {_INHERITED_THREADS}; dask workers inherit that "
                    "in place of dask's default of 1")
    workers = list(client.scheduler_info()["workers"])
    assert len(workers) == 2
    # dask's Nanny sets OMP_NUM_THREADS=1 (config distributed.nanny.pre-spawn-environ)
    # before it spawns a worker, and torch takes its default thread count from it
    assert set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
    assert set(client.run(torch.get_num_threads).values()) == {1}
    # the same in the worker's task thread, after a fit there (skae does not change it)
    for worker in workers:
        fit = client.submit(Autoencoder(4, max_iter=1, random_state=0).fit, X,
                            workers=[worker], pure=False)
        fit.result()
        assert client.submit(torch.get_num_threads, workers=[worker], pure=False).result() == 1
