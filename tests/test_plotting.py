import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import skae
from skae import (
    Autoencoder,
    ConvAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from skae.plotting import (
    FilterDisplay,
    LatentSpaceDisplay,
    LossCurveDisplay,
    ManifoldDisplay,
    ReconstructionDisplay,
    _mosaic,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(40, 64).astype(np.float32)  # 8x8 in [0, 1]


@pytest.fixture(scope="module")
def ae(images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Autoencoder(4, max_iter=2, random_state=0).fit(images)


def tile(mosaic, r, c, h=8, w=8, pad=1):
    return mosaic[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w]


def drawn_image(display):
    return np.ma.getdata(display.ax_.images[0].get_array())


def test_mosaic_layout():
    imgs = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    m = _mosaic(imgs, 2, 3, pad=1)
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(tile(m, r, c, 2, 3), imgs[k])
    assert np.isnan(m[2]).all() and np.isnan(tile(m, 1, 2, 2, 3)).all()
    with pytest.raises(ValueError, match="do not fit"):
        _mosaic(imgs, 2, 2)


def test_reconstruction_images(ae, images):
    disp = ReconstructionDisplay.from_estimator(ae, images, n_samples=5)
    assert isinstance(disp, ReconstructionDisplay)
    assert disp.figure_ is disp.ax_.figure
    m = drawn_image(disp)
    assert m.shape == (17, 5 * 9 - 1)
    expected = ae.inverse_transform(ae.transform(images[:5]))
    for j in range(5):
        np.testing.assert_allclose(tile(m, 0, j), images[j].reshape(8, 8))
        np.testing.assert_allclose(tile(m, 1, j), expected[j].reshape(8, 8), rtol=1e-5)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["input", "reconstruction"]
    assert len(disp.figure_.axes) == 1


def test_reconstruction_colour_and_channel_0():
    rng = np.random.RandomState(0)
    X = rng.rand(6, 4 * 4 * 3)
    disp = ReconstructionDisplay(X, X, image_shape=(4, 4, 3)).plot()
    m = drawn_image(disp)
    assert m.shape == (9, 6 * 5 - 1, 3)
    np.testing.assert_allclose(tile(m, 1, 2, 4, 4), X[2].reshape(4, 4, 3))
    X2 = rng.rand(3, 4 * 4 * 2)
    m2 = drawn_image(ReconstructionDisplay(X2, X2, image_shape=(4, 4, 2)).plot())
    np.testing.assert_allclose(tile(m2, 0, 1, 4, 4), X2[1].reshape(4, 4, 2)[..., 0])


def test_reconstruction_tabular(tabular_data):
    import pandas as pd

    X = pd.DataFrame(tabular_data[:40], columns=[f"f{i}" for i in range(10)])
    est = Autoencoder(3, max_iter=2, random_state=0).fit(X)
    _fig, ax = plt.subplots()
    disp = ReconstructionDisplay.from_estimator(est, X, ax=ax)
    assert disp.ax_ is ax and disp.image_shape is None
    mse = ((X.to_numpy() - est.inverse_transform(est.transform(X))) ** 2).mean(axis=0)
    np.testing.assert_allclose([b.get_height() for b in disp.bars_], mse, rtol=1e-5)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(X.columns)


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")  # DIA's many
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "dia"])
def test_reconstruction_sparse_input(ae, images, fmt):
    from scipy import sparse

    X = sparse.csr_matrix(images).asformat(fmt)
    disp = ReconstructionDisplay.from_estimator(ae, X, n_samples=3)
    np.testing.assert_allclose(disp.X, images[:3])


def test_reconstruction_bad_image_shape(ae, images):
    with pytest.raises(ValueError, match="holds 49 values"):
        ReconstructionDisplay.from_estimator(ae, images, image_shape=(7, 7))


@pytest.mark.parametrize("value", [0, -1, 2.5, 3.0, True, "3", None])
@pytest.mark.parametrize("call", ["reconstruction", "manifold", "filters"])
def test_counts_must_be_positive_integers(ae, images, call, value):
    draw, name = {  # a float count was truncated silently, a bool counted as 1
        "reconstruction": (lambda v: ReconstructionDisplay.from_estimator(
            ae, images, n_samples=v), "n_samples"),
        "manifold": (lambda v: ManifoldDisplay.from_estimator(ae, n_per_side=v), "n_per_side"),
        "filters": (lambda v: FilterDisplay.from_estimator(ae, n_filters=v), "n_filters"),
    }[call]
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        draw(value)
    draw(np.int64(2))  # numpy integers are integers


@pytest.mark.parametrize("shape", [(8.0, 8.0), (8.5, 7.5), (True, 64), ("8", "8"), 64, (0, 8)])
def test_image_shape_must_hold_positive_integers(ae, images, shape):
    with pytest.raises(ValueError, match="image_shape must be"):
        ReconstructionDisplay.from_estimator(ae, images, image_shape=shape)


def test_latent_space_of_one_row_with_a_wide_code_says_why_it_cannot_project(ae, images):
    with pytest.raises(ValueError, match="projects onto 2 with PCA: that needs at least 2 rows"):
        LatentSpaceDisplay.from_estimator(ae, images[:1])
    assert LatentSpaceDisplay.from_estimator(ae, images[:2]).reduced


def test_latent_space_two_components(images):
    est = Autoencoder(2, max_iter=2, random_state=0).fit(images)
    y = np.arange(40) % 3
    disp = LatentSpaceDisplay.from_estimator(est, images, y)
    assert not disp.reduced
    np.testing.assert_allclose(disp.scatter_.get_offsets(), est.transform(images), rtol=1e-5)
    assert disp.ax_.get_xlabel() == "component 1"
    assert [t.get_text() for t in disp.ax_.get_legend().get_texts()] == ["0", "1", "2"]


@pytest.mark.parametrize("n_classes", [3, 12, 15, 20])
def test_latent_space_legend_has_each_class_in_its_colour(n_classes):
    from matplotlib.colors import to_rgba

    Z = np.random.RandomState(0).randn(200, 2)
    y = np.arange(200) % n_classes
    disp = LatentSpaceDisplay(Z, y).plot()
    legend = disp.ax_.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(c) for c in range(n_classes)]
    point_colours = disp.scatter_.to_rgba(disp.scatter_.get_array())
    assert len(legend.legend_handles) == n_classes
    for label, handle in enumerate(legend.legend_handles):
        first = np.flatnonzero(y == label)[0]
        np.testing.assert_allclose(to_rgba(handle.get_markerfacecolor()),
                                   point_colours[first], atol=1e-6)


