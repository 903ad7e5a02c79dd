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


def _load(script):
    """A fresh copy of ``benchmarks/<script>.py``, its folder on ``sys.path`` as when it runs
    (the scripts import ``_cli`` and each other from there)."""
    import importlib.util

    folder = str(ROOT / "benchmarks")
    spec = importlib.util.spec_from_file_location(script, ROOT / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def test_cells_run_in_their_own_process_and_report_failures():
    compare_pca = _load("compare_pca")
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

    compare_pca = _load("compare_pca")

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
    (["--models", "KernelPCA", "--n-components", "1400", "--kernel-rows", "5000"],
     r"--n-components \[1400\] too large for KernelPCA \(at most 1347\)"),  # training rows
    (["--models", "Foo"], r"unknown model\(s\) \['Foo'\]"),
    (["--dataset", "mnist"], "MNIST file .* is missing"),
])
def test_compare_pca_stops_bad_input_with_one_line_before_fitting(tmp_path, monkeypatch,
                                                                  capsys, args, message):
    compare_pca = _load("compare_pca")
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
    # sparse_code_scale.py, input_standardisation.py and output_bias.py subclass skae's
    # private hooks; a changed hook signature broke the first without a test noticing
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import input_standardisation
    import output_bias
    import sparse_code_scale

    X = np.random.RandomState(0).rand(60, 16)
    unscaled = sparse_code_scale.UnscaledSparseAutoencoder(8, max_iter=2, random_state=0)
    assert unscaled.fit(X).partial_fit(X)._architecture.code_scale == 1.0
    raw = input_standardisation.raw_input(input_standardisation.Autoencoder)(3, max_iter=2)
    assert raw.fit(X)._x_scale == 1.0 and not raw._x_mean.any()
    with_bias = input_standardisation.raw_input(input_standardisation.Autoencoder)(
        3, learning_rate_init=1e-12, max_iter=1).fit(X / 5)
    bias = with_bias.decoder_.output_layer.bias.detach().numpy()
    np.testing.assert_allclose(bias, -np.log(5 / X.mean(axis=0) - 1), rtol=1e-5)
    zero = output_bias.zero_output_bias(output_bias.Autoencoder)(3, learning_rate_init=1e-12,
                                                                 max_iter=1)
    assert zero.fit(X / 5).decoder_.output_layer.bias.detach().abs().max() < 1e-9
    start = output_bias.Autoencoder(3, max_iter=1).fit(X / 5).decoder_.output_layer.bias
    assert start.max() < -1  # logit of means about 0.1: the variant is what differs
    vae = output_bias.mean_output_bias(output_bias.VariationalAutoencoder)(2, max_iter=1)
    assert vae.fit(X / 5).decoder_.output_layer.bias.max() < -1  # which skae's VAE keeps at 0


def test_raw_input_computes_the_standardised_objective_on_the_same_function(monkeypatch):
    # input_standardisation.py compares two parameterisations of one model: moved to raw
    # input, the same encoder must give the same loss terms, the contraction included
    import numpy as np
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import input_standardisation as script

    X = np.random.RandomState(0).rand(64, 16).astype(np.float32)
    for cls, kw in [(script.ContractiveAutoencoder, {}),
                    (script.ContractiveAutoencoder, {"jacobian": "exact"}),
                    (script.SparseAutoencoder, {})]:
        std = cls(3, max_iter=1, random_state=0, **kw).fit(X)
        raw = script.raw_input(cls)(3, max_iter=1, random_state=0, **kw).fit(X)
        raw.decoder_.load_state_dict(std.decoder_.state_dict())
        first, raw_first = std.encoder_[0], raw.encoder_[0]
        with torch.no_grad():  # W (x - m) / s + b = (W / s) x + b - (W / s) m
            raw_first.weight.copy_(first.weight / std._x_scale)
            raw_first.bias.copy_(first.bias - raw_first.weight @ torch.from_numpy(
                std._x_mean.astype(np.float32)))
        batch = torch.from_numpy(X)
        terms = [model._objective(torch.Generator().manual_seed(0))(batch)
                 for model in (std, raw)]
        assert terms[0].keys() == terms[1].keys() and len(terms[0]) == 2
        for name in terms[0]:
            assert terms[1][name].item() == pytest.approx(terms[0][name].item(), rel=1e-4)


def _stopped(function, capsys):
    """What ``function()`` said as it stopped: its exit message, or argparse's last line."""
    with pytest.raises(SystemExit) as stopped:
        function()
    code = stopped.value.code
    return str(code) if isinstance(code, str) else capsys.readouterr().err.strip().splitlines()[-1]


def test_compare_pca_refuses_a_foreign_csv_and_leaves_it_untouched(tmp_path, capsys):
    compare_pca = _load("compare_pca")
    foreign = tmp_path / "results_digits.csv"
    foreign.write_text("a,b\n1,2\n")
    said = _stopped(lambda: compare_pca.main(["--models", "PCA", "--n-components", "2",
                                              "--out", str(tmp_path), "--resume"]), capsys)
    assert re.fullmatch(r"compare_pca.py: error: .*results_digits.csv is not a results CSV of "
                        r"this script \(columns \['a', 'b'\]\).*", said), said
    assert foreign.read_text() == "a,b\n1,2\n"


