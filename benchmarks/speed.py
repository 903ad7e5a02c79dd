"""Speed of skae on the CPU (or a CUDA GPU), as ratios measured in one run.

Shared machines drift (other jobs, turbo, thermal), so every number that matters is a ratio
of two times measured in the same run, with the candidates interleaved round by round (the
order rotates each round): the median over the rounds of the ratio of the two times taken
in the same round (the times' best and median are reported beside it):

- ``epoch``: one epoch of three networks -- the default ``Autoencoder(32)`` (784-32-784),
  the chapter's ``ConvAutoencoder`` (Conv 16-8-8 with pooling, mirrored) and
  ``Autoencoder(30, hidden_layer_sizes=(1000, 500, 250), code_activation="identity")``
  (Hinton & Salakhutdinov's 784-1000-500-250-30) -- against
  (a) a plain PyTorch loop written the obvious way (same layers, batch size and optimizer,
  sigmoid + ``binary_cross_entropy``, batches gathered with ``randperm``),
  (b) ``MLPRegressor(hidden_layer_sizes=...).partial_fit(X, X)`` (dense networks only),
  (c) the FLOP limit: training FLOPs (per sample 3 x 2 x the multiply-adds of every dense
  and conv layer, counted from the layer shapes: forward, and a backward of twice the
  forward) over the fp32 matmul rate of a large ``torch.mm`` measured every round, and
  (d) Keras 3 on TensorFlow running the chapter's own model with skae's batch size and
  optimizer (Adam, 1e-3); skipped when ``keras`` with a TensorFlow backend is not
  importable (``--keras-python`` points at another interpreter that has it), and
  (e) the plain loop with its network under ``torch.compile``: the compile lever, with the
  time of its first epoch, compilation included (``--no-compile`` skips it);
  skae's epoch is a steady-state ``partial_fit`` call (the first call, which also computes
  the scaling statistics and builds the network, is reported apart); ``partial_fit`` also
  validates ``X`` and encodes it once to update the code statistics used by ``sample``, so
  the training loop alone (the private ``_train``) and the pass that encodes ``X`` for
  ``sample``'s code statistics (the private ``_update_code_distribution``) are reported too,
  and so is the epoch of a second model with the opt-in ``precision="bfloat16"``, with its
  own lines under the targets (on a GPU, where it computes bfloat16);
- ``transform``: ``transform`` of 10,000 rows against ``PCA(n_components_).transform``;
- ``memory``: the growth of the peak resident set size during ``fit`` (2 epochs) over the
  RSS just before it, of the dense net on float32 and float64 ``X`` and the conv net on
  float32 (those of them in ``--models``), each in a fresh process (after a warm-up fit on
  8 rows in batches of 8, so that torch's one-time set-up is not counted but the fit's own
  batch buffers are);
- ``scaling``: the default model's epoch at 1/6, 1/2 and all of the rows (10k, 30k and 60k
  on MNIST); the time per row should not grow.

The targets of the issue are printed as PASS/FAIL lines, and everything is written to
``benchmarks/results/speed_cpu.md`` and ``.csv``.

``--device cuda`` runs skae, the plain loops (their data and permutation on the GPU) and the
matmul rate on the GPU, and writes ``speed_cuda.md`` and ``.csv``, named by the GPU model;
MLPRegressor stays on the host's CPU, and the memory rows add the GPU's peak allocation.
Every GPU candidate is timed up to a ``torch.cuda.synchronize()``. The targets are the CPU's,
reported for comparison::

    SKAE_DATA=../shared/data python benchmarks/speed.py                 # MNIST, ~12 minutes
    SKAE_DATA=../shared/data python benchmarks/speed.py --keras-python /path/to/tf-venv/bin/python
    SKAE_DATA=../shared/data python benchmarks/speed.py --threads 1     # on a busy machine
    python benchmarks/speed.py --quick          # smoke test, about a minute: speed_cpu_quick.md
    SKAE_DATA=../shared/data python benchmarks/speed.py --device cuda --no-compile

Keras (``pip install tensorflow-cpu``, an optional benchmark dependency) always runs in a
separate process, fed the same float32 array through a temporary ``.npy`` file.

Threads: every candidate gets the same number (torch, BLAS through threadpoolctl, and
TensorFlow's intra- and inter-op pools). When another job holds one of the cores, torch's
OpenMP threads wait on each other at every parallel region and a 2-thread epoch can take
5-15 times as long as a 1-thread one (TensorFlow degrades far less), so on a shared machine
``--threads 1`` gives the steadier ratios; the load average is recorded with the results.
"""

import argparse
import csv
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from _cli import at_least, check_out, positive_int, torch_device

RESULTS = Path(__file__).resolve().parent / "results"  # the default --out, from any cwd

