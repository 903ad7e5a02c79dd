"""Bad input and bad parameters: clear ValueError / TypeError naming the problem, never a torch
traceback or a silent NaN; the caller's arrays are never modified."""

import dataclasses
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skae import Autoencoder, SparseAutoencoder


@pytest.fixture
def fitted(unit_data):
    return Autoencoder(3, max_iter=1, batch_size=64, random_state=0).fit(unit_data)


def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


# ---------------------------------------------------------------------------------- bad X

BAD_VALUES = [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]


@pytest.mark.parametrize("value, message", BAD_VALUES)
def test_non_finite_values_are_refused_at_fit(unit_data, value, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(3, max_iter=1).fit(_with(unit_data, 5, 2, value))
    with pytest.raises(ValueError, match=message):
        Autoencoder(3).partial_fit(_with(unit_data, 5, 2, value))  # first call


@pytest.mark.parametrize("value, message", BAD_VALUES)
def test_non_finite_values_are_refused_at_fit_even_when_sklearn_assumes_finite(unit_data,
                                                                               value, message):
    # assume_finite=True skips check_array's test; a first fit would keep a NaN scaling
    from sklearn import config_context

    estimator = Autoencoder(3, max_iter=1)
    with config_context(assume_finite=True), pytest.raises(ValueError, match=message):
        estimator.fit(_with(unit_data, 5, 2, value))
    assert not hasattr(estimator, "encoder_")


@pytest.mark.parametrize("value, message", BAD_VALUES)
@pytest.mark.parametrize("method", ["transform", "score_samples", "score", "partial_fit"])
def test_non_finite_values_are_refused_after_fit(fitted, unit_data, value, message, method):
    before = fitted.transform(unit_data)
    with pytest.raises(ValueError, match=message):
        getattr(fitted, method)(_with(unit_data, 0, 0, value))
    np.testing.assert_array_equal(fitted.transform(unit_data), before)  # nothing was trained


@pytest.mark.parametrize("value, message", BAD_VALUES)
def test_non_finite_codes_are_refused_by_inverse_transform(fitted, value, message):
    with pytest.raises(ValueError, match=message):
        fitted.inverse_transform(np.array([[0.0, value, 1.0]]))


def test_non_finite_sparse_values_are_refused(unit_data):
    sp = pytest.importorskip("scipy.sparse")
    X = sp.csr_matrix(_with(unit_data, 1, 1, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        Autoencoder(3, max_iter=1).fit(X)


@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "score_samples",
                                    "inverse_transform"])
def test_one_dimensional_input_is_refused(fitted, unit_data, method):
    target = Autoencoder(3, max_iter=1) if "fit" in method else fitted
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        getattr(target, method)(unit_data[0] if method != "inverse_transform" else np.ones(3))


def test_three_dimensional_input_is_refused(unit_data):
    with pytest.raises(ValueError, match="dim 3"):
        Autoencoder(3, max_iter=1).fit(unit_data.reshape(200, 3, 4))


@pytest.mark.parametrize("shape, message", [((0, 12), "0 sample"), ((5, 0), "0 feature")])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_empty_input_is_refused_at_fit(shape, message, method):
    with pytest.raises(ValueError, match=message):
        getattr(Autoencoder(3, max_iter=1), method)(np.empty(shape, dtype=np.float32))


@pytest.mark.parametrize("method", ["transform", "score_samples", "inverse_transform"])
def test_empty_input_is_refused_after_fit(fitted, method):
    width = 3 if method == "inverse_transform" else 12
    with pytest.raises(ValueError, match="0 sample"):
        getattr(fitted, method)(np.empty((0, width), dtype=np.float32))


def test_strings_are_refused(fitted):
    strings = np.array([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="could not convert string to float"):
        Autoencoder(2, max_iter=1).fit(strings)
    with pytest.raises(ValueError, match="could not convert string to float"):
        fitted.transform(np.full((2, 12), "x"))
    mixed = np.array([[0.5, "a"], [0.1, "b"]], dtype=object)
    with pytest.raises(ValueError, match="could not convert string to float"):
        Autoencoder(2, max_iter=1).fit(mixed)


def test_a_string_column_in_a_dataframe_is_refused(unit_data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(unit_data[:, :3], columns=["a", "b", "c"]).assign(d="text")
    with pytest.raises(ValueError, match="could not convert string to float"):
        Autoencoder(2, max_iter=1).fit(df)


@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "score_samples",
                                    "inverse_transform"])
def test_complex_input_is_refused(fitted, unit_data, method):
    target = Autoencoder(3, max_iter=1) if "fit" in method else fitted
    X = unit_data[:, :3] if method == "inverse_transform" else unit_data
    with pytest.raises(ValueError, match="Complex data not supported"):
        getattr(target, method)(X + 1j)


@pytest.mark.parametrize("method", ["transform", "score_samples", "score", "partial_fit"])
def test_wrong_width_is_refused(fitted, unit_data, method):
    with pytest.raises(ValueError, match="X has 7 features, but Autoencoder is expecting 12"):
        getattr(fitted, method)(unit_data[:, :7])


@pytest.mark.parametrize("width", [2, 12])
def test_wrong_code_width_is_refused_by_inverse_transform(fitted, width):
    with pytest.raises(ValueError, match=f"X has {width} features.*codes of 3 components"):
        fitted.inverse_transform(np.zeros((4, width)))


def test_warm_start_refit_with_another_width_is_refused(unit_data):
    ae = Autoencoder(3, max_iter=1, warm_start=True, random_state=0).fit(unit_data)
    with pytest.raises(ValueError, match="X has 7 features, but Autoencoder is expecting 12"):
        ae.fit(unit_data[:, :7])


# ---------------------------------------------------------------------------------- bce domain

OUTSIDE_UNIT = [lambda X: X * 3, lambda X: X - 0.5, lambda X: _with(X, 7, 3, 1.0 + 1e-4)]


@pytest.mark.parametrize("shift", OUTSIDE_UNIT)
def test_bce_refuses_data_outside_the_unit_interval_at_fit(unit_data, shift):
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=r"loss='bce'.*\[0, 1\]"):
            getattr(Autoencoder(3, loss="bce", max_iter=1), method)(shift(unit_data))