MNIST_SCRIPTS = ["hinton2006", "sparse_code_scale", "input_standardisation", "mnist_claims",
                 "output_bias", "precision", "transform_threads"]


@pytest.mark.parametrize("script", MNIST_SCRIPTS)
def test_the_mnist_scripts_stop_with_one_line_without_mnist(tmp_path, monkeypatch, capsys,
                                                            script):
    module = _load(script)
    monkeypatch.setenv("SKAE_DATA", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    said = _stopped(lambda: module.main(["--out", str(tmp_path / "out")]), capsys)
    assert re.match(f"{script}.py: error: MNIST file .* is missing", said), said


@pytest.mark.parametrize("script, out, message", [
    ("hinton2006", "file", r"--out: .*file is not a folder"),
    ("sparse_code_scale", "file", r"--out: .*file is not a folder"),
    ("input_standardisation", "file/below", r"--out: cannot write the results to .*below"),
    ("output_bias", "file", r"--out: .*file is not a folder"),
    ("precision", "file", r"--out: .*file is not a folder"),
    ("transform_threads", "file", r"--out: .*file is not a folder"),
    ("training_budget", "file", r"--out: .*file is not a folder"),
    ("mnist_claims", ".", r"--out: .* is a folder, not a file"),
    ("mnist_claims", "file/claims.md", r"--out: .*file is not a folder"),
    ("speed", "file", r"--out: .*file is not a folder"),
    ("levers", "file", r"--out: .*file is not a folder"),
])
def test_a_bad_out_stops_with_one_line_before_any_work(tmp_path, capsys, script, out, message):
    module = _load(script)
    # no data: any work before the check fails with another error than this one
    module.load_mnist_or_fail = lambda script: (None, None)
    (tmp_path / "file").write_text("not a folder")
    said = _stopped(lambda: module.main(["--out", str(tmp_path / out)]), capsys)
    assert re.match(f"{script}.py: error: {message}", said) and "\n" not in said, said
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "argument --repeats: must be a positive integer, got 0"),
    (["--matmul-size", "0"], "argument --matmul-size: must be a positive integer"),
    (["--threads", "-2"], "argument --threads: must be a positive integer"),
    (["--rss-epochs", "0"], "argument --rss-epochs: must be a positive integer"),
    (["--rows", "20"], "argument --rows: must be an integer of at least 256, got 20"),
    (["--rows", "-1790"], "argument --rows: must be an integer of at least 256"),
    (["--rows", "0"], "argument --rows: must be an integer of at least 256"),
    (["--rows", "many"], "argument --rows: invalid int value: 'many'"),
    (["--device", "foo"], r"argument --device: 'foo' is not a torch device name"),
    (["--device", "meta"], "argument --device: 'meta': only cpu and cuda are benchmarked"),
    (["--device", "cuda"], "argument --device: 'cuda': torch sees no CUDA GPU here"),
])
def test_speed_refuses_bad_options(monkeypatch, capsys, args, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    speed = _load("speed")
    said = _stopped(lambda: speed.parse_args(args), capsys)
    assert re.fullmatch(f"speed.py: error: {message}.*", said), said


def test_levers_refuses_a_device_that_is_not_cpu_or_cuda(capsys):
    levers = _load("levers")
    said = _stopped(lambda: levers.parse_args(["--device", "meta"]), capsys)
    assert "argument --device: 'meta': only cpu and cuda are benchmarked" in said
    assert levers.parse_args(["--device", "cpu:0"]).device == "cpu"


def test_speed_measures_the_memory_of_the_chosen_models_only(monkeypatch):
    speed = _load("speed")
    started = []

    class Worker:
        def __init__(self, python, mode, spec):
            started.append((spec["model"], spec["dtype"]))

        def read(self):
            return {"growth_mb": 1.0, "start_mb": 100.0, "model_mb": 0.1, "x_mb": 1.0,
                    "hwm_reset": True, "gpu_mb": None}

        def close(self):
            pass

    monkeypatch.setattr(speed, "Worker", Worker)
    import numpy as np

    args = speed.parse_args(["--models", "dense", "dense"])
    assert args.models == ["dense"]
    speed.bench_memory(np.zeros((300, 64), np.float32), args, speed.Results(), "X.npy", 1)
    assert started == [("dense", "float32"), ("dense", "float64")]


def test_a_partial_levers_run_writes_another_file_and_runs_each_lever_once(tmp_path):
    levers = _load("levers")
    calls = []

    def lever(rounds):
        calls.append(rounds)
        return [("snapshot", "case", "before", "after", 2e-3, 1e-3)]

    levers.LEVERS["snapshot"] = lever
    levers.main(["--levers", "snapshot", "snapshot", "--rounds", "1", "--out", str(tmp_path)])
    assert calls == [1]
    assert [path.name for path in tmp_path.iterdir()] == ["levers_cpu_partial.md"]
    full = levers.parse_args([])
    full.levers = levers.default_levers()
    assert levers.report_name(full) == "levers_cpu.md"
    full.rounds = 1
    assert levers.report_name(full) == "levers_cpu_partial.md"


def test_a_partial_precision_run_compares_both_precisions_in_its_own_file(tmp_path):
    import numpy as np

    precision = _load("precision")
    rng = np.random.RandomState(0)
    precision.load_mnist_or_fail = lambda script: (rng.rand(600, 784), rng.rand(100, 784))
    precision.main(["--models", "dense", "--epochs", "3", "--out", str(tmp_path)])
    assert [path.name for path in tmp_path.iterdir()] == ["precision_cpu_partial.md"]
    text = (tmp_path / "precision_cpu_partial.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| Autoencoder(32)"))
    assert len(row.split("|")) == 10 and "nan" not in row
    assert "dense, float32: " in text and "dense, bfloat16: " in text
    assert "--models dense --epochs 3" in text
    assert precision.parse_args([]).report == "precision_cpu.md"


