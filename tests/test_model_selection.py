"""skae inside scikit-learn's model selection: GridSearchCV, Pipeline, clone, cross_val_score,
joblib workers."""

import os

import numpy as np
import pytest
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from skae import Autoencoder


def test_grid_search_swaps_pca_and_an_autoencoder_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    X = X / 16
    pipe = Pipeline([("reduce", PCA()), ("clf", LogisticRegression(max_iter=500))])
    grid = {"reduce": [PCA(), Autoencoder(max_iter=5, random_state=0)],
            "reduce__n_components": [8, 16]}
    search = GridSearchCV(pipe, grid, n_jobs=2, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(search.cv_results_["params"]) == 4
    kinds = [type(p["reduce"]).__name__ for p in search.cv_results_["params"]]
    assert sorted(kinds) == ["Autoencoder", "Autoencoder", "PCA", "PCA"]
    assert np.isfinite(scores).all()
    # 10 classes, chance is 0.1; 5 epochs of an autoencoder are far from PCA's ~0.9
    for kind, score in zip(kinds, scores):
        assert score > (0.8 if kind == "PCA" else 0.2), (kind, score)
    best = search.best_estimator_.named_steps["reduce"]
    assert best.n_components_ == search.best_params_["reduce__n_components"]


def test_grid_search_with_the_estimators_own_score_prefers_more_components(unit_data):
    """Without y, GridSearchCV ranks by ``score`` (minus the held-out reconstruction loss).

    The brief's ``Autoencoder(max_iter=10, random_state=0)`` has batch_size=256 > 133 training
    rows per fold: 10 gradient steps in all, so the ranking is decided by the initialisation
    (over seeds 0-4 on this data, two of five picked n_components=2). With 32-sample batches,
    lr 1e-2 and a linear code (no dead ReLU units), 50 steps are enough for the 8-wide code to
    reconstruct better for every seed tried (0-9, margins 0.06-0.4 nats per sample).
    """
    ae = Autoencoder(max_iter=10, batch_size=32, learning_rate_init=1e-2,
                     code_activation="identity", random_state=0)
    search = GridSearchCV(ae, {"n_components": [2, 8]}, cv=3).fit(unit_data)
    assert search.best_params_ == {"n_components": 8}
    two, eight = search.cv_results_["mean_test_score"]
    assert np.isfinite([two, eight]).all() and two < 0 and eight < 0
    assert eight > two
    assert search.best_estimator_.n_components_ == 8
    assert search.score(unit_data) == pytest.approx(search.best_estimator_.score(unit_data))


def _fit_and_count_threads(seed):
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning

    X = np.random.RandomState(seed).rand(20, 4).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Autoencoder(2, max_iter=1, random_state=0).fit(X)
    return torch.get_num_threads(), os.getpid()


def test_torch_threads_do_not_oversubscribe_joblib_workers():
    results = Parallel(n_jobs=2, backend="loky")(
        delayed(_fit_and_count_threads)(seed) for seed in range(4))
    threads = [n for n, _ in results]
    assert all(pid != os.getpid() for _, pid in results)  # they really ran in workers
    assert max(threads) <= max(1, os.cpu_count() // 2)


def test_clone_of_a_fitted_estimator_is_unfitted_with_equal_params(unit_data):
    ae = Autoencoder(3, hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(unit_data)
    copy = clone(ae)
    assert copy.get_params() == ae.get_params()
    assert copy.hidden_layer_sizes == (8,) and type(copy.hidden_layer_sizes) is tuple
    for attribute in ("encoder_", "decoder_", "n_components_", "loss_", "n_features_in_"):
        assert not hasattr(copy, attribute)
    with pytest.raises(AttributeError):
        copy.n_iter_  # noqa: B018
    # same params and random_state: the clone refits to the same model
    np.testing.assert_array_equal(copy.fit(unit_data).transform(unit_data),
                                  ae.transform(unit_data))


def test_cross_val_score_uses_the_reconstruction_score(unit_data):
    ae = Autoencoder(3, max_iter=3, batch_size=64, random_state=0)
    scores = cross_val_score(ae, unit_data, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert (scores < 0).all()  # minus a binary cross-entropy summed over 12 features
    # the first fold's score is the held-out score of a model fit on the other two folds
    first_test = np.arange(len(unit_data))[: len(unit_data) // 3 + 1]
    train = np.setdiff1d(np.arange(len(unit_data)), first_test)
    expected = clone(ae).fit(unit_data[train]).score(unit_data[first_test])
    assert scores[0] == pytest.approx(expected, rel=1e-6)


def test_a_search_scaled_by_minmax_scaler_with_clip_scores_every_fold():
    # BCE's score needs [0, 1]; a plain MinMaxScaler can map a held-out fold outside the
    # range it saw, and the search would get NaN for that fold: the error says to clip
    from sklearn.preprocessing import MinMaxScaler

    X = load_digits().data[:300]
    grid = {"reduce__n_components": [2, 8]}

    def search(scaler):
        pipe = Pipeline([("scale", scaler), ("reduce", Autoencoder(max_iter=2, random_state=0))])
        return GridSearchCV(pipe, grid, cv=3, error_score="raise").fit(X)

    with pytest.raises(ValueError, match=r"MinMaxScaler\(clip=True\)"):
        search(MinMaxScaler())
    scores = search(MinMaxScaler(clip=True)).cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