def test_latent_space_many_string_classes_get_a_colour_scale():
    Z = np.random.RandomState(0).randn(200, 2)
    y = np.array([f"c{i % 25:02d}" for i in range(200)])
    disp = LatentSpaceDisplay(Z, y).plot()
    assert disp.ax_.get_legend() is None and len(disp.figure_.axes) == 2  # a colorbar
    np.testing.assert_array_equal(disp.scatter_.get_array(), np.arange(200) % 25)


def test_latent_space_pca_and_given_ax(ae, images):
    fig, ax = plt.subplots()
    disp = LatentSpaceDisplay.from_estimator(ae, images, y=np.linspace(0, 1, 40), ax=ax)
    assert disp.ax_ is ax and disp.reduced
    expected = PCA(2).fit_transform(ae.transform(images))
    np.testing.assert_allclose(disp.scatter_.get_offsets(), expected, rtol=1e-4, atol=1e-6)
    assert ax.get_xlabel() == "PC 1 of the code"
    assert len(fig.axes) == 2  # a colorbar for continuous y


def test_latent_space_one_component(images):
    est = Autoencoder(1, max_iter=2, random_state=0).fit(images)
    disp = LatentSpaceDisplay.from_estimator(est, images)
    offsets = disp.scatter_.get_offsets()
    np.testing.assert_allclose(offsets[:, 0], est.transform(images)[:, 0], rtol=1e-5)
    assert np.all(offsets[:, 1] == 0)


