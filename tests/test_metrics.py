"""skae.metrics: reconstruction error and explained variance for PCA and autoencoders alike,
and label-free scorers for model selection."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, IncrementalPCA, KernelPCA, TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures

import skae.metrics
from skae import Autoencoder
from skae.metrics import (
    neg_reconstruction_mse_scorer,
    reconstruction_mse,
    reconstruction_r2,
    reconstruction_r2_scorer,
)


class MeanReconstructor(TransformerMixin, BaseEstimator):
    """Encodes every sample to 0 and decodes every code to the training mean."""

    def fit(self, X, y=None):
        self.mean_ = np.asarray(X, dtype=float).mean(axis=0)
        return self

    def transform(self, X):
        return np.zeros((np.asarray(X).shape[0], 1))

    def inverse_transform(self, Z):
        return np.tile(self.mean_, (np.asarray(Z).shape[0], 1))


class DropsAFeature(MeanReconstructor):
    """A broken inverse: one feature short of the input space."""

    def inverse_transform(self, Z):
        return super().inverse_transform(Z)[:, 1:]


@pytest.fixture(scope="module")
def digits_X():
    return load_digits().data / 16.0


def _direct(estimator, X):
    X_hat = np.asarray(estimator.inverse_transform(estimator.transform(X)), dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    sse = np.sum((X - X_hat) ** 2)
    sst = np.sum((X - X.mean(axis=0)) ** 2)
    return sse / X.size, 1 - sse / sst


@pytest.mark.parametrize("make", [
    lambda: PCA(n_components=3),
    lambda: KernelPCA(n_components=3, kernel="rbf", fit_inverse_transform=True),
    lambda: Autoencoder(n_components=3, max_iter=2, random_state=0),
], ids=["PCA", "KernelPCA", "Autoencoder"])
def test_values_match_a_direct_numpy_computation(make, unit_data):
    train, test = unit_data[:150], unit_data[150:]
    estimator = make().fit(train)
    mse, r2 = _direct(estimator, test)
    assert reconstruction_mse(estimator, test) == pytest.approx(mse, rel=1e-12)
    assert reconstruction_r2(estimator, test) == pytest.approx(r2, rel=1e-12)
    X_hat = estimator.inverse_transform(estimator.transform(test))
    assert reconstruction_mse(estimator, test) == pytest.approx(
        mean_squared_error(test.astype(float), X_hat.astype(float)), rel=1e-10)
    assert reconstruction_r2(estimator, test) == pytest.approx(
        r2_score(test.astype(float), X_hat.astype(float), multioutput="variance_weighted"),
        rel=1e-10)
    assert isinstance(reconstruction_mse(estimator, test), float)
    assert isinstance(reconstruction_r2(estimator, test), float)


@pytest.mark.parametrize("svd_solver", ["full", "covariance_eigh", "arpack"])
@pytest.mark.parametrize("n_components", [1, 10, 40])
def test_pca_r2_on_training_data_is_its_explained_variance_ratio(digits_X, svd_solver,
                                                                  n_components):
    pca = PCA(n_components=n_components, svd_solver=svd_solver).fit(digits_X)
    assert reconstruction_r2(pca, digits_X) == pytest.approx(
        pca.explained_variance_ratio_.sum(), abs=1e-10)


def test_whitening_and_incremental_pca_keep_the_identity(digits_X):
    whitened = PCA(n_components=10, whiten=True).fit(digits_X)
    assert reconstruction_r2(whitened, digits_X) == pytest.approx(
        whitened.explained_variance_ratio_.sum(), abs=1e-10)
    incremental = IncrementalPCA(n_components=10, batch_size=len(digits_X)).fit(digits_X)
    assert reconstruction_r2(incremental, digits_X) == pytest.approx(
        incremental.explained_variance_ratio_.sum(), abs=1e-10)


def test_perfect_reconstruction_has_r2_one_and_mse_zero(tabular_data):
    pca = PCA(n_components=tabular_data.shape[1]).fit(tabular_data)
    assert reconstruction_r2(pca, tabular_data) == pytest.approx(1.0, abs=1e-12)
    assert reconstruction_mse(pca, tabular_data) == pytest.approx(0.0, abs=1e-20)


def test_a_constant_reconstruction_explains_nothing(tabular_data):
    train, test = tabular_data[:100], tabular_data[100:]
    mean_model = MeanReconstructor().fit(train)
    assert reconstruction_r2(mean_model, train) == pytest.approx(0.0, abs=1e-12)
    assert reconstruction_r2(mean_model, test) <= 0.0
    assert reconstruction_mse(mean_model, train) == pytest.approx(train.var(axis=0).mean())


def test_r2_without_variance_is_one_for_an_exact_reconstruction_else_zero(tabular_data):
    mean_model = MeanReconstructor().fit(tabular_data)
    assert reconstruction_r2(mean_model, mean_model.mean_[None, :]) == 1.0
    assert reconstruction_r2(mean_model, tabular_data[:1]) == 0.0


def test_float32_sparse_and_blocked_inputs_give_the_same_numbers(unit_data, monkeypatch):
    svd = TruncatedSVD(n_components=4, random_state=0).fit(unit_data.astype(np.float64))
    X64 = unit_data.astype(np.float64)
    expected = reconstruction_mse(svd, X64), reconstruction_r2(svd, X64)
    sparse = sp.csr_matrix(X64)
    for matrix in (sparse, sparse.tocsc(), sparse.tocoo(), sp.coo_array(sparse)):
        assert reconstruction_mse(svd, matrix) == pytest.approx(expected[0], rel=1e-12)
        assert reconstruction_r2(svd, matrix) == pytest.approx(expected[1], rel=1e-12)
    # float32 input: the sums are taken in float64 all the same
    mse32, r2_32 = _direct(svd, unit_data)
    assert reconstruction_mse(svd, unit_data) == pytest.approx(mse32, rel=1e-9)
    assert reconstruction_r2(svd, unit_data) == pytest.approx(r2_32, rel=1e-9)
    # residuals formed a few rows at a time (13 rows of 12 features per block)
    monkeypatch.setattr(skae.metrics, "_BLOCK_ENTRIES", 13 * 12)
    assert reconstruction_mse(svd, X64) == pytest.approx(expected[0], rel=1e-12)
    assert reconstruction_r2(svd, sparse) == pytest.approx(expected[1], rel=1e-12)


def test_dataframe_input_keeps_feature_names(tabular_data):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(tabular_data, columns=[f"f{i}" for i in range(10)])
    pca = PCA(n_components=3).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = reconstruction_r2(pca, frame)
    assert value == pytest.approx(_direct(pca, frame)[1], rel=1e-12)


def test_grid_search_over_pca_with_the_r2_scorer_picks_the_most_components(digits_X):
    search = GridSearchCV(PCA(), {"n_components": [2, 5, 10]},
                          scoring=reconstruction_r2_scorer).fit(digits_X)
    assert search.best_params_ == {"n_components": 10}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.diff(scores) > 0) and np.all((0 < scores) & (scores < 1))


def test_scorers_ignore_labels(digits_X):
    y = load_digits().target
    scores = cross_val_score(PCA(n_components=5), digits_X, y, cv=3,
                             scoring=neg_reconstruction_mse_scorer)
    unlabelled = cross_val_score(PCA(n_components=5), digits_X, cv=3,
                                 scoring=neg_reconstruction_mse_scorer)
    np.testing.assert_allclose(scores, unlabelled)
    assert np.all(scores < 0)


def test_grid_search_over_an_autoencoder_pipeline_with_the_mse_scorer(digits_X):
    pipe = Pipeline([("scale", MinMaxScaler()),
                     ("reduce", Autoencoder(max_iter=5, random_state=0))])
    search = GridSearchCV(pipe, {"reduce__n_components": [2, 8]},
                          scoring=neg_reconstruction_mse_scorer, cv=2).fit(digits_X)
    assert search.best_params_["reduce__n_components"] in (2, 8)
    assert np.isfinite(search.best_score_) and search.best_score_ < 0
    assert search.score(digits_X) == pytest.approx(
        -reconstruction_mse(search.best_estimator_, digits_X))


def test_multi_metric_search_refits_on_the_named_metric(digits_X):
    search = GridSearchCV(
        PCA(), {"n_components": [3, 6]}, cv=2, refit="r2",
        scoring={"r2": reconstruction_r2_scorer, "mse": neg_reconstruction_mse_scorer},
    ).fit(digits_X)
    results = search.cv_results_
    assert {"mean_test_r2", "mean_test_mse", "rank_test_r2", "rank_test_mse"} <= set(results)
    assert search.best_index_ == int(np.argmax(results["mean_test_r2"]))
    assert search.best_params_ == {"n_components": 6}
    assert np.all(results["mean_test_mse"] < 0)


def test_a_transformer_without_inverse_transform_is_a_type_error(tabular_data):
    poly = PolynomialFeatures(degree=2).fit(tabular_data)
    with pytest.raises(TypeError, match="PolynomialFeatures has no inverse_transform"):
        reconstruction_mse(poly, tabular_data)
    with pytest.raises(TypeError, match="PolynomialFeatures has no inverse_transform"):
        reconstruction_r2_scorer(poly, tabular_data)
    pipe = Pipeline([("expand", PolynomialFeatures()), ("reduce", PCA(2))]).fit(tabular_data)
    with pytest.raises(TypeError, match=r"Pipeline has no inverse_transform.*'expand'"):
        reconstruction_r2(pipe, tabular_data)


def test_an_estimator_without_transform_is_a_type_error(digits_X):
    y = load_digits().target
    clf = LogisticRegression(max_iter=5).fit(digits_X[:100], y[:100])
    with pytest.raises(TypeError, match="LogisticRegression has no transform"):
        reconstruction_r2(clf, digits_X[:100])
    pipe = Pipeline([("reduce", PCA(2)), ("clf", LogisticRegression(max_iter=5))])
    pipe.fit(digits_X[:100], y[:100])
    with pytest.raises(TypeError, match=r"Pipeline has no transform.*'clf'"):
        reconstruction_mse(pipe, digits_X[:100])


def test_a_reconstruction_outside_the_input_space_is_a_value_error(tabular_data):
    broken = DropsAFeature().fit(tabular_data)
    with pytest.raises(ValueError, match=r"shape \(200, 9\), but X has shape \(200, 10\)"):
        reconstruction_mse(broken, tabular_data)


class Reconstructs(TransformerMixin, BaseEstimator):
    """Whatever ``reconstruction`` says, as a third-party transformer might."""

    def __init__(self, reconstruction=None):
        self.reconstruction = reconstruction

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X

    def inverse_transform(self, Z):
        return self.reconstruction


@pytest.mark.parametrize("reconstruction, message", [
    (lambda X: np.full_like(X, np.nan), "Input contains NaN"),
    (lambda X: np.full_like(X, np.inf), "Input contains infinity"),
    (lambda X: X.astype(complex), "Complex data not supported"),
])
def test_a_reconstruction_that_is_not_finite_and_real_is_a_value_error(tabular_data,
                                                                       reconstruction, message):
    # a NaN gave an mse of nan; a complex reconstruction lost its imaginary part
    bad = Reconstructs(reconstruction(tabular_data)).fit(tabular_data)
    for metric in (reconstruction_mse, reconstruction_r2):
        with pytest.raises(ValueError, match=f"Reconstructs.inverse_transform.*{message}"):
            metric(bad, tabular_data)


def test_a_coo_reconstruction_is_read_like_any_sparse_one(unit_data):
    exact = Reconstructs(sp.coo_matrix(unit_data)).fit(unit_data)  # was a TypeError
    assert reconstruction_mse(exact, unit_data) == 0.0


@pytest.mark.parametrize("scale", [1e100, 1e200, 1e300])
def test_huge_finite_data_give_a_finite_r2_and_an_mse_of_their_size(unit_data, scale):
    # the squared sums overflowed float64: r2 was inf / inf = nan
    data = unit_data.astype(np.float64)
    pca = PCA(2).fit(data)
    X = data * scale
    scaled = Reconstructs(pca.inverse_transform(pca.transform(data)) * scale).fit(X)
    assert reconstruction_r2(scaled, X) == pytest.approx(reconstruction_r2(pca, data),
                                                         rel=1e-12)
    with np.errstate(over="ignore"):  # inf beyond float64
        expected = reconstruction_mse(pca, data) * np.float64(scale) ** 2
    with np.errstate(over="ignore"):
        assert reconstruction_mse(scaled, X) == pytest.approx(expected, rel=1e-12)


def test_small_errors_beside_huge_values_still_count():
    # one value of 1e300 made every difference underflow once all were scaled down
    X = np.array([[1e300, 1.0], [0.0, 1.0]])
    fixed = Reconstructs(np.array([[1e300, 0.0], [0.0, 0.0]])).fit(X)
    assert reconstruction_mse(fixed, X) == 0.5
    assert reconstruction_r2(fixed, X) == 1.0  # 1 - 2 / 5e599


def test_r2_near_float64s_largest_value_is_finite_and_right():
    # the mean's sum overflowed: SST was inf and r2 1.0 for any reconstruction
    X = np.array([[1.5e308], [1.5e308], [-1e308]])
    wrong = Reconstructs(np.array([[1.5e308], [1.5e308], [1e308]])).fit(X)
    scaled = X / 1e300
    expected = 1 - (2e8) ** 2 / np.sum((scaled - scaled.mean()) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning reaches the user
        assert reconstruction_r2(wrong, X) == pytest.approx(expected, rel=1e-12)


def test_tiny_data_keep_their_r2():
    # squares of 1e-170 underflow to 0: r2 was 1.0 for a reconstruction by zeros
    X = np.array([[1e-170], [2e-170], [3e-170]])
    assert reconstruction_r2(Reconstructs(np.zeros((3, 1))).fit(X), X) == pytest.approx(-6.0)
    assert reconstruction_r2(Reconstructs(X.copy()).fit(X), X) == 1.0


def test_sparse_input_is_not_modified_and_float32_sparse_averages_like_dense():
    # duplicate entries: scipy's max/min summed them in place; its float32 mean is float32
    X = sp.csr_matrix(([1.0, 2.0, 3.0], [0, 0, 1], [0, 2, 3]), shape=(2, 2))
    reconstruction_mse(Reconstructs(np.zeros((2, 2))).fit(X), X)
    assert X.nnz == 3 and list(X.data) == [1.0, 2.0, 3.0]
    dense = (1000 + np.random.RandomState(0).rand(2000, 3)).astype(np.float32)
    shifted = Reconstructs(dense + np.float32(0.1)).fit(dense)
    assert reconstruction_r2(shifted, sp.csr_matrix(dense)) == pytest.approx(
        reconstruction_r2(shifted, dense), rel=1e-9)


def test_metrics_sum_over_every_block_also_for_sparse_input(unit_data, monkeypatch):
    # the sums run over every block of rows, dense or sparse
    X = np.where(unit_data > 0.5, unit_data, 0).astype(np.float64)
    svd = TruncatedSVD(3, random_state=0).fit(X)
    X_hat = svd.inverse_transform(svd.transform(X))
    mse = np.mean((X - X_hat) ** 2)
    r2 = 1 - np.sum((X - X_hat) ** 2) / np.sum((X - X.mean(0)) ** 2)
    monkeypatch.setattr(skae.metrics, "_BLOCK_ENTRIES", 12 * 7)  # 29 blocks of 7 rows
    for data in (X, sp.csr_matrix(X), sp.csc_matrix(X)):
        np.testing.assert_allclose(reconstruction_mse(svd, data), mse, rtol=1e-10)
        np.testing.assert_allclose(reconstruction_r2(svd, data), r2, rtol=1e-10)


def test_sparse_duplicates_and_explicit_zeros_average_as_their_dense_matrix(unit_data):
    # the mean is summed from the stored entries: duplicates add up, as in toarray()
    rng = np.random.RandomState(0)
    rows, cols = rng.randint(0, 40, 300), rng.randint(0, 12, 300)
    values = np.where(rng.rand(300) < 0.1, 0.0, rng.rand(300))
    coo = sp.coo_matrix((values, (rows, cols)), shape=(40, 12))
    dense = coo.toarray()
    svd = TruncatedSVD(3, random_state=0).fit(dense)
    expected = reconstruction_r2(svd, dense)
    for matrix in (coo.tocsr(copy=False), sp.csc_matrix((values, (rows, cols)), shape=(40, 12))):
        matrix.has_canonical_format = False
        assert reconstruction_r2(svd, matrix) == pytest.approx(expected, rel=1e-12)


def test_float32_duplicates_are_summed_once_for_every_pass():
    # float32 duplicates 1e8 + 1 - 1e8 add up to 0 in float32 (toarray, sum_duplicates) but
    # to 1 in float64: the mean must read the same values as the squared sums
    data = np.array([1e8, 1, -1e8, 1, 2, 3], np.float32)
    X = sp.csr_matrix((data, [0, 0, 0, 0, 0, 0], [0, 3, 4, 5, 6]), shape=(4, 1))
    X.has_canonical_format = False
    zeros = Reconstructs(np.zeros((4, 1))).fit(X)
    assert reconstruction_r2(zeros, X) == reconstruction_r2(zeros, X.toarray())


@pytest.mark.parametrize("make", [sp.csr_matrix, sp.csc_matrix])
def test_huge_sparse_data_give_the_r2_of_their_dense_matrix(unit_data, make):
    # the mean of a sparse matrix is summed with the same power-of-two factor as the squares
    data = np.where(unit_data > 0.5, unit_data, 0).astype(np.float64)
    pca = PCA(2).fit(data)
    X = data * 1e200
    scaled = Reconstructs(pca.inverse_transform(pca.transform(data)) * 1e200).fit(X)
    assert reconstruction_r2(scaled, make(X)) == pytest.approx(reconstruction_r2(scaled, X),
                                                               rel=1e-12)