TRANSFORM_ROWS = 10_000
# the fewest --rows: PCA(n_components_) in the transform section needs as many rows as the
# conv net's code has values (128 on MNIST)
MIN_ROWS = 256
DEEP_HIDDEN = (1000, 500, 250)
WORKER_TAG = "SPEED "  # the lines a worker process answers with start with this

# Targets of the issue: (model, what, limit)
TARGETS = {
    ("dense", "MLPRegressor"): 0.6,
    ("dense", "FLOP limit"): 2.5,
    ("conv", "FLOP limit"): 3.0,
    ("conv", "plain loop"): 0.5,
    ("conv", "Keras"): 0.5,
}
TRANSFORM_TARGET = 1.5
RSS_TARGET_MB = 200.0

VERDICTS = {"PASS": "pass", "FAIL": "**fail**", "SKIP": "skipped",
            "n/a (GPU)": "for comparison (a CPU target)"}
COLUMNS = ["section", "model", "measure", "rows", "median", "best", "ratio", "target",
           "result", "note"]


# --------------------------------------------------------------------------- models


def skae_factory(model, device="cpu"):
    """A fresh skae estimator with default training settings."""
    from skae import Autoencoder, ConvAutoencoder

    if model == "dense":
        return Autoencoder(32, random_state=0, device=device)
    if model == "conv":
        return ConvAutoencoder(random_state=0, device=device)
    return Autoencoder(30, hidden_layer_sizes=DEEP_HIDDEN, code_activation="identity",
                       random_state=0, device=device)


MODEL_LABELS = {
    "dense": "Autoencoder(32): 784-32-784",
    "conv": "ConvAutoencoder(): the chapter's conv net",
    "deep": "Autoencoder(30, hidden_layer_sizes=(1000, 500, 250)): 784-1000-500-250-30",
}
MLP_HIDDEN = {"dense": (32,), "deep": DEEP_HIDDEN + (30,) + DEEP_HIDDEN[::-1]}


def conv_sizes(image_shape, stages=3):
    sizes = [tuple(image_shape[:2])]
    for _ in range(stages):
        sizes.append(tuple((s + 1) // 2 if s > 1 else 1 for s in sizes[-1]))
    return sizes


def plain_network(model, n_features, image_shape):
    """The same layers as skae's network, written as one would by hand (sigmoid output)."""
    from torch import nn

    if model == "conv":
        c = image_shape[2]
        sizes = conv_sizes(image_shape)
        return nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(size=sizes[2]),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(size=sizes[1]),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Upsample(size=sizes[0]),
            nn.Conv2d(16, c, 3, padding=1), nn.Sigmoid())
    widths = (n_features,) + ((32,) if model == "dense" else DEEP_HIDDEN + (30,))
    layers = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    if model == "deep":
        layers.pop()  # linear 30-unit code, as skae's identity code activation
    widths = widths[::-1]
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    layers[-1] = nn.Sigmoid()
    return nn.Sequential(*layers)


class PlainLoop:
    """The obvious PyTorch training loop: randperm, index, forward, BCE, backward, step."""

    def __init__(self, model, X, image_shape, batch_size, learning_rate, compiled=False,
                 device="cpu"):
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.device = device
        self.network = plain_network(model, X.shape[1], image_shape).to(device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=learning_rate)
        if compiled:  # forward and backward graphs compiled by inductor at the first batch
            self.network = torch.compile(self.network)
        self.X = torch.from_numpy(X).to(device)  # on a GPU: moved there once
        if model == "conv":  # rows are (h, w, c) flattened: NCHW images, as one would write
            h, w, c = image_shape
            self.X = (self.X.view(-1, c, h, w) if c == 1 else
                      self.X.view(-1, h, w, c).permute(0, 3, 1, 2).contiguous())
        self.batch_size = batch_size

    def epoch(self):
        torch, F = self.torch, self.torch.nn.functional
        order = torch.randperm(len(self.X), device=self.device)
        for start in range(0, len(self.X), self.batch_size):
            batch = self.X[order[start:start + self.batch_size]]
            self.optimizer.zero_grad()
            loss = F.binary_cross_entropy(self.network(batch), batch)
            loss.backward()
            self.optimizer.step()


def training_flops_per_sample(estimator):
    """3 x 2 x multiply-adds of every Linear and Conv2d layer, counted from their shapes."""
    import torch
    from torch import nn

    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        else:
            kh, kw = module.kernel_size
            macs += (kh * kw * module.in_channels // module.groups * module.out_channels
                     * output.shape[-2] * output.shape[-1])

    layers = [m for net in (estimator.encoder_, estimator.decoder_) for m in net.modules()
              if isinstance(m, (nn.Linear, nn.Conv2d))]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        with torch.no_grad():
            estimator.decoder_(estimator.encoder_(
                torch.zeros(1, estimator.n_features_in_, device=estimator.device_)))
    finally:
        for handle in handles:
            handle.remove()
    return 3 * 2 * macs


def matmul_rate(size, repeats=5):
    """Best fp32 FLOP/s of a ``size`` x ``size`` ``torch.mm`` over ``repeats`` calls."""
    import torch

    a, b = (torch.randn(size, size, device=DEVICE[0]) for _ in range(2))
    out = torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    return 2 * size**3 / best


DEVICE = ["cpu"]  # the torch device the candidates run on; set once by main


def synchronize():
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if DEVICE[0] != "cpu":
        import torch

        torch.cuda.synchronize(DEVICE[0])


def timed(function):
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


# -------------------------------------------------------------------- Keras worker

KERAS_WORKER_SOURCE = "keras"


def keras_model(keras, model, n_features, image_shape):
    """The chapter's models in Keras 3 (its conv net as printed, with its 16 -> 14 trick)."""
    from keras import layers

    if model == "conv":
        if tuple(image_shape) != (28, 28, 1):
            raise ValueError("the chapter's conv net is written for 28x28x1 images")
        inputs = keras.Input(shape=(28, 28, 1))
        x = layers.Conv2D(16, (3, 3), activation="relu", padding="same")(inputs)
        x = layers.MaxPooling2D((2, 2), padding="same")(x)
        x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(x)
        x = layers.MaxPooling2D((2, 2), padding="same")(x)
        x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(x)
        encoded = layers.MaxPooling2D((2, 2), padding="same")(x)
        x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(encoded)
        x = layers.UpSampling2D((2, 2))(x)
        x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(x)
        x = layers.UpSampling2D((2, 2))(x)
        x = layers.Conv2D(16, (3, 3), activation="relu")(x)
        x = layers.UpSampling2D((2, 2))(x)
        decoded = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
        return keras.Model(inputs, decoded)
    inputs = keras.Input(shape=(n_features,))
    if model == "dense":
        code = layers.Dense(32, activation="relu")(inputs)
        return keras.Model(inputs, layers.Dense(n_features, activation="sigmoid")(code))
    x = inputs
    for width in DEEP_HIDDEN:
        x = layers.Dense(width, activation="relu")(x)
    x = layers.Dense(30)(x)
    for width in DEEP_HIDDEN[::-1]:
        x = layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(n_features, activation="sigmoid")(x))


