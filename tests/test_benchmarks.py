"""Smoke run of the main job, ``benchmarks/compare_pca.py``, on a few of its cells."""

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# a cell of a CSV written before the "settings" column existed
OLD_CSV = """dataset,model,n_components,train_rows,mse_per_pixel,sq_error_per_image,\
probe_accuracy,fit_time_s,transform_time_s,peak_fit_mb,n_iter
digits,PCA,2,1347,0.05302,3.39,0.589,0.01,0.0006,2,
"""


def test_compare_pca_writes_every_cell(tmp_path):
    # --resume keeps the old PCA cell, fits the two others, and rewrites the CSV in
    # today's columns before appending to it
    (tmp_path / "results_digits.csv").write_text(OLD_CSV)
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, str(ROOT / "benchmarks" / "compare_pca.py"), "--n-components",
               "2", "--max-iter", "2", "--models", "PCA", "KernelPCA", "Autoencoder",
               "--out", str(tmp_path), "--resume"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"compare_pca failed:\n{done.stdout}\n{done.stderr}"
    with open(tmp_path / "results_digits.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = {row["model"]: row for row in reader}
    assert "settings" in reader.fieldnames and None not in rows["Autoencoder"]
    assert set(rows) == {"PCA", "KernelPCA", "Autoencoder"}
    assert rows["PCA"]["fit_time_s"] == "0.01"  # carried over, not refitted
    for row in rows.values():
        # each cell ran in its own process and measured its own fit
        assert 0 <= float(row["peak_fit_mb"]) < 2000
        assert 0 < float(row["mse_per_pixel"]) < 1
    assert rows["Autoencoder"]["n_iter"] == "2"
    # KernelPCA is tuned on its training rows: the chosen values are recorded
    settings = dict(item.split("=") for item in rows["KernelPCA"]["settings"].split()
                    if "=" in item)
    assert set(settings) == {"alpha", "gamma"}
    assert all(math.isfinite(float(value)) for value in settings.values())
    assert (tmp_path / "results_digits.md").stat().st_size > 0
    assert (tmp_path / "results_digits.png").stat().st_size > 0


def _load_compare_pca():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compare_pca", ROOT / "benchmarks" / "compare_pca.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cells_run_in_their_own_process_and_report_failures():
    compare_pca = _load_compare_pca()
    assert compare_pca.in_fresh_process(os.getpid) != os.getpid()
    assert compare_pca.in_fresh_process(divmod, 7, 2) == (3, 1)
    assert compare_pca.in_fresh_process(print, "a result of None") is None
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        compare_pca.in_fresh_process(divmod, 1, 0)
    with pytest.raises(RuntimeError, match="died"):
        compare_pca.in_fresh_process(os._exit, 3)


def test_an_interrupted_cell_does_not_outlive_the_parent():
    import multiprocessing
    import signal
    import time

    compare_pca = _load_compare_pca()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    others = set(multiprocessing.active_children())  # any that earlier tests left
    previous = signal.signal(signal.SIGALRM, interrupt)
    start = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            compare_pca.in_fresh_process(time.sleep, 60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 30
    assert set(multiprocessing.active_children()) <= others


@pytest.mark.parametrize("args, message", [
    (["--n-components", "0"], "argument --n-components: must be a positive integer"),
    (["--max-iter", "0"], "argument --max-iter: must be a positive"),  # was "the default"
    (["--n-components", "100"], r"--n-components \[100\] too large for PCA \(at most 64\)"),
    (["--kernel-rows", "20", "--models", "KernelPCA", "Autoencoder"],
     r"--n-components \[32, 64\] too large for KernelPCA \(at most 20\)"),
    (["--models", "Foo"], r"unknown model\(s\) \['Foo'\]"),
    (["--dataset", "mnist"], "MNIST file .* is missing"),
])
def test_compare_pca_stops_bad_input_with_one_line_before_fitting(tmp_path, monkeypatch,
                                                                  capsys, args, message):
    compare_pca = _load_compare_pca()
    monkeypatch.setenv("SKAE_DATA", str(tmp_path))  # no MNIST there
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    with pytest.raises(SystemExit) as stopped:
        compare_pca.main([*args, "--out", str(tmp_path / "out")])
    said = str(stopped.value.code) if stopped.value.code != 2 else capsys.readouterr().err
    assert re.search(f"compare_pca.py: error: {message}", said), said
    assert not (tmp_path / "out" / "results_digits.csv").exists()  # nothing fitted


def _no_network(*args, **kwargs):
    raise OSError("no network in this test")


def test_the_benchmarks_variants_keep_up_with_skaes_hooks(monkeypatch):
    # sparse_code_scale.py and input_standardisation.py subclass skae's private hooks; a
    # changed hook signature broke the first without a test noticing
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import input_standardisation
    import sparse_code_scale

    X = np.random.RandomState(0).rand(60, 16)
    unscaled = sparse_code_scale.UnscaledSparseAutoencoder(8, max_iter=2, random_state=0)
    assert unscaled.fit(X).partial_fit(X)._architecture.code_scale == 1.0
    raw = input_standardisation.raw_input(input_standardisation.Autoencoder)(3, max_iter=2)
    assert raw.fit(X)._x_scale == 1.0