@pytest.mark.parametrize("shift", OUTSIDE_UNIT)
@pytest.mark.parametrize("method", ["score_samples", "score", "partial_fit"])
def test_bce_refuses_data_outside_the_unit_interval_after_fit(fitted, unit_data, shift, method):
    assert fitted.loss_ == "bce"  # resolved by loss="auto" from data in [0, 1]
    with pytest.raises(ValueError, match=r"loss='bce'.*\[0, 1\]"):
        getattr(fitted, method)(shift(unit_data))


def _read_only(X):
    X = X.copy()
    X.flags.writeable = False
    return X


LAYOUTS = [np.ascontiguousarray, np.asfortranarray, _read_only, lambda X: X[::-1],
           lambda X: X.astype(np.float64), lambda X: np.repeat(X, 2, axis=1)[:, ::2]]
# numpy calls these contiguous, but their axis of length 1 has a stride torch refuses
ONE_ROW = [lambda X: X[:1][::-1],
           lambda X: np.lib.stride_tricks.as_strided(X[:1].copy(), (1, X.shape[1]), (3, 4))]


@pytest.mark.filterwarnings("error")  # torch warns when it shares read-only memory
@pytest.mark.parametrize("layout", LAYOUTS + ONE_ROW)
def test_bce_domain_check_sees_every_value_in_any_memory_layout(fitted, unit_data, layout):
    """The check reads C- or F-ordered writable arrays in one torch pass, others by numpy."""
    fitted.score_samples(layout(unit_data))  # in [0, 1]: accepted
    for value in (1.0 + 1e-4, -1e-4):  # beyond the 1e-5 left for rounding
        with pytest.raises(ValueError, match=r"loss='bce'.*\[0, 1\]"):
            fitted.partial_fit(layout(_with(unit_data, 0, 10, value)))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("layout", LAYOUTS + ONE_ROW + [lambda X: X[:, :1][:, ::-1]])
def test_every_method_takes_any_memory_layout(unit_data, layout):
    """Arrays torch cannot share are copied, never passed to torch."""
    X = layout(unit_data)
    reference = np.array(X, dtype=np.float32, order="C")
    model = Autoencoder(2, max_iter=2, batch_size=64, random_state=0)
    fitted_on_view, fitted_on_copy = clone(model).fit(X), clone(model).fit(reference)
    np.testing.assert_allclose(fitted_on_view.loss_curve_, fitted_on_copy.loss_curve_,
                               rtol=1e-6)
    for method in ("transform", "score_samples"):  # float64 X computes in float64
        np.testing.assert_allclose(getattr(fitted_on_view, method)(X),
                                   getattr(fitted_on_copy, method)(reference), rtol=1e-5,
                                   atol=1e-6)
    fitted_on_view.partial_fit(X)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("layout", LAYOUTS + ONE_ROW)
def test_inverse_transform_takes_codes_in_any_memory_layout(fitted, unit_data, layout):
    codes = fitted.transform(unit_data)
    view = layout(codes)
    np.testing.assert_allclose(fitted.inverse_transform(view),
                               fitted.inverse_transform(np.array(view, order="C")),
                               rtol=1e-5, atol=1e-6)


def test_bce_refuses_sparse_data_outside_the_unit_interval(fitted, unit_data):
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fitted.score_samples(sp.csr_matrix(unit_data * 2))


def test_transform_of_data_outside_the_unit_interval_is_allowed_and_finite(fitted, unit_data):
    """Encoding needs no likelihood: only scoring and training check the bce domain."""
    assert np.isfinite(fitted.transform(unit_data * 3)).all()