def keras_worker(spec):
    """Runs in the Keras interpreter: build, compile, then one epoch per ``epoch`` line."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 -- any import failure means "skip"
        return _answer(unavailable=f"cannot import keras/tensorflow ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})")
    if keras.backend.backend() != "tensorflow":
        return _answer(unavailable=f"Keras backend is {keras.backend.backend()!r}, not tensorflow")
    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    X = np.load(spec["data"])
    try:
        network = keras_model(keras, spec["model"], X.shape[1], spec["image_shape"])
    except ValueError as exc:
        return _answer(unavailable=str(exc), fatal=False)
    if spec["model"] == "conv":
        X = X.reshape(-1, *spec["image_shape"])
    network.compile(optimizer=keras.optimizers.Adam(spec["learning_rate"]),
                    loss="binary_crossentropy")
    _answer(ready=True, keras=keras.__version__, tensorflow=tf.__version__)
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        seconds = timed(lambda: network.fit(X, X, epochs=1, batch_size=spec["batch_size"],
                                            shuffle=True, verbose=0))
        _answer(seconds=seconds)


def _answer(**message):
    print(WORKER_TAG + json.dumps(message), flush=True)


class Worker:
    """A child process of this script that answers tagged JSON lines."""

    def __init__(self, python, mode, spec, env=None):
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed in close()
        self.process = subprocess.Popen(
            [python, os.path.abspath(__file__), mode, json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, **(env or {})})

    def read(self):
        for line in self.process.stdout:
            if line.startswith(WORKER_TAG):
                return json.loads(line[len(WORKER_TAG):])
        self.process.wait()
        self._stderr.seek(0)
        tail = self._stderr.read().strip().splitlines()[-3:]
        raise RuntimeError(f"worker exited with {self.process.returncode}: {' | '.join(tail)}")

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()


class KerasEpochs:
    """One epoch of the chapter's model in Keras, in a persistent child process."""

    def __init__(self, python, model, data_path, image_shape, batch_size, threads):
        self.worker = Worker(python, "--keras-worker", {
            "model": model, "data": str(data_path), "image_shape": list(image_shape),
            "batch_size": batch_size, "threads": threads, "learning_rate": 1e-3})
        try:
            message = self.worker.read()
        except RuntimeError as exc:
            message = {"unavailable": str(exc)}
        self.unavailable = message.get("unavailable")
        self.fatal = message.get("fatal", True)
        self.versions = {k: message.get(k) for k in ("keras", "tensorflow")}
        if self.unavailable:
            self.worker.close()

    def epoch(self):
        return self.worker.ask("epoch")["seconds"]

    def close(self):
        self.worker.close()