def test_transform_threads_times_both_orders_with_both_blas_settings(tmp_path):
    import numpy as np

    script = _load("transform_threads")
    script.load_mnist_or_fail = lambda name: (np.random.RandomState(0).rand(300, 784), None)
    script.main(["--rounds", "1", "--out", str(tmp_path)])
    rows = [line for line in (tmp_path / "transform_threads.md").read_text().splitlines()
            if line.startswith(("| default threads", "| 1 thread"))]
    assert len(rows) == 2 and all(len(row.split("|")) == 12 for row in rows)
    assert "nan" not in "".join(rows)


def test_training_budget_reports_every_budget_of_every_dataset(tmp_path):
    script = _load("training_budget")
    script.BUDGETS, script.SEEDS = [(64, 1), (32, 2)], (0,)
    script.ESTIMATOR_BUDGETS = [(1, 10, False), (2, 10**6, True)]
    script.main(["--out", str(tmp_path)])
    text = (tmp_path / "training_budget.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| 64 |", "| 32 |"))]
    assert len(rows) == 6 and text.count("PCA's test R²") == 3
    # the steps taken: one epoch of batches of 64, two of 32, on each training split
    assert "| 64 | 1 | 7 | " in text and "| 32 | 2 | 14 | " in text  # 426 breast-cancer rows
    # every estimator on the digits at one epoch; two more only where the stop ends early
    for label, _ in script.ESTIMATORS:
        batch = 100 if label.startswith("Variational") else 256
        assert f"| {label} | {batch} | 1 | 10 | " in text
        again = f"| {label} | {batch} | 2 | 1e+06 | "
        assert (again in text) == label.startswith(script.UNSTOPPED)
    # epochs and steps of one epoch over 1,347 training digits: 6 batches of 256, 14 of 100
    assert "| 1 [1, 1] | 6 [6, 6] |" in text and "| 1 [1, 1] | 14 [14, 14] |" in text


def test_mnist_claims_measures_each_claim_once(tmp_path):
    mnist_claims = _load("mnist_claims")
    calls = []
    mnist_claims.load_mnist_or_fail = lambda script: (None, None)
    mnist_claims.CLAIMS["vae"] = lambda data: calls.append(data) or ([("a", "1")], True)
    out = tmp_path / "claims.md"
    mnist_claims.main(["--only", "vae", "vae", "--out", str(out)])
    assert len(calls) == 1
    assert out.read_text().count("### vae: PASS") == 1


def _stub(folder, name, text):
    path = folder / name
    path.write_text("#!/bin/sh\n" + text + "\n")
    path.chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
@pytest.mark.parametrize("status", [0, 3])
def test_run_gpu_runs_from_the_root_and_fails_when_a_step_fails(tmp_path, status):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    # python3 and nvidia-smi stand in for the real ones: each call is logged with its cwd
    for name in ("python3", "nvidia-smi"):
        _stub(bin_, name, f'echo "$PWD {name} $*" | tr "\\n" " " >> "{tmp_path}/calls"\n'
              f'echo >> "{tmp_path}/calls"; exit {status}')
    env = dict(os.environ, PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}", OUT="gpu")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert (done.returncode != 0) == (status != 0), done.stdout + done.stderr
    # every step ran, from the root, and wrote to $OUT relative to the caller's folder
    assert len(calls) == 6, calls
    assert all(call.startswith(f"{ROOT} ") for call in calls), calls
    assert any(f"benchmarks/speed.py --device cuda --no-compile --out {tmp_path}/gpu" in call
               for call in calls), calls
    assert any(f"benchmarks/precision.py --device cuda --out {tmp_path}/gpu" in call
               for call in calls), calls
    log = (tmp_path / "gpu" / "run.log").read_text()
    assert ("6 step(s) failed" in log) == (status != 0), log