# ---------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("params, name", [
    (dict(activation="foo"), "activation"),
    (dict(code_activation="foo"), "code_activation"),
    (dict(loss="l2"), "loss"),
    (dict(solver="lbfgs"), "solver"),
    (dict(n_components=0), "n_components"),
    (dict(n_components=2.5), "n_components"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_iter=0), "max_iter"),
    (dict(max_iter="Auto"), "max_iter"),  # only "auto"
    (dict(max_iter=50.0), "max_iter"),
    (dict(learning_rate_init=0), "learning_rate_init"),
    (dict(learning_rate_init=-1e-3), "learning_rate_init"),
    # beyond float32: sgd, rmsprop and adadelta raised torch's "cannot be converted"
    (dict(learning_rate_init=1e39, solver="sgd"), "learning_rate_init"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(validation_fraction=0.0), "validation_fraction"),
    (dict(tol=-1.0), "tol"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(8, -1)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(8, 2.5)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=0), "hidden_layer_sizes"),
    (dict(conv_filters="abc"), "conv_filters"),
    (dict(conv_filters=(4, 0), image_shape=(3, 4)), "conv_filters"),
    (dict(image_shape=(0, 5)), "image_shape"),
    (dict(image_shape=(12,)), "image_shape"),
    (dict(image_shape=(1, 2, 3, 2)), "image_shape"),
    (dict(early_stopping="yes"), "early_stopping"),
    (dict(random_state="seed"), "random_state"),
    (dict(device=0), "device"),
])
def test_bad_parameters_raise_invalid_parameter_error(unit_data, params, name):
    ae = Autoencoder(**{"n_components": 3, "max_iter": 1, **params})
    with pytest.raises(InvalidParameterError, match=re.escape(name)):
        ae.fit(unit_data)
    assert not hasattr(ae, "encoder_")
    with pytest.raises(InvalidParameterError, match=re.escape(name)):
        ae.partial_fit(unit_data)


@pytest.mark.parametrize("target", [1e-39, 1e-7, 1 - 1e-7])
def test_a_sparsity_target_beyond_the_penalty_s_clamp_is_refused(unit_data, target):
    # the KL penalty holds batch means within 1e-6 of 0 and 1, so it pushed them past a
    # smaller target; below about 3e-39 the code's scale 1 / rho overflowed float32, fit
    # "diverged" at its first epoch and inverse_transform gave NaN
    ae = SparseAutoencoder(3, sparsity_target=target, max_iter=1)
    with pytest.raises(InvalidParameterError, match="sparsity_target"):
        ae.fit(unit_data)
    for edge in (1e-6, 1 - 1e-6):
        assert np.isfinite(ae.set_params(sparsity_target=edge).fit(unit_data).transform(
            unit_data)).all()


@pytest.mark.parametrize("make_bad", [
    lambda X: np.where(X > 0.5, np.nan, X),  # refused by validation
    lambda X: X[:1],  # refused by the checks: too few rows to hold out a validation split
])
def test_a_refused_fit_draws_nothing_from_random_state(unit_data, make_bad):
    # the seed of a new network is drawn once the checks pass: a refused fit, retried, is
    # the fit a first clean call would have been
    rng = np.random.RandomState(0)
    before = rng.get_state()[1].copy()
    ae = Autoencoder(3, max_iter=1, early_stopping=True, random_state=rng)
    with pytest.raises(ValueError):
        ae.fit(make_bad(unit_data))
    np.testing.assert_array_equal(rng.get_state()[1], before)


def test_the_largest_float32_learning_rate_is_accepted():
    Autoencoder(learning_rate_init=float(np.finfo(np.float32).max))._validate_params()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", "cuda:-1"])
