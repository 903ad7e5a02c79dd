"""Smoke runs of the scripts in examples/: each exits 0 and writes its outputs; and their
command lines: bad options end in argparse's one-line error, not a traceback.

To cover another example, add one line to ``EXAMPLES``: the script, its arguments (``{tmp}``
is the test's temporary folder) and the files it must write there.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = [
    ("grid_search_pipeline.py", ["--quick", "--out", "{tmp}"], ["grid_search_pipeline.png"]),
    ("plot_reconstructions.py", ["--quick", "--out", "{tmp}/reconstructions.png"],
     ["reconstructions.png"]),
    ("plot_convolutional.py", ["--quick", "--out", "{tmp}/convolutional.png"],
     ["convolutional.png"]),
    ("plot_denoising.py", ["--quick", "--out", "{tmp}/denoising.png"], ["denoising.png"]),
    ("plot_sparse_filters.py", ["--quick", "--out", "{tmp}/sparse_filters.png"],
     ["sparse_filters.png"]),
    ("plot_contractive.py", ["--quick", "--out", "{tmp}/contractive.png"], ["contractive.png"]),
    ("plot_vae_manifold.py", ["--quick", "--out", "{tmp}/vae_manifold"], ["vae_manifold.png"]),
    ("plot_novelty_detection.py", ["--quick", "--out", "{tmp}/novelty_detection.png"],
     ["novelty_detection.png"]),
]


def run_example(script, args, tmp_path, **env):
    """``script`` run with ``args`` in ``tmp_path``, as a user would from a shell."""
    env = dict(os.environ, MPLBACKEND="Agg", **env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if env.get("SKAE_DATA"):  # the README's ../shared/data, from the script's own folder
        env["SKAE_DATA"] = str(Path(env["SKAE_DATA"]).expanduser().resolve())
    command = [sys.executable, str(ROOT / "examples" / script)]
    command += [arg.format(tmp=tmp_path) for arg in args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.parametrize("script, args, outputs", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_runs(script, args, outputs, tmp_path):
    done = run_example(script, args, tmp_path)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    for name in outputs:
        written = tmp_path / name
        assert written.is_file() and written.stat().st_size > 0, f"{script} wrote no {name}"
        assert f"written to {written};" in done.stdout, "the message names another file"


@pytest.fixture
def example(monkeypatch):
    """A function that imports an example script as a module (as the scripts import _common)."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return lambda script: importlib.import_module(script.removesuffix(".py"))


# (script, arguments, what the error line names); {tmp} is the test's temporary folder,
# which holds a file named "file".
BAD_ARGS = [
    ("plot_reconstructions.py", ["--n-samples", "-5"], "--n-samples: must be 0"),
    ("plot_reconstructions.py", ["--quick", "--n-samples", "5"], "at least 32"),
    ("plot_reconstructions.py", ["--random-state", "-1"], "--random-state"),
    ("plot_reconstructions.py", ["--random-state", str(2**32)], "--random-state"),
    ("plot_reconstructions.py", ["--max-iter", "two"], "--max-iter: invalid int value"),
    ("plot_reconstructions.py", ["--out", "{tmp}/file/x.png"], "is not a folder"),
    ("plot_reconstructions.py", ["--out", "{tmp}/x.foo"], "cannot write a figure as '.foo'"),
    ("plot_convolutional.py", ["--batch-size", "0"], "--batch-size"),
    ("plot_denoising.py", ["--batch-size", "-3"], "--batch-size"),
    ("plot_contractive.py", ["--contraction-weight", "-1"], "--contraction-weight"),
    ("plot_contractive.py", ["--contraction-weight", "nan"], "--contraction-weight"),
    ("plot_sparse_filters.py", ["--n-components", "0"], "--n-components"),
    ("plot_sparse_filters.py", ["--alpha", "-1"], "--alpha"),
    ("plot_sparse_filters.py", ["--sparsity-weight", "inf"], "--sparsity-weight"),
    ("train_data_parallel.py", ["--device", "foo"], "--device: invalid choice"),
    ("train_data_parallel.py", ["--n-components", "0"], "--n-components"),
    ("grid_search_pipeline.py", ["--cv", "1"], "--cv"),
    ("grid_search_pipeline.py", ["--quick", "--n-samples", "5"], "too few for 2-fold CV"),
    ("grid_search_pipeline.py", ["--n-samples", "-1"], "--n-samples"),
    ("grid_search_pipeline.py", ["--n-jobs", "0"], "--n-jobs"),
    ("grid_search_pipeline.py", ["--out", "{tmp}/file/x.png"], "is not a folder"),
    ("plot_novelty_detection.py", ["--inliers", *"0123456789"], "at least one digit out"),
]