# ------------------------------------------------------------------------ memory


def _status_mb(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE).group(1)) / 1024


class PeakRSS:
    """Peak growth of the resident set size over the ``with`` block.

    Linux: the high-water mark ``VmHWM``, reset on entry by writing 5 to
    ``/proc/self/clear_refs``; a thread sampling ``VmRSS`` every 2 ms backs it up (and is all
    there is where the reset is not allowed).
    """

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.start = self.peak = _status_mb("VmRSS")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _status_mb("VmRSS"))

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _status_mb("VmRSS"))
        if self.hwm_reset:
            self.peak = max(self.peak, _status_mb("VmHWM"))
        self.growth = self.peak - self.start


def rss_worker(spec):
    """Runs in a fresh process: the RSS growth during ``fit`` of one model on one dtype."""
    import gc

    import torch

    torch.set_num_threads(spec["threads"])
    warnings.filterwarnings("ignore")
    device = spec["device"]
    X = np.load(spec["data"]).astype(spec["dtype"])  # loaded before the measurement
    # torch's one-time set-up (libraries, kernels) on 8 rows in batches of 8, so that
    # the fit's own batch buffers are not already resident before it
    warm = skae_factory(spec["model"], device).set_params(max_iter=1, batch_size=8).fit(X[:8])
    del warm
    gc.collect()
    estimator = skae_factory(spec["model"], device).set_params(max_iter=spec["epochs"])
    gpu_mb = None
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()
    with PeakRSS() as memory:
        estimator.fit(X)
    if device != "cpu":
        gpu_mb = (torch.cuda.max_memory_allocated() - gpu_before) / 2**20
    parameters = [p for net in (estimator.encoder_, estimator.decoder_) for p in net.parameters()]
    # weights, their gradients and Adam's two moments
    model_mb = 4 * sum(p.numel() * p.element_size() for p in parameters) / 2**20
    _answer(growth_mb=memory.growth, start_mb=memory.start, model_mb=model_mb,
            x_mb=X.nbytes / 2**20, hwm_reset=memory.hwm_reset, gpu_mb=gpu_mb)


# --------------------------------------------------------------------- measuring


class Results:
    """Rows for the CSV, and the lines of the Markdown report."""

    def __init__(self):
        self.rows = []
        self.targets = []

    def add(self, section, model, measure, rows="", median="", best="", ratio="", target="",
            result="", note=""):
        self.rows.append({"section": section, "model": model, "measure": measure,
                          "rows": rows, "median": median, "best": best, "ratio": ratio,
                          "target": target, "result": result, "note": note})

    def check(self, description, measured, limit, model="", note="", device="cpu"):
        """Record a target; ``measured=None`` records it as skipped. The targets are the
        CPU's: on a GPU a ratio is reported for comparison, without a verdict."""
        verdict = ("SKIP" if measured is None else "n/a (GPU)" if device != "cpu"
                   else "PASS" if measured <= limit else "FAIL")
        self.targets.append((description, measured, limit, verdict, note))
        self.add("target", model, description, ratio="" if measured is None else round(measured, 3),
                 target=limit, result=verdict, note=note)
        print("  " + target_line(description, measured, limit, verdict, note), flush=True)


def target_line(description, measured, limit, verdict, note):
    value = "not measured" if measured is None else f"{measured:.2f}"
    return (f"{verdict}: {description}: {value} (target <= {limit:g})"
            + (f" -- {note}" if note else ""))


def interleaved(candidates, repeats, rate_size=None):
    """Time every candidate once per round, rotating the order; ``{name: [seconds]}``.

    With ``rate_size`` the matmul rate is measured at the start of each round too (``"rate"``).
    """
    times = {name: [] for name in candidates}
    if rate_size:
        times["rate"] = []
    names = list(candidates)
    for round_ in range(repeats):
        if rate_size:
            times["rate"].append(matmul_rate(rate_size))
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(candidates[name]))
        print(f"    round {round_ + 1}/{repeats}: "
              + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names), flush=True)
    return times