def test_manifold_vae(images):
    vae = VariationalAutoencoder(2, hidden_layer_sizes=(8,), max_iter=2,
                                 random_state=0).fit(images)
    disp = ManifoldDisplay.from_estimator(vae, n_per_side=4)
    ppf = norm.ppf(np.linspace(0.05, 0.95, 4))
    np.testing.assert_allclose(disp.grid_values[0], ppf)
    assert disp.images.shape == (4, 4, 8, 8)
    m = drawn_image(disp)
    # top-left tile: lowest dim 1, highest dim 2
    np.testing.assert_allclose(
        tile(m, 0, 0), vae.inverse_transform([[ppf[0], ppf[-1]]]).reshape(8, 8), rtol=1e-5)
    np.testing.assert_allclose(
        tile(m, 3, 2), vae.inverse_transform([[ppf[2], ppf[0]]]).reshape(8, 8), rtol=1e-5)


def test_manifold_plain_autoencoder_uses_code_gaussian(ae):
    _fig, ax = plt.subplots()
    disp = ManifoldDisplay.from_estimator(ae, n_per_side=3, quantile_range=(0.1, 0.9), ax=ax)
    assert disp.ax_ is ax
    count, mean, scatter = ae._code_stats
    std = np.sqrt(np.diag(scatter) / (count - 1))
    ppf = norm.ppf([0.1, 0.5, 0.9])
    z = mean.copy()
    z[0], z[1] = mean[0] + ppf[2] * std[0], mean[1] + ppf[0] * std[1]
    np.testing.assert_allclose(disp.images[2, 2], ae.inverse_transform(z[None]).reshape(8, 8),
                               rtol=1e-5, atol=1e-6)


def test_manifold_errors(images, tabular_data):
    one = Autoencoder(1, max_iter=2, random_state=0).fit(images)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        ManifoldDisplay.from_estimator(one)
    tab = Autoencoder(2, max_iter=2, random_state=0).fit(tabular_data[:40])
    with pytest.raises(ValueError, match="image shape"):
        ManifoldDisplay.from_estimator(tab)
    for bad in [(0, 0.9), None, (0.1, 0.5, 0.9), ("0.1", "0.9"), 0.5]:
        with pytest.raises(ValueError, match="quantile_range must be two numbers"):
            ManifoldDisplay.from_estimator(one, quantile_range=bad)


@pytest.mark.parametrize("make, message", [
    (lambda: FilterDisplay(np.zeros((0, 2, 2))), "at least one filter"),
    (lambda: FilterDisplay(np.zeros((2, 0, 2, 2))), "at least one filter"),
    (lambda: ManifoldDisplay(np.zeros((0, 3, 2, 2)), grid_values=([], [0, 1, 2])),
     "at least one image"),
    (lambda: ManifoldDisplay(np.zeros((3, 3, 2, 2)), grid_values=([0], [0])),
     "the 3 values of code dimension 1 and the 3 of code dimension 2"),
    (lambda: ManifoldDisplay(np.zeros((3, 3, 2, 2)), grid_values=None), "grid_values"),
    (lambda: LossCurveDisplay(None), "loss_curve must be a sequence"),
    (lambda: LossCurveDisplay([[1.0, 2.0]]), "loss_curve must be a sequence"),
    (lambda: LossCurveDisplay("abc"), "loss_curve must be a sequence"),
    (lambda: LossCurveDisplay({}), "loss_curve must be a sequence"),
    (lambda: ReconstructionDisplay(np.empty((0, 16)), np.empty((0, 16)), image_shape=(4, 4)),
     "with rows and features"),
    (lambda: ReconstructionDisplay(np.ones((2, 6)), np.ones((2, 6)), feature_names=["a"]),
     "feature_names must name the 6 features, got 1"),
])
def test_displays_built_by_hand_name_what_is_wrong(make, message):
    # these were a ZeroDivisionError, IndexErrors, numpy's and matplotlib's own errors
    with pytest.raises(ValueError, match=message):
        make().plot()