@pytest.mark.parametrize("script, args, message", BAD_ARGS,
                         ids=[f"{e[0]} {' '.join(e[1])}" for e in BAD_ARGS])
def test_bad_option_is_a_usage_error(example, script, args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exc:
        example(script).parse_args([arg.format(tmp=tmp_path) for arg in args])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in last and message in last, last  # prog: sys.argv[0]


@pytest.mark.parametrize("args", [["--alpha", "-1"], ["--out", "{tmp}/file/x.png"]])
def test_bad_option_ends_without_traceback(args, tmp_path):
    (tmp_path / "file").write_text("")
    done = run_example("plot_sparse_filters.py", args, tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("plot_sparse_filters.py: error: ")


def test_cuda_without_a_gpu_is_a_usage_error(example, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(SystemExit) as exc:
        example("train_data_parallel.py").parse_args(["--device", "cuda"])
    assert exc.value.code == 2
    assert "0 CUDA GPU(s)" in capsys.readouterr().err


def test_out_folder_and_suffix(example, tmp_path):
    parse_args = example("plot_reconstructions.py").parse_args
    assert parse_args(["--out", str(tmp_path)]).out == tmp_path / "plot_reconstructions.png"
    assert parse_args(["--out", str(tmp_path / "a")]).out == tmp_path / "a.png"
    assert parse_args(["--out", str(tmp_path / "new" / "b.pdf")]).out == tmp_path / "new/b.pdf"
    search_args = example("grid_search_pipeline.py").parse_args(["--out", str(tmp_path)])
    assert search_args.out == tmp_path / "grid_search_pipeline.png"


def test_write_figure_failure_is_one_line(example, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=r"^error: cannot write .*x\.png: "):
        example("_common.py").write_figure(plt.figure(), tmp_path / "file" / "x.png")


def test_quick_keeps_the_options_given(example):
    parse_args = example("plot_reconstructions.py").parse_args
    assert (parse_args(["--quick"]).n_samples, parse_args(["--quick"]).max_iter) == (500, 2)
    assert parse_args(["--quick", "--n-samples", "0"]).n_samples == 0  # 0: all rows
    assert parse_args(["--quick", "--max-iter", "7"]).max_iter == 7
    search = example("grid_search_pipeline.py").parse_args
    assert (search(["--quick"]).cv, search(["--quick"]).n_samples) == (2, 300)
    assert search(["--quick", "--cv", "5"]).cv == 5
    assert search(["--quick", "--n-jobs", "2"]).n_jobs == 2
    assert search([]).cv == 3


def test_inliers_drop_duplicates(example):
    args = example("plot_novelty_detection.py").parse_args(["--inliers", "3", "0", "3"])
    assert args.inliers == [0, 3]


def test_grid_search_subset_is_stratified(example):
    X, y = example("grid_search_pipeline.py").load_data("digits", 50, 0)
    assert X.shape == (50, 64)
    assert np.bincount(y).tolist() == [5] * 10


def test_data_parallel_keeps_omp_num_threads(tmp_path):
    done = run_example("train_data_parallel.py", ["--quick", "--max-iter", "1"], tmp_path,
                       OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr
    assert "1 thread(s) each" in done.stdout


def _readme_python_blocks():
    """The ```python blocks of README.md, in order."""
    blocks, current = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_readmes_first_snippet_runs_and_its_pipeline_classifies_the_digits():
    """The README's first code: a default Autoencoder(16) where PCA(16) would stand, before
    a logistic regression. It runs as printed, and its codes keep the digits apart."""
    namespace = {}
    exec(compile(_readme_python_blocks()[0], "README.md", "exec"), namespace)
    pipe, X, y = namespace["pipe"], namespace["X"], namespace["y"]
    assert type(pipe[0]).__name__ == "Autoencoder" and pipe[0].n_components_ == 16
    assert pipe.score(X, y) > 0.9