def test_unknown_device_is_refused_with_its_name(unit_data, device):
    with pytest.raises(ValueError, match=re.escape(f"device={device!r}")):
        Autoencoder(3, max_iter=1, device=device).fit(unit_data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_refused(unit_data, device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        Autoencoder(3, max_iter=1, device=device).fit(unit_data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_auto_device_falls_back_to_the_cpu(unit_data):
    assert Autoencoder(3, max_iter=1, device="auto").fit(unit_data).device_ == "cpu"


def test_n_components_none_needs_a_conv_stack(unit_data):
    with pytest.raises(ValueError, match="n_components=None.*conv"):
        Autoencoder(None, max_iter=1).fit(unit_data)


@pytest.mark.parametrize("image_shape", [(5, 5), (3, 3, 2), (12, 2)])
def test_image_shape_must_match_the_number_of_features(unit_data, image_shape):
    with pytest.raises(ValueError, match=r"image_shape=.* but X has 12 features"):
        Autoencoder(3, image_shape=image_shape, max_iter=1).fit(unit_data)
    with pytest.raises(ValueError, match=r"image_shape=.* but X has 12 features"):
        Autoencoder(3, conv_filters=(2,), image_shape=image_shape, max_iter=1).fit(unit_data)


@pytest.mark.parametrize("n_samples, fraction", [(1, 0.1), (3, 0.9), (1, 0.5)])
def test_early_stopping_with_too_few_samples_is_refused(unit_data, n_samples, fraction):
    ae = Autoencoder(3, max_iter=2, early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match="early_stopping needs at least one training and one"):
        ae.fit(unit_data[:n_samples])


def test_early_stopping_with_one_training_and_one_validation_sample_trains(unit_data):
    ae = Autoencoder(3, max_iter=2, early_stopping=True, validation_fraction=0.5,
                     random_state=0).fit(unit_data[:2])
    assert ae.n_iter_ == 2 and len(ae.validation_scores_) == 2


def test_a_float32_validation_fraction_holds_out_what_its_saved_float_does():
    from skae._base import _validation_size

    fraction = np.float32(0.2)  # 40 of 200 in float32, 40.0000006 as the float save keeps
    assert _validation_size(200, fraction) == _validation_size(200, float(fraction)) == 41


def test_partial_fit_ignores_early_stopping_so_one_sample_is_enough(unit_data):
    ae = Autoencoder(3, early_stopping=True, random_state=0).partial_fit(unit_data[:1])
    assert ae.n_iter_ == 1 and ae.validation_scores_ is None


def test_a_network_too_large_to_allocate_is_a_clear_memory_error(unit_data):
    ae = Autoencoder(10**15, max_iter=1)  # 12 * 10**15 weights: beyond any address space
    with pytest.raises(MemoryError, match=r"encoder's 13,000,000,000,000,000 weights .* GiB"):
        ae.fit(unit_data)
    with pytest.raises(NotFittedError):
        ae.transform(unit_data)


def test_float64_data_beyond_the_float32_range_is_refused(tabular_data):
    ae = Autoencoder(3, max_iter=1, random_state=0)
    with pytest.raises(ValueError, match=r"magnitude up to .*e\+40, beyond the float32 range"):
        ae.fit(tabular_data * 1e38)
    with pytest.raises(NotFittedError):
        ae.transform(tabular_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(tabular_data)
    before = ae.transform(tabular_data)
    for train in (ae.partial_fit, ae.set_params(warm_start=True).fit):  # and training on
        with pytest.raises(ValueError, match="beyond the float32 range"):
            train(tabular_data * 1e38)
    assert ae.n_iter_ == 1
    np.testing.assert_array_equal(ae.transform(tabular_data), before)


def test_values_too_large_to_average_are_called_too_large_not_nan():
    X = np.full((4, 3), 1e308)  # finite, but their column sums overflow float64
    X[0] = 0
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="beyond the float32 range"):
        Autoencoder(2, max_iter=1).fit(X)


def test_early_stopping_scores_data_of_a_huge_spread_without_overflow(tabular_data):
    # scores are in the data's units, (1e20)**2 times the loss: beyond float32, not a
    # divergence; the scaling is applied as a float
    X = tabular_data * 1e20
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(2, max_iter=3, early_stopping=True, random_state=0).fit(X)
    assert ae.n_iter_ == 3 and np.isfinite(ae.validation_scores_).all()
    assert ae.best_validation_score_ < -1e38


def test_float64_data_far_from_zero_against_its_spread_warns(tabular_data):
    offset = np.zeros(10)
    offset[3] = 1e8
    with pytest.warns(UserWarning, match=r"up to .* times the data's spread.*Center X"):
        Autoencoder(3, max_iter=1, random_state=0).fit(tabular_data + offset)
    fitted = Autoencoder(3, max_iter=1, random_state=0).fit(tabular_data)
    with pytest.warns(UserWarning, match="Center X"):
        fitted.partial_fit(tabular_data + offset)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # 50 +- 10, or float32 data: no warning
        warnings.simplefilter("ignore", ConvergenceWarning)
        Autoencoder(3, max_iter=1, random_state=0).fit(tabular_data)
        Autoencoder(3, max_iter=1, random_state=0).fit((tabular_data + offset).astype("f4"))


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_sparse_and_dense_data_get_the_same_scaling(unit_data, offset):
    from skae._base import _scaling_stats

    X = unit_data.astype(np.float64) + offset
    dense_mean, dense_scale = _scaling_stats(X)
    for matrix in (sp.csr_matrix(X), sp.csr_matrix(np.where(unit_data > 0.5, X, 0.0))):
        # each stored value as two halves at the same place: a CSR matrix not canonical
        duplicated = sp.csr_matrix((np.repeat(matrix.data / 2, 2), np.repeat(matrix.indices, 2),
                                    2 * matrix.indptr), shape=matrix.shape)
        assert not duplicated.has_canonical_format
        expected = _scaling_stats(matrix.toarray())
        for candidate in (matrix, duplicated):
            mean, scale = _scaling_stats(candidate)
            np.testing.assert_allclose(mean, expected[0], rtol=1e-12)
            assert scale == pytest.approx(expected[1], rel=1e-9)
    assert _scaling_stats(sp.csr_matrix(X))[1] == pytest.approx(dense_scale, rel=1e-9)


def test_a_sparse_matrix_whose_last_columns_store_nothing_scales_as_dense():
    from skae._base import _scaling_stats

    X = np.random.RandomState(0).rand(50, 6)
    X[:, -2:] = 0.0  # no stored entries there: the column sums must still cover them
    mean, scale = _scaling_stats(sp.csr_matrix(X))
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-13)
    assert scale == pytest.approx(_scaling_stats(X)[1], rel=1e-12)


def test_sparse_float32_data_are_averaged_in_float64():
    # scipy's mean(dtype=float64) still sums float32 data in float32: means off by 0.08
    from skae._base import _scaling_stats

    X = (np.random.RandomState(0).rand(100_000, 4) * 1000).astype(np.float32) + 1e4
    np.testing.assert_allclose(_scaling_stats(sp.csr_matrix(X))[0], _scaling_stats(X)[0],
                               rtol=1e-13)


@pytest.mark.parametrize("loss", ["auto", "bce"])
def test_data_of_a_spread_below_float32s_range_is_refused(tabular_data, unit_data, loss):
    # centred tabular data take MSE; tiny positive values lie in [0, 1] and take BCE
    X = (tabular_data - tabular_data.mean(axis=0)) * 1e-41 if loss == "auto" else unit_data * 1e-39
    ae = Autoencoder(3, max_iter=1, loss=loss)
    with pytest.raises(ValueError, match=r"spread \(.*e-4\d\) is below the float32 range"):
        ae.fit(X)
    with pytest.raises(NotFittedError):
        ae.transform(tabular_data)


def test_data_of_tiny_spread_is_scaled_like_any_other(tabular_data):
    X = tabular_data - tabular_data.mean(axis=0)
    kw = dict(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tiny = Autoencoder(3, **kw).fit(X * 1e-15)
        plain = Autoencoder(3, **kw).fit(X)
    np.testing.assert_allclose(tiny.transform(X * 1e-15), plain.transform(X), rtol=1e-4,
                               atol=1e-5)


# ---------------------------------------------------------------------------------- not fitted


@pytest.mark.parametrize("call", [
    lambda ae, X: ae.transform(X),
    lambda ae, X: ae.inverse_transform(X[:, :3]),
    lambda ae, X: ae.score(X),
    lambda ae, X: ae.score_samples(X),
    lambda ae, X: ae.sample(2),
    lambda ae, X: ae.get_feature_names_out(),
], ids=["transform", "inverse_transform", "score", "score_samples", "sample",
        "get_feature_names_out"])
def test_methods_before_fit_raise_not_fitted_error(unit_data, call):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        call(Autoencoder(3), unit_data)


# ---------------------------------------------------------------------------------- input arrays


def _read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


@pytest.mark.parametrize("data", ["unit_data", "tabular_data"])
def test_read_only_input_works_and_matches_writable_input(request, data):
    X = request.getfixturevalue(data)
    X_ro = _read_only(X)
    make = lambda: Autoencoder(3, max_iter=2, batch_size=32, random_state=0)  # noqa: E731
    writable, read_only = make().fit(X), make().fit(X_ro)
    np.testing.assert_array_equal(read_only.transform(X_ro), writable.transform(X))
    np.testing.assert_array_equal(read_only.score_samples(X_ro), writable.score_samples(X))
    Z_ro = _read_only(writable.transform(X))
    np.testing.assert_array_equal(read_only.inverse_transform(Z_ro),
                                  writable.inverse_transform(Z_ro))
    read_only.partial_fit(X_ro)
    writable.partial_fit(X)
    np.testing.assert_array_equal(read_only.transform(X), writable.transform(X))
    first = Autoencoder(3, batch_size=32, random_state=0).partial_fit(X_ro)
    np.testing.assert_array_equal(first.transform(X),
                                  Autoencoder(3, batch_size=32, random_state=0)
                                  .partial_fit(X).transform(X))
    np.testing.assert_array_equal(X_ro, X)


@pytest.mark.parametrize("data", ["unit_data", "tabular_data"])
def test_caller_arrays_are_never_modified(request, data):
    X = request.getfixturevalue(data)
    for dtype in (np.float32, np.float64):
        X_in = np.asfortranarray(X.astype(dtype))  # a layout the estimator must not "fix" in place
        before = X_in.copy()
        ae = Autoencoder(3, hidden_layer_sizes=(6,), max_iter=2, random_state=0,
                         early_stopping=True).fit(X_in)
        Z = ae.transform(X_in)
        Z_before = Z.copy()
        ae.inverse_transform(Z)
        ae.score_samples(X_in)
        ae.partial_fit(X_in)
        ae.fit_transform(X_in)
        np.testing.assert_array_equal(X_in, before)
        assert X_in.flags.f_contiguous and X_in.dtype == dtype
        np.testing.assert_array_equal(Z, Z_before)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_a_sparse_matrix_in_no_canonical_form_is_left_as_it_is(loss):
    # row 0 stores column 0 twice (0.25 + 0.25) and its columns out of order, as a matrix
    # built by hand or from COO may; scipy's min and max would tidy it up in place
    X = sp.csr_matrix((np.array([0.5, 0.25, 0.25, 0.7, 0.1]), np.array([2, 0, 0, 1, 0]),
                       np.array([0, 3, 4, 5])), shape=(3, 3))
    before = X.data.copy(), X.indices.copy(), X.indptr.copy()
    ae = Autoencoder(2, loss=loss, max_iter=2, batch_size=2, random_state=0)
    ae.fit(X).partial_fit(X)
    ae.score_samples(X)
    for got, expected in zip((X.data, X.indices, X.indptr), before):
        np.testing.assert_array_equal(got, expected)
    tidy = Autoencoder(2, loss=loss, max_iter=2, batch_size=2, random_state=0).fit(X.toarray())
    np.testing.assert_allclose(ae.loss_curve_[:2], tidy.loss_curve_, rtol=1e-6)


def test_float32_memmap_input_fits_like_the_in_memory_array(tmp_path, unit_data):
    path = tmp_path / "X.dat"
    writer = np.memmap(path, dtype=np.float32, mode="w+", shape=unit_data.shape)
    writer[:] = unit_data
    writer.flush()
    del writer
    X_map = np.memmap(path, dtype=np.float32, mode="r", shape=unit_data.shape)
    make = lambda: Autoencoder(3, hidden_layer_sizes=(8,), max_iter=3, batch_size=32,  # noqa
                               random_state=0)
    from_map, in_memory = make().fit(X_map), make().fit(unit_data)
    # a memmap is read batch by batch, rows sorted within a batch: the same samples per step
    np.testing.assert_allclose(from_map.transform(X_map), in_memory.transform(unit_data),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_map.loss_curve_, in_memory.loss_curve_, rtol=1e-5)
    assert from_map.transform(X_map).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(X_map), unit_data)


# ---------------------------------------------------------------------------------- failed fits

@pytest.mark.parametrize("make, X_of", [
    (lambda: Autoencoder(3, device="tpu"), lambda X: X),
    (lambda: Autoencoder(3, loss="bce"), lambda X: X * 3),
    (lambda: Autoencoder(3, image_shape=(5, 5)), lambda X: X),
    (lambda: __import__("skae").ContractiveAutoencoder(3, hidden_layer_sizes=(4,),
                                                       jacobian="closed_form"), lambda X: X),
    (lambda: Autoencoder(3, early_stopping=True), lambda X: X[:1]),
    (lambda: __import__("skae").DenoisingAutoencoder(3, noise="masking", noise_level=2.0),
     lambda X: X),
], ids=["device", "bce-domain", "image_shape", "contractive-closed-form", "early-stopping",
        "masking-fraction"])
def test_a_failed_first_fit_leaves_the_estimator_unfitted(unit_data, make, X_of):
    ae = make().set_params(max_iter=1, random_state=0)
    with pytest.raises(ValueError):
        ae.fit(X_of(unit_data))
    with pytest.raises(NotFittedError):
        ae.transform(unit_data)


@pytest.mark.parametrize("bad_params, X_of", [
    (dict(loss="bce"), lambda X: X),               # tabular data are outside [0, 1]
    (dict(device="tpu"), lambda X: X[:, :4]),
    (dict(early_stopping=True), lambda X: X[:1, :4]),
])
def test_a_failed_refit_leaves_the_previous_model_intact(tabular_data, bad_params, X_of):
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(tabular_data)
    before = ae.inverse_transform(ae.transform(tabular_data))
    draws = ae.sample(5, random_state=0)
    with pytest.raises(ValueError):
        ae.set_params(**bad_params).fit(X_of(tabular_data))
    assert ae.loss_ == "mse" and ae.n_features_in_ == 10 and ae.n_iter_ == 1
    ae.set_params(loss="auto", device="cpu")  # the fitted model follows ``device`` on use
    np.testing.assert_array_equal(ae.inverse_transform(ae.transform(tabular_data)), before)
    np.testing.assert_array_equal(ae.sample(5, random_state=0), draws)


@pytest.mark.parametrize("method", ["partial_fit", "fit"])
def test_training_parameters_set_after_a_fit_are_checked_when_training_goes_on(unit_data,
                                                                              method):
    from skae import ContractiveAutoencoder, DenoisingAutoencoder

    denoiser = DenoisingAutoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    weights = [p.clone() for p in denoiser.encoder_.parameters()]
    denoiser.set_params(noise="masking", noise_level=5.0, warm_start=True)
    with pytest.raises(ValueError, match="must be at most 1, got 5.0"):
        getattr(denoiser, method)(unit_data)
    assert denoiser.n_iter_ == 1
    assert all(torch.equal(a, b) for a, b in zip(weights, denoiser.encoder_.parameters()))
    deep = ContractiveAutoencoder(3, hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    deep.fit(unit_data).set_params(jacobian="closed_form", warm_start=True)
    with pytest.raises(ValueError, match="closed_form"):
        getattr(deep, method)(unit_data)
    getattr(deep.set_params(jacobian="projection"), method)(unit_data)
    assert deep.jacobian_ == "projection" and deep.n_iter_ == 2


@pytest.mark.parametrize("make, bad", [
    (lambda: __import__("skae").DenoisingAutoencoder(3), dict(noise="foo")),
    (lambda: __import__("skae").VariationalAutoencoder(3), dict(beta=-1.0)),
    (lambda: __import__("skae").SparseAutoencoder(3), dict(sparsity_weight=-1.0)),
    (lambda: Autoencoder(3), dict(batch_size=0)),
    (lambda: Autoencoder(3), dict(solver="foo")),
    (lambda: Autoencoder(3), dict(shuffle="no")),
], ids=["noise", "beta", "sparsity_weight", "batch_size", "solver", "shuffle"])
def test_partial_fit_on_a_fitted_model_validates_its_parameters(unit_data, make, bad):
    # sklearn's _fit_context validates at a first partial_fit only: a later call ran with
    # an invalid objective (noise="foo" as salt-and-pepper, beta=-1 maximising the KL)
    ae = make().set_params(max_iter=1, random_state=0).fit(unit_data)
    weights = [p.clone() for p in ae.encoder_.parameters()]
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(bad))}' parameter"):
        ae.set_params(**bad).partial_fit(unit_data)
    assert ae.n_iter_ == 1
    assert all(torch.equal(a, b) for a, b in zip(weights, ae.encoder_.parameters()))


@pytest.mark.parametrize("method", ["partial_fit", "fit"])
@pytest.mark.parametrize("make, changed, names", [
    (lambda: Autoencoder(3), dict(n_components=5), "n_components"),
    (lambda: Autoencoder(3), dict(hidden_layer_sizes=(8,)), "hidden_layer_sizes"),
    (lambda: Autoencoder(3, hidden_layer_sizes=(4,), code_activation="identity"),
     dict(activation="tanh"), "activation"),
    (lambda: Autoencoder(3), dict(activation="tanh"), "activation"),  # the code's, by default
    (lambda: Autoencoder(3, code_activation="identity"), dict(code_activation="tanh"),
     "code_activation"),
    (lambda: Autoencoder(3, hidden_layer_sizes=(4,), code_activation="tanh"),
     dict(code_activation=None), "code_activation"),  # now the unchanged activation's
    (lambda: Autoencoder(3), dict(loss="mse"), "loss"),
    (lambda: Autoencoder(3, loss="mse"), dict(loss="bce"), "loss"),
    (lambda: __import__("skae").SparseAutoencoder(3), dict(sparsity_target=0.2),
     "sparsity_target"),
    (lambda: __import__("skae").SparseAutoencoder(3), dict(sparsity="l1"), "sparsity"),
    (lambda: __import__("skae").ConvAutoencoder(3, conv_filters=(2,), image_shape=(3, 4)),
     dict(image_shape=(4, 3)), "image_shape"),
    (lambda: __import__("skae").ConvAutoencoder(3, conv_filters=(2,), image_shape=(3, 4)),
     dict(kernel_size=5), "kernel_size"),
], ids=["n_components", "layers", "activation", "code's activation", "code_activation",
        "code_activation-to-None", "loss", "loss-to-bce", "sparsity_target", "sparsity",
        "image_shape", "kernel_size"])
def test_continued_training_refuses_parameters_that_shape_another_network(
        unit_data, method, make, changed, names):
    # the network of the first fit would be trained on while get_params showed another
    ae = make().set_params(max_iter=1, random_state=0, warm_start=True).fit(unit_data)
    before = ae.transform(unit_data)
    with pytest.raises(ValueError, match="^" + re.escape(names) + " changed since the network"):
        getattr(ae.set_params(**changed), method)(unit_data)
    assert ae.n_iter_ == 1
    np.testing.assert_array_equal(ae.transform(unit_data), before)
    # a parameter that does not shape the network is taken as it is
    ae.set_params(**make().get_params()).set_params(max_iter=1, learning_rate_init=0.01,
                                                    batch_size=7, warm_start=True)
    getattr(ae, method)(unit_data)
    assert ae.n_iter_ == 2
    # and a fit that is not a warm start builds the new network
    if method == "fit":
        ae.set_params(warm_start=False, **changed).fit(unit_data)
        assert ae.n_iter_ == 1


def test_continued_training_takes_a_code_scale_that_differs_by_rounding(unit_data):
    # a file saved before the code scale was computed in float64 holds 1 / float32(rho)
    from skae import SparseAutoencoder

    rho = np.float32(0.05)
    ae = SparseAutoencoder(4, sparsity_target=rho, max_iter=1, random_state=0).fit(unit_data)
    ae._architecture = dataclasses.replace(ae._architecture,
                                           code_scale=float(np.float32(1) / rho))
    assert ae._architecture.code_scale != 1 / float(rho)
    assert ae.partial_fit(unit_data).n_iter_ == 2


def test_continued_training_takes_parameters_the_network_does_not_read(unit_data):
    # one dense layer each way reads only the code's activation, and no kernel size
    ae = Autoencoder(3, code_activation="logistic", max_iter=1, random_state=0,
                     warm_start=True).fit(unit_data)
    ae.set_params(kernel_size=5, activation="tanh").fit(unit_data)
    ae.partial_fit(unit_data)
    assert ae.n_iter_ == 3


def test_best_loss_says_how_the_model_was_trained_not_the_current_parameter(unit_data):
    ae = Autoencoder(3, max_iter=2, early_stopping=True, random_state=0).fit(unit_data)
    assert ae.best_loss_ is None and ae.set_params(early_stopping=False).best_loss_ is None
    plain = Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    assert plain.set_params(early_stopping=True).best_loss_ == min(plain.loss_curve_)
    for early_stopping in (False, True):  # no epoch trained: no loss, not inf
        with pytest.warns(RuntimeWarning, match="diverged"):
            none = Autoencoder(3, max_iter=2, learning_rate_init=3e38,
                               early_stopping=early_stopping, random_state=0).fit(unit_data)
        assert none.n_iter_ == 0 and none.best_loss_ is None


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_refused_training_call_does_not_move_the_model(unit_data, monkeypatch, method):
    # "elsewhere" stands for a GPU: the meta device, where tensors have no data
    from skae import _base

    resolve = _base._resolve_device
    monkeypatch.setattr(_base, "_resolve_device",
                        lambda device: "meta" if device == "elsewhere" else resolve(device))
    ae = Autoencoder(3, loss="mse", max_iter=1, random_state=0, warm_start=True)
    ae.fit(unit_data).set_params(device="elsewhere", early_stopping=True)
    X = unit_data.astype(np.float64)
    bad = X[:1] if method == "fit" else X * 1e39  # too few rows to early-stop; too large
    with pytest.raises(ValueError, match="early_stopping needs" if method == "fit"
                       else "beyond the float32 range"):
        getattr(ae, method)(bad)
    assert ae.device_ == "cpu"
    assert all(p.device.type == "cpu" for net in (ae.encoder_, ae.decoder_)
               for p in net.parameters())
    assert ae.set_params(device="cpu").transform(unit_data).shape == (200, 3)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_training_call_on_a_fitted_model_follows_its_device(unit_data, monkeypatch, method):
    # "elsewhere" stands for a GPU: "cpu:0", another name of the CPU, on which training runs
    from skae import _base

    resolve = _base._resolve_device
    monkeypatch.setattr(_base, "_resolve_device",
                        lambda device: "cpu:0" if device == "elsewhere" else resolve(device))
    ae = Autoencoder(3, max_iter=1, random_state=0, warm_start=True).fit(unit_data)
    getattr(ae.set_params(device="elsewhere"), method)(unit_data)
    assert ae.n_iter_ == 2 and ae.device_ == "cpu:0"


def test_a_model_moved_to_another_device_takes_its_optimizer_state(unit_data, monkeypatch):
    from skae import _base

    resolve = _base._resolve_device
    monkeypatch.setattr(_base, "_resolve_device",
                        lambda device: "meta" if device == "elsewhere" else resolve(device))
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    ae.set_params(device="elsewhere")._follow_device()
    moments = [t for param_state in ae._optimizer_state[1]["state"].values()
               for t in param_state.values()]
    assert moments and all(t.device.type == "meta" for t in moments)


def test_training_leaves_no_gradients_behind(unit_data):
    ae = Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    ae.partial_fit(unit_data)
    assert all(p.grad is None for net in (ae.encoder_, ae.decoder_) for p in net.parameters())


def test_adam_state_saved_with_the_fused_kernel_loads_where_it_is_missing(unit_data,
                                                                          monkeypatch):
    from skae import _training

    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    state = ae._optimizer_state[1]
    state["param_groups"][0]["fused"] = True
    monkeypatch.setattr(_training, "_fused_adam", lambda: False)
    params = [p for net in (ae.encoder_, ae.decoder_) for p in net.parameters()]
    optimizer = _training.make_optimizer("adam", params, 1e-3, state)
    assert not optimizer.param_groups[0]["fused"]
    loss = sum(p.square().sum() for p in params)
    loss.backward()
    optimizer.step()  # a non-fused step on the loaded state


def test_a_fitted_model_follows_a_bad_device_with_a_clear_error(unit_data):
    ae = Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    with pytest.raises(ValueError, match="not a torch device"):
        ae.set_params(device="tpu").transform(unit_data)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ae.set_params(device="cuda").transform(unit_data)
    assert ae.set_params(device="cpu").transform(unit_data).shape == (200, 3)


@pytest.mark.parametrize("name", ["n_iter_", "loss_curve_", "loss_terms_", "validation_scores_",
                                  "best_loss_", "best_validation_score_"])
def test_an_unfitted_models_history_attributes_name_themselves(name):
    with pytest.raises(AttributeError, match=f"'Autoencoder' object has no attribute '{name}'"):
        getattr(Autoencoder(2), name)