def test_a_manifold_grid_of_other_row_and_column_counts_draws_with_its_own_values():
    images = np.random.RandomState(0).rand(2, 3, 4, 4)  # 2 rows, 3 columns
    disp = ManifoldDisplay(images, grid_values=([0.0, 1.0, 2.0], [5.0, 6.0])).plot()
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="the 3 values of code dimension 1 and the 2"):
        ManifoldDisplay(images, grid_values=([5.0, 6.0], [0.0, 1.0, 2.0])).plot()


def test_loss_terms_must_be_a_mapping():
    with pytest.raises(TypeError, match="loss_terms must map each term's name"):
        LossCurveDisplay([1, 2], loss_terms=[[1, 2], [3, 4]]).plot()


def test_loss_curve(images):
    est = SparseAutoencoder(4, max_iter=3, random_state=0).fit(images)
    disp = LossCurveDisplay.from_estimator(est)
    np.testing.assert_allclose(disp.lines_["training loss"].get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(disp.lines_["training loss"].get_xdata(), [1, 2, 3])
    for name, values in est.loss_terms_.items():
        np.testing.assert_allclose(disp.lines_[name].get_ydata(), values)
        assert disp.lines_[name].get_linestyle() == "--"
    assert disp.ax_.get_xlabel() == "epoch"


def test_loss_curve_validation_and_ax(images):
    est = Autoencoder(4, max_iter=3, early_stopping=True, random_state=0).fit(images)
    _fig, ax = plt.subplots()
    disp = LossCurveDisplay.from_estimator(est, ax=ax)
    assert disp.ax_ is ax
    assert list(disp.lines_) == ["training loss", "validation loss (-score)"]
    np.testing.assert_allclose(disp.lines_["validation loss (-score)"].get_ydata(),
                               -np.asarray(est.validation_scores_))
    disp = LossCurveDisplay([1.0, -0.5]).plot()
    assert disp.ax_.get_yscale() == "linear"
    assert LossCurveDisplay([1.0, 0.5]).plot().ax_.get_yscale() == "linear"  # within a decade
    assert LossCurveDisplay([100.0, 5.0]).plot().ax_.get_yscale() == "log"


def test_loss_curve_draws_validation_scores_at_their_epochs(images, tmp_path):
    # three epochs without early stopping, then a warm start with it: epochs 4 and 5
    est = Autoencoder(4, max_iter=3, random_state=0).fit(images)
    est.set_params(early_stopping=True, warm_start=True, max_iter=2).fit(images)
    disp = LossCurveDisplay.from_estimator(est)
    line = disp.lines_["validation loss (-score)"]
    np.testing.assert_array_equal(line.get_xdata(), [4, 5])
    np.testing.assert_allclose(line.get_ydata(), -np.asarray(est.validation_scores_))
    skae.save(est, tmp_path / "m.skae")  # and after a load
    again = LossCurveDisplay.from_estimator(skae.load(tmp_path / "m.skae"))
    np.testing.assert_array_equal(again.lines_["validation loss (-score)"].get_xdata(), [4, 5])
    with pytest.raises(ValueError, match="validation_epochs has 1 entries for 2"):
        LossCurveDisplay([1.0, 0.9], validation_scores=[-1.0, -0.9],
                         validation_epochs=[2]).plot()


def test_filters_dense(images):
    est = SparseAutoencoder(6, max_iter=2, random_state=0).fit(images)
    disp = FilterDisplay.from_estimator(est, n_filters=5)
    import torch

    layer = next(m for m in est.encoder_.modules() if isinstance(m, torch.nn.Linear))
    W = layer.weight.detach().numpy()[:5].reshape(5, 8, 8)
    lo = W.min(axis=(1, 2), keepdims=True)
    expected = (W - lo) / (W.max(axis=(1, 2), keepdims=True) - lo)
    np.testing.assert_allclose(disp.tiles_, expected, rtol=1e-5, atol=1e-6)
    m = drawn_image(disp)
    assert m.shape == (2 * 9 - 1, 3 * 9 - 1)  # 5 tiles in a 2 x 3 grid
    np.testing.assert_allclose(tile(m, 1, 1), expected[4], rtol=1e-5, atol=1e-6)


def test_filters_conv(images):
    import torch

    est = ConvAutoencoder(conv_filters=(3, 2), max_iter=2, random_state=0).fit(images)
    _fig, ax = plt.subplots()
    disp = FilterDisplay.from_estimator(est, ax=ax)
    assert disp.ax_ is ax
    conv = next(m for m in est.encoder_.modules() if isinstance(m, torch.nn.Conv2d))
    K = conv.weight.detach().numpy()[:, 0]
    assert disp.tiles_.shape == K.shape
    lo = K.min(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(disp.tiles_, (K - lo) / (K.max(axis=(1, 2), keepdims=True) - lo),
                               rtol=1e-5, atol=1e-6)


def test_filters_need_image_shape(tabular_data):
    est = Autoencoder(3, max_iter=2, random_state=0).fit(tabular_data[:40])
    with pytest.raises(ValueError, match="image shape"):
        FilterDisplay.from_estimator(est)
    disp = FilterDisplay.from_estimator(est, image_shape=(2, 5))
    assert disp.tiles_.shape[1:] == (2, 5)


@pytest.mark.parametrize("call", [
    lambda est, X: ReconstructionDisplay.from_estimator(est, X),
    lambda est, X: LatentSpaceDisplay.from_estimator(est, X),
    lambda est, X: ManifoldDisplay.from_estimator(est),
    lambda est, X: LossCurveDisplay.from_estimator(est),
    lambda est, X: FilterDisplay.from_estimator(est),
])
def test_unfitted_raises(call, images):
    with pytest.raises(NotFittedError):
        call(Autoencoder(2), images)


def test_import_does_not_import_matplotlib():
    code = "import sys, skae.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_filters_draw_weights_of_constant_features_as_zero(images):
    X = images.copy()
    X[:, :8] = 0.0  # the top row of every 8x8 image is blank, as MNIST's border
    ae = Autoencoder(4, max_iter=2, random_state=0).fit(X)
    plain = FilterDisplay.from_estimator(ae)
    masked = FilterDisplay.from_estimator(ae, X=X)
    weights = ae.encoder_[0].weight.detach().numpy()
    assert np.ptp(plain.filters[:, :8]) > 0  # random initial weights, never trained
    np.testing.assert_array_equal(masked.filters[:, :8], 0.0)
    np.testing.assert_array_equal(masked.filters[:, 8:], weights[:, 8:])


def test_filters_refuse_x_of_another_width(images):
    ae = Autoencoder(4, max_iter=2, random_state=0).fit(images)
    for width in (5, 1):  # a width of 1 would broadcast, masking by the wrong feature
        with pytest.raises(ValueError, match=f"X has {width} features.*reads 64"):
            FilterDisplay.from_estimator(ae, X=images[:, :width])


def test_reconstruction_display_of_a_dataframe_shows_its_first_rows():
    """Kills: a DataFrame of images sliced to other rows than its first n_samples."""
    pd = pytest.importorskip("pandas")

    images = np.random.RandomState(0).rand(12, 16).astype(np.float32)
    frame = pd.DataFrame(images, columns=[f"p{i}" for i in range(16)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = Autoencoder(2, max_iter=2, random_state=0).fit(frame)
    disp = ReconstructionDisplay.from_estimator(ae, frame, n_samples=3)
    np.testing.assert_allclose(disp.X, images[:3])
    np.testing.assert_allclose(disp.X_reconstructed,
                               ae.inverse_transform(ae.transform(frame.iloc[:3])), rtol=1e-5)
    mosaic = np.ma.getdata(disp.ax_.images[0].get_array())
    np.testing.assert_allclose(mosaic[:4, 5:9], images[1].reshape(4, 4))


def test_latent_space_numeric_labels_colour_points_by_their_value():
    """Kills: float labels (or more than 20 integer classes) coloured by rank, not value."""
    rng = np.random.RandomState(0)
    Z = rng.randn(60, 2)
    y = rng.rand(60) ** 3  # uneven values: ranks differ from values
    disp = LatentSpaceDisplay(Z, y).plot()
    np.testing.assert_allclose(disp.scatter_.get_array(), y)
    many = (np.arange(60) % 30) * 7  # 30 integer classes: a colour scale of the values
    disp = LatentSpaceDisplay(Z, many).plot()
    np.testing.assert_allclose(disp.scatter_.get_array(), many)


def test_filter_display_shows_input_channel_zero_of_conv_kernels():
    # multi-channel conv kernels: input channel 0 of each, each tile scaled on its own
    K = np.random.RandomState(0).rand(4, 3, 3, 3)
    disp = FilterDisplay(K).plot()
    lo = K[:, 0].min(axis=(1, 2), keepdims=True)
    span = K[:, 0].max(axis=(1, 2), keepdims=True) - lo
    np.testing.assert_allclose(disp.tiles_, (K[:, 0] - lo) / span)


def test_displays_take_a_pipeline_ending_in_an_skae_model(images):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    pipe = make_pipeline(MinMaxScaler(), Autoencoder(2, image_shape=(4, 16), max_iter=2,
                                                     random_state=0)).fit(images)
    model = pipe[-1]
    disp = ReconstructionDisplay.from_estimator(pipe, images, n_samples=2)
    assert disp.image_shape[:2] == (4, 16) and disp.bars_ is None  # not a square, not bars
    manifold = ManifoldDisplay.from_estimator(pipe, n_per_side=2)
    assert manifold.images.shape[2:] == (4, 16)
    curve = LossCurveDisplay.from_estimator(pipe)
    np.testing.assert_allclose(curve.lines_["training loss"].get_ydata(), model.loss_curve_)
    filters = FilterDisplay.from_estimator(pipe, X=images)
    assert filters.tiles_.shape == (2, 4, 16)


def test_a_pipeline_that_changes_the_width_draws_in_its_own_input_shape(images):
    # the model's image_shape_ (3 x 3 of PCA's 9 components) is not the pipeline's 8 x 8
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(PCA(9), Autoencoder(2, max_iter=2, random_state=0)).fit(images)
    assert pipe[-1].image_shape_[:2] == (3, 3)
    assert ManifoldDisplay.from_estimator(pipe, n_per_side=2).images.shape[2:] == (8, 8)
    disp = ReconstructionDisplay.from_estimator(pipe, images, n_samples=2)
    assert disp.image_shape[:2] == (8, 8)


@pytest.mark.parametrize("display", [ManifoldDisplay, LossCurveDisplay, FilterDisplay])
def test_model_displays_refuse_what_is_not_an_skae_model(images, display):
    with pytest.raises(TypeError, match=f"{display.__name__} needs a fitted skae estimator.*"
                                        "got PCA"):
        display.from_estimator(PCA(2).fit(images))


def test_latent_space_refuses_labels_it_cannot_order_or_pair(images):
    Z = np.random.RandomState(0).rand(4, 2)
    with pytest.raises(TypeError, match="y's labels must be of one orderable type"):
        LatentSpaceDisplay(Z, y=["a", None, "b", "a"]).plot()
    with pytest.raises(ValueError, match=r"one label per row of Z \(4\), got shape \(\)"):
        LatentSpaceDisplay(Z, y=3).plot()
    LatentSpaceDisplay(Z, y=np.array([[0], [1], [1], [0]])).plot()  # a column is taken