def paired_ratio(numerator, denominator):
    """Median over rounds of ``numerator[i] / denominator[i]``: the two times of a round were
    taken minutes apart at most, so the machine's drift between rounds cancels. (The best
    of each candidate's rounds, taken apart, can pair a quiet round of one with a busy one of
    the other: a partial_fit once came out faster than its own training loop plus its code
    statistics pass, which it runs.)"""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def bench_epochs(model, X, image_shape, args, results, data_path, threads):
    """Epoch of skae against the plain loop, MLPRegressor, Keras and the FLOP limit."""
    from sklearn.neural_network import MLPRegressor

    n = len(X)
    print(f"\n{MODEL_LABELS[model]}: {n} rows", flush=True)
    estimator = skae_factory(model, args.device)
    first = timed(lambda: estimator.partial_fit(X))
    flops = training_flops_per_sample(estimator)
    batch_size = estimator.batch_size
    print(f"  first partial_fit {first:.2f}s; {flops / 1e6:.2f} MFLOP per sample for "
          f"training; batch size {batch_size}", flush=True)

    candidates = {"skae": lambda: estimator.partial_fit(X)}
    mixed = bfloat16_twin(model, args.device)
    if mixed is not None:
        mixed.partial_fit(X)  # the first call builds the network
        candidates["skae, bfloat16"] = lambda: mixed.partial_fit(X)
    try:  # the training loop alone, through a private method: skipped if it changes
        estimator._train(X, epochs=1, early_stopping=False)
        candidates["skae loop"] = lambda: estimator._train(X, epochs=1, early_stopping=False)
    except (AttributeError, TypeError) as exc:
        print(f"  skae training loop alone not timed ({exc})", flush=True)
    try:  # the pass that encodes X for sample's code statistics (private too)
        estimator._update_code_distribution(X, reset=True)
        candidates["skae code statistics"] = (
            lambda: estimator._update_code_distribution(X, reset=True))
    except (AttributeError, TypeError) as exc:
        print(f"  skae code statistics pass not timed ({exc})", flush=True)
    plain = PlainLoop(model, X, image_shape, batch_size, estimator.learning_rate_init,
                      device=args.device)
    plain.epoch()  # warm-up
    candidates["plain loop"] = plain.epoch
    compile_note = "skipped (--no-compile)"
    if not args.no_compile:
        try:
            compiled = PlainLoop(model, X, image_shape, batch_size,
                                 estimator.learning_rate_init, compiled=True,
                                 device=args.device)
            warm_up = timed(compiled.epoch)
            candidates["plain loop, torch.compile"] = compiled.epoch
            compile_note = f"first epoch, compilation included: {warm_up:.1f} s"
        except Exception as exc:  # noqa: BLE001 -- no C++ compiler, unsupported op, ...
            compile_note = f"unavailable: {type(exc).__name__}: {exc}"[:200]
        print(f"  plain loop with torch.compile: {compile_note}", flush=True)
    mlp = None
    if model in MLP_HIDDEN:
        mlp = MLPRegressor(hidden_layer_sizes=MLP_HIDDEN[model], random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp.partial_fit(X, X)  # the first call initialises; time the next ones
        candidates["MLPRegressor"] = lambda: mlp.partial_fit(X, X)
    keras_note = args.keras_skip_reason
    keras = None
    if keras_note is None:
        keras = KerasEpochs(args.keras_python, model, data_path, image_shape, batch_size,
                            threads)
        if keras.unavailable:
            keras_note = keras.unavailable
            if keras.fatal:  # no Keras at all: do not try again for the next model
                args.keras_skip_reason = keras_note
        else:
            args.keras_versions = keras.versions
            keras.epoch()  # traces the training function
            candidates["Keras"] = keras.epoch
    if keras_note:
        print(f"  Keras skipped: {keras_note}", flush=True)

    try:
        times = interleaved(candidates, args.repeats, rate_size=args.matmul_size)
    finally:
        if keras is not None and not keras.unavailable:
            keras.close()
    rates = times.pop("rate")
    rate = max(rates)
    times["FLOP limit"] = [n * flops / r for r in rates]  # each round's, from its own rate
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = {name: paired_ratio(times["skae"], values) for name, values in times.items()}
    skae = best["skae"]
    notes = {
        "skae": f"steady-state partial_fit, batch {batch_size}, Adam 1e-3, BCE on logits",
        "skae, bfloat16": ("steady-state partial_fit with precision='bfloat16' (opt-in mixed "
                           "precision: the training steps' layers in bfloat16, the code "
                           "statistics pass in float32), a second model from the same seed"),
        "skae loop": ("training loop only (private _train: no validation, no code statistics"
                      + ("; on a GPU it copies X there and warms up and captures the step's "
                         "CUDA graph once per call" if args.device != "cpu" else "") + ")"),
        "skae code statistics": ("the pass that encodes X for sample's code statistics, "
                                 "part of partial_fit (private _update_code_distribution)"),
        "plain loop": (f"batch {batch_size}, Adam 1e-3, sigmoid + F.binary_cross_entropy"
                       + (", NCHW images" if model == "conv" else "")
                       + (", X and randperm on the GPU" if args.device != "cpu" else "")),
        "plain loop, torch.compile": ("the plain loop's network under torch.compile; "
                                      + compile_note),
        "MLPRegressor": (f"hidden_layer_sizes={MLP_HIDDEN.get(model)}, batch_size='auto' "
                         f"(min(200, n)), Adam 1e-3, squared error, float32"
                         + (", on the host's CPU" if args.device != "cpu" else "")),
        "Keras": (f"the chapter's model, batch {batch_size}, Adam 1e-3, binary_crossentropy, "
                  f"Keras {(args.keras_versions or {}).get('keras')} / TensorFlow "
                  f"{(args.keras_versions or {}).get('tensorflow')}"),
        "FLOP limit": (f"{flops / 1e6:.3g} MFLOP/sample for training at each round's fp32 "
                       f"torch.mm {args.matmul_size}^2 rate (best {rate / 1e9:.0f} GFLOP/s"
                       + (", TF32 off as for skae's dense layers; cuDNN convolutions use "
                          "TF32 by default" if args.device != "cpu" else "")
                       + ")"),
    }
    results.add("epoch", model, "skae first partial_fit", n, round(first, 4), round(first, 4),
                round(skae / first, 3), note="includes scaling statistics and building the network")
    for name in list(candidates) + ["FLOP limit"]:
        results.add("epoch", model, name, n, round(median[name], 4), round(best[name], 4),
                    round(ratio[name], 3), note=notes[name])
    if mlp is None:
        results.add("epoch", model, "MLPRegressor", n, note="n/a: no convolutional layers")
    if "Keras" not in candidates:
        results.add("epoch", model, "Keras", n, note=f"skipped: {keras_note}")
    results.add("epoch", model, "matmul rate (GFLOP/s)", median=round(
        statistics.median(rates) / 1e9, 1), best=round(rate / 1e9, 1),
        note=f"fp32 torch.mm of {args.matmul_size}x{args.matmul_size}, best of 5 per round")

    for name in list(candidates) + ["FLOP limit"]:
        if name == "skae":
            continue
        print(f"  skae epoch / {name}: {ratio[name]:.2f} (median of the rounds' ratios; "
              f"best times {skae:.3f}s / {best[name]:.3f}s)", flush=True)
    for (target_model, other), bound in TARGETS.items():
        if target_model != model:
            continue
        if other in ratio:
            results.check(f"{model}: skae epoch / {other}", ratio[other], bound, model,
                          device=args.device)
        else:
            results.check(f"{model}: skae epoch / {other}", None, bound, model,
                          note=f"skipped: {keras_note}")
    if "skae, bfloat16" in times:  # the opt-in, against the same bounds
        for (target_model, other), bound in TARGETS.items():
            if target_model == model and other in times:
                results.check(
                    f"{model}, precision='bfloat16': skae epoch / {other}",
                    paired_ratio(times["skae, bfloat16"], times[other]), bound, model,
                    note="opt-in, not the default" + (
                        "; the FLOP limit at the float32 matmul rate" if other == "FLOP limit"
                        else ""), device=args.device)
    return estimator


def bfloat16_twin(model, device):
    """The model with ``precision="bfloat16"``, or None where the device lacks it."""
    from skae._base import _check_precision

    try:
        _check_precision("bfloat16", device)
    except ValueError:
        return None
    return skae_factory(model, device).set_params(precision="bfloat16")


def bench_transform(model, estimator, X, args, results):
    from sklearn.decomposition import PCA

    rows = X[:TRANSFORM_ROWS]
    pca = PCA(estimator.n_components_, random_state=0).fit(X)
    estimator.transform(rows)
    pca.transform(rows)
    print(f"\ntransform of {len(rows)} rows, {MODEL_LABELS[model]} against "
          f"PCA({estimator.n_components_})", flush=True)
    times = interleaved({"skae": lambda: estimator.transform(rows),
                         "PCA": lambda: pca.transform(rows)}, max(5, 3 * args.repeats))
    best = {k: min(v) for k, v in times.items()}
    ratio = paired_ratio(times["skae"], times["PCA"])
    for name in ("skae", "PCA"):
        results.add("transform", model, f"{name} transform", len(rows),
                    round(statistics.median(times[name]), 5), round(best[name], 5),
                    round(paired_ratio(times["skae"], times[name]), 3),
                    note=f"PCA({estimator.n_components_})" if name == "PCA" else "")
    print(f"  skae transform / PCA transform: {ratio:.2f} (median of the rounds' ratios)",
          flush=True)
    if model == "dense":
        results.check("dense: skae transform / PCA(32).transform", ratio, TRANSFORM_TARGET,
                      model, device=args.device)


MEMORY_CASES = [("dense", "float32"), ("dense", "float64"), ("conv", "float32")]


def bench_memory(X, args, results, data_path, threads):
    cases = [(model, dtype) for model, dtype in MEMORY_CASES if model in args.models]
    if cases:
        print("\npeak RSS growth during fit (fresh process each)", flush=True)
    float32_copy_mb = X.size * 4 / 2**20
    for model, dtype in cases:
        worker = Worker(sys.executable, "--rss-worker", {
            "model": model, "dtype": dtype, "data": str(data_path),
            "epochs": args.rss_epochs, "threads": threads, "device": args.device})
        try:
            answer = worker.read()
        finally:
            worker.close()
        allowance = RSS_TARGET_MB + answer["model_mb"] + (float32_copy_mb if dtype == "float64"
                                                           else 0.0)
        note = (f"X is {answer['x_mb']:.0f} MB; model (weights, gradients, Adam) "
                f"{answer['model_mb']:.1f} MB; RSS before fit {answer['start_mb']:.0f} MB; "
                f"{'VmHWM' if answer['hwm_reset'] else 'sampled VmRSS'}"
                + ("" if answer["gpu_mb"] is None else
                   f"; GPU peak allocation during fit {answer['gpu_mb']:.0f} MB"))
        results.add("memory", model, f"{dtype} X", len(X), round(answer["growth_mb"], 1),
                    round(answer["growth_mb"], 1), target=round(allowance, 1),
                    result="PASS" if answer["growth_mb"] <= allowance else "FAIL", note=note)
        print(f"  {model}, {dtype} X: +{answer['growth_mb']:.0f} MB ({note})", flush=True)
        extra = " + one float32 copy of X" if dtype == "float64" else ""
        results.check(f"{model}: RSS growth during fit on {dtype} X (MB), limit 200 MB + "
                      f"model{extra}", answer["growth_mb"], round(allowance, 1), model)


def bench_scaling(X, args, results):
    sizes = sorted({max(1, len(X) // 6), max(1, len(X) // 2), len(X)})
    print(f"\nepoch time against rows: {sizes}", flush=True)
    estimator = skae_factory("dense", args.device)
    estimator.partial_fit(X[:sizes[0]])
    times = interleaved({n: (lambda n=n: estimator.partial_fit(X[:n])) for n in sizes},
                        args.repeats)
    largest = sizes[-1]
    for n in sizes:
        per_row = paired_ratio(times[n], times[largest]) * largest / n
        results.add("scaling", "dense", f"{n} rows", n, round(statistics.median(times[n]), 4),
                    round(min(times[n]), 4), round(per_row, 3),
                    note="ratio: time per row against the largest size")
        print(f"  {n:>6} rows: {min(times[n]):.3f}s, per row {per_row:.2f}x the "
              f"{largest}-row epoch's", flush=True)


# ----------------------------------------------------------------------- reports


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def environment(threads, args):
    import sklearn
    import torch

    import skae

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.MULTILINE).group(1).strip()
    except (OSError, AttributeError):
        pass
    keras = args.keras_versions
    if args.device != "cpu":
        properties = torch.cuda.get_device_properties(args.device)
        cpu = (f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB, CUDA "
               f"{torch.version.cuda}) on a host with {cpu}")
    return (f"{cpu}, {os.cpu_count()} CPUs, {threads} torch threads; Python "
            f"{platform.python_version()}, numpy {np.__version__}, scikit-learn "
            f"{sklearn.__version__}, torch {torch.__version__}, skae {skae.__version__}, "
            + (f"Keras {keras['keras']} on TensorFlow {keras['tensorflow']}" if keras
               else "Keras not run"))


def write_report(results, path, command, env_line, data_line, seconds, where="the CPU"):
    def fmt(value, digits=3):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    lines = [f"# skae speed on {where}", "", f"Command: `{command}`", "",
             f"Environment: {env_line}. {data_line} Time of this run: {seconds:.0f} s.", "",
             ("Times are the best of the interleaved rounds (median beside it); a ratio is "
              "the median over the rounds of skae's time over the other's in the same round, "
              "so below 1 means skae is faster."), "",
             "## Targets", "", "| target | measured | limit | |", "| --- | ---: | ---: | --- |"]
    for description, measured, limit, verdict, note in results.targets:
        value = "–" if measured is None else f"{measured:.2f}"
        lines.append(f"| {description}{' (' + note + ')' if note else ''} | {value} | "
                     f"{limit:g} | {VERDICTS[verdict]} |")
    sections = {
        "epoch": ("One epoch", ["model", "measure", "best", "median", "ratio", "note"],
                  ["model", "candidate", "best (s)", "median (s)", "skae / this", "setting"]),
        "transform": (f"transform of {TRANSFORM_ROWS} rows",
                      ["model", "measure", "best", "median", "ratio", "note"],
                      ["model", "", "best (s)", "median (s)", "skae / this", ""]),
        "memory": ("Peak RSS growth during fit", ["model", "measure", "best", "target",
                                                  "result", "note"],
                   ["model", "input", "growth (MB)", "limit (MB)", "", "note"]),
        "scaling": ("Epoch time against rows (Autoencoder(32))",
                    ["measure", "best", "median", "ratio"],
                    ["rows", "best (s)", "median (s)", "time per row / the largest's"]),
    }
    for section, (title, keys, header) in sections.items():
        rows = [r for r in results.rows if r["section"] == section]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |",
                  "| " + " | ".join("---" if k in ("model", "measure", "note", "result")
                                    else "---:" for k in keys) + " |"]
        for row in rows:
            lines.append("| " + " | ".join(fmt(row[k]) for k in keys) + " |")
    path.write_text("\n".join(lines) + "\n")


def write_csv(results, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(results.rows)


# ------------------------------------------------------------------------------ cli


def load_data(dataset, rows):
    """Float32 rows in [0, 1], their image shape and a line describing them."""
    if dataset == "mnist":
        try:
            from skae.datasets import load_mnist

            X = load_mnist("train", return_X_y=True, download=False)[0]
            name = "MNIST training digits"
        except (FileNotFoundError, OSError, ValueError) as exc:
            print(f"MNIST not available ({exc}); falling back to scikit-learn's digits",
                  flush=True)
            dataset = "digits"
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X = (load_digits().data / 16.0).astype(np.float32)
        name = "scikit-learn's 8x8 digits (MNIST not used)"
    side = round(np.sqrt(X.shape[1]))
    X = np.ascontiguousarray(X[:rows] if rows else X, dtype=np.float32)
    return X, (side, side, 1), f"Data: {len(X)} rows of {name}, {X.shape[1]} features, float32."


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="mnist",
                        help="MNIST (default; falls back to digits when missing) or digits")
    parser.add_argument("--rows", type=at_least(MIN_ROWS), default=None,
                        help=f"training rows, at least {MIN_ROWS} (default: all, 60,000 for "
                        "MNIST; 2,000 with --quick)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="interleaved timing rounds per comparison (default: 5)")
    parser.add_argument("--models", nargs="+", choices=list(MODEL_LABELS),
                        default=list(MODEL_LABELS), help="networks to time (default: all)")
    parser.add_argument("--keras-python", default=sys.executable,
                        help="Python interpreter with keras and tensorflow-cpu (default: this)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the plain loop under torch.compile (the compile lever)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch, BLAS and TensorFlow threads (default: torch's default, "
                             "the number of cores); on a busy shared machine 1 is steadier")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="torch device of skae and the plain loops: cpu (default), cuda "
                        "or cuda:N")
    parser.add_argument("--matmul-size", type=positive_int, default=None,
                        help="side of the matmul that measures the FLOP rate (default: 2048 "
                             "on the CPU, 8192 on a GPU)")
    parser.add_argument("--rss-epochs", type=positive_int, default=2,
                        help="epochs of the fit whose memory is measured (default: 2)")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 rows, 1 round, small matmul: a smoke test (about a "
                        "minute), written to speed_cpu_quick.md and .csv")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for the report (default: results/ beside this script)")
    args = parser.parse_args(argv)
    if args.matmul_size is None:
        args.matmul_size = 2048 if args.device == "cpu" else 8192
    if args.quick:
        args.rows = args.rows or 2000
        args.repeats = 1
        args.matmul_size = min(args.matmul_size, 512)
        args.rss_epochs = 1
    args.models = list(dict.fromkeys(args.models))  # each once
    args.keras_skip_reason = "--no-keras" if args.no_keras else None
    args.keras_versions = None
    args.stem = "speed_cpu" if args.device == "cpu" else "speed_cuda"
    if args.quick:  # a smoke run never replaces the full run's committed tables
        args.stem += "_quick"
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    check_out(__file__, args.out, [f"{args.stem}.md", f"{args.stem}.csv"])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    DEVICE[0] = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    X, image_shape, data_line = load_data(args.dataset, args.rows)
    print(f"{data_line} {threads} torch threads (BLAS limited to the same); "
          f"{args.repeats} rounds", flush=True)
    results = Results()
    load_before = load_average()
    total = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(threads):
        data_path = Path(tmp) / "X.npy"
        np.save(data_path, X)
        fitted = {}
        for model in args.models:
            fitted[model] = bench_epochs(model, X, image_shape, args, results, data_path,
                                         threads)
        for model, estimator in fitted.items():
            bench_transform(model, estimator, X, args, results)
        bench_memory(X, args, results, data_path, threads)
        bench_scaling(X, args, results)
    total = time.perf_counter() - total

    env_line = (f"{environment(threads, args)}; 1-minute load average {load_before:.1f} at the "
                f"start, {load_average():.1f} at the end")
    command = " ".join(["python benchmarks/speed.py", *(sys.argv[1:] if argv is None else argv)])
    stem = args.stem
    where = "the CPU" if args.device == "cpu" else torch.cuda.get_device_name(args.device)
    write_report(results, args.out / f"{stem}.md", command, env_line, data_line, total, where)
    write_csv(results, args.out / f"{stem}.csv")
    print(f"\n{env_line}\n")
    for target in results.targets:
        print(target_line(*target))
    print(f"\nwrote {args.out / (stem + '.md')} and {args.out / (stem + '.csv')} in "
          f"{total:.0f} s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--keras-worker":
        keras_worker(json.loads(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--rss-worker":
        rss_worker(json.loads(sys.argv[2]))
    else:
        main()
