"""Speed levers one at a time: each timed against what it replaced, in one run.

``benchmarks/speed.py`` times whole epochs; this script times the pieces that the README's
list of levers talks about, each "before" and "after" interleaved round by round (best of
the rounds kept). Training steps run on 10,240 MNIST training digits (``$SKAE_DATA``;
random values of the same shape when MNIST is not there); the other levers on random
tensors of the shapes named:

- ``output layer``: 2x nearest upsampling then a 3x3 convolution (``nn.Upsample`` +
  ``nn.Conv2d``) against the sub-pixel convolution of skae's ``UpsampledConv2d`` (its
  forward on the CPU; on a GPU it upsamples then convolves), forward and backward of 256
  rows, for the chapter's output layer (16 -> 1 channels up to 28 x 28) and other widths;
- ``pool first``: the chapter's first stage after its convolution (256 x 16 x 28 x 28),
  ReLU then 2x2 max-pooling against pooling then ReLU, forward and backward;
- ``loss``: sigmoid then ``binary_cross_entropy`` (the plain loop's), torch's
  ``binary_cross_entropy_with_logits`` (skae's) and a hand-written BCE from logits that keeps
  the sigmoid for the gradient, forward and backward over 256 x 784;
- ``gather``: a batch of 256 rows of a 60,000 x 784 float32 tensor by advanced indexing
  against ``index_select``;
- ``conv weights``: a training step of the chapter's conv net with contiguous against
  channels-last weights (the sub-pixel output layer makes its own weight channels-last in
  both);
- ``bfloat16``: a training step of each benchmark network (784-32-784, the chapter's conv
  net, 784-1000-500-250-30) in float32 against under ``torch.autocast("cpu",
  torch.bfloat16)`` (skae offers it as the opt-in ``precision="bfloat16"``, not the
  default: it changes the arithmetic; this lever also runs the loss under autocast, which
  skae does not);
- ``code statistics``: the pass that encodes 20,480 rows for ``sample``'s code statistics
  (the chapter's conv net, 5 blocks of 4,096 rows), each block's scatter matrix computed by
  numpy against by torch (numpy's BLAS threads spin after a product, on the cores the
  encoder's next block needs);
- ``inference pooling``: the chapter's conv net's ``transform`` of the 10,240 training
  rows with each max-pooling by ``max_pool2d`` against by the maxima of strided views
  (skae's ``MaxPool2d`` without gradients: the same values, no argmax indices);
- ``inference batch``: ``transform`` of the 10,240 rows by each benchmark network, its
  batches holding up to 2**21 values of the widest layer (8 MiB of float32) against 2**22
  (skae's: 334 rows for the conv net instead of 167; the dense nets reach the 4,096-row
  cap);
- ``snapshot``: the copy of the weights and the optimizer state that training takes before
  every epoch (to restore after a divergence or Ctrl-C), for the default 784-32-784 net,
  by ``copy.deepcopy`` of the two state dicts against the first take of skae's
  ``Snapshot`` (a clone of each tensor, which ``partial_fit`` pays once a call), and that
  against its later takes in a ``fit`` (the copies overwritten in place);
- ``hand-written step``: skae's training step of 784-32-784 (its objective, autograd and
  its fused Adam) against the same step with the gradients written out by hand and no
  autograd (the loss's value by ``binary_cross_entropy_with_logits``, its gradient
  ``sigmoid(z) - x``, five matrix products; the same optimizer), checked first against
  autograd's loss and gradients. Not offered: it measures how far below skae's step an
  engine without autograd's overhead could get for this one network;
- ``threads``: a training step of the dense and the conv net on one thread against on all
  of torch's threads (by default one per core; ``OMP_NUM_THREADS`` sets fewer);
- ``allocator``: the conv net's training steps alone, and a whole ``fit`` of the 10,240
  rows (2 epochs, timed per training step), with glibc's malloc defaults against
  ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` at 32 and 64 MB (the highest
  values glibc's own adjustment gives them), a fresh process for each (the two
  alternating, one pair per round), with the minor page faults per step of the best round;
- ``CUDA graph`` (GPU only): a training step of each benchmark network op by op (skae's
  objective and fused Adam) against the whole step -- the batch's gather, forward,
  backward and a capturable Adam step -- captured once in a CUDA graph and replayed, the
  batch's indices copied into the graph's input on the device. skae's training engine
  does this for full batches since (``GraphedStep`` in ``skae/_training.py``).

An ``index copy`` lever (each batch's indices copied to the GPU blocking or not) was run
on an H100 three times (``results/levers_cuda_run1.md`` to ``run3``) and removed: the
non-blocking copy was not clearly faster, and full batches are now replayed from a graph.

``--device cuda`` runs the levers that concern a GPU there (all but the code statistics,
the hand-written step, the threads and the allocator, which are about the CPU), with every
call timed up to a ``torch.cuda.synchronize()``, and writes ``levers_cuda.md``. A run of
fewer levers (``--levers``) or rounds than the default writes ``levers_<device>_partial.md``
instead (ignored by git), so that it never replaces the full run's table.

Steps use skae's private training objective (as ``speed.py`` times its private loop).

Usage::

    python benchmarks/levers.py            # about 1 minute on 2 cores
    python benchmarks/levers.py --rounds 3 --out /tmp/levers  # levers_cpu_partial.md
    python benchmarks/levers.py --device cuda
"""

import argparse
import copy
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _cli import check_out, positive_int, torch_device
from torch import nn
from torch.autograd.function import once_differentiable

import skae._base
import skae._nn
import skae._training
from skae import Autoencoder, ConvAutoencoder
from skae._nn import UpsampledConv2d
from skae._training import BatchSource

ROOT = Path(__file__).resolve().parent
BATCH = 256
ROUNDS = 5  # the default --rounds
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
DEVICE = torch.device("cpu")  # where the levers run; set once by main


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def best_time(function, calls):
    """Mean time of ``calls`` calls (seconds), after one warm-up call."""
    function()
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    synchronize()
    return (time.perf_counter() - start) / calls


def interleaved(candidates, rounds, calls):
    """``{name: best seconds per call}`` over ``rounds`` rounds, the order rotating."""
    names, best = list(candidates), dict.fromkeys(candidates, float("inf"))
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            best[name] = min(best[name], best_time(candidates[name], calls))
    return best


def backward_of(function, *inputs):
    """A callable running ``function(*inputs)`` forward and backward (random gradient)."""
    grad = torch.randn_like(function(*inputs))
    return lambda: function(*inputs).backward(grad)


# ------------------------------------------------------------------------------ levers


def output_layer(rounds):
    rows = []
    for c_in, c_out, hw in [(16, 1, 14), (16, 3, 14), (8, 8, 7), (8, 16, 7)]:
        fused = UpsampledConv2d(c_in, c_out, 3).to(DEVICE, memory_format=torch.channels_last)
        plain = nn.Conv2d(c_in, c_out, 3, padding="same").to(DEVICE,
                                                              memory_format=torch.channels_last)
        plain.load_state_dict(fused.state_dict())
        x = torch.rand(BATCH, c_in, hw, hw, device=DEVICE).contiguous(
            memory_format=torch.channels_last)
        x.requires_grad_()
        size = (2 * hw, 2 * hw)
        best = interleaved({
            "before": backward_of(lambda x: plain(F.interpolate(x, size=size)), x),
            "after": backward_of(fused._sub_pixel, x),  # as its forward on the CPU
        }, rounds, calls=10)
        rows.append(("output layer", f"{c_in} -> {c_out} channels, {hw} -> {2 * hw} px",
                     "Upsample + Conv2d", "sub-pixel conv", best["before"], best["after"]))
    return rows


def pool_first(rounds):
    x = torch.randn(BATCH, 16, 28, 28, device=DEVICE).contiguous(
        memory_format=torch.channels_last)
    x.requires_grad_()
    best = interleaved({
        "before": backward_of(lambda x: F.max_pool2d(F.relu(x), 2, ceil_mode=True), x),
        "after": backward_of(lambda x: F.relu(F.max_pool2d(x, 2, ceil_mode=True)), x),
    }, rounds, calls=10)
    return [("pool first", "256 x 16 x 28 x 28", "ReLU, then max-pool", "max-pool, then ReLU",
             best["before"], best["after"])]


class _HandBCE(torch.autograd.Function):
    """BCE from logits summed per row, keeping the sigmoid for the gradient."""

    @staticmethod
    def forward(ctx, logits, target):
        p = torch.sigmoid(logits)
        log_max = torch.maximum(p, 1 - p).log_()  # -log(1 + exp(-|z|))
        loss = torch.relu(logits).sub_(log_max).sub_(target * logits).sum(dim=1)
        ctx.save_for_backward(p, target)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        p, target = ctx.saved_tensors
        return (p - target).mul_(grad.unsqueeze(1)), None


def losses(rounds):
    target = torch.rand(BATCH, 784, device=DEVICE)
    logits = (4 * torch.randn(BATCH, 784, device=DEVICE)).requires_grad_()

    def sigmoid_bce(z):
        return F.binary_cross_entropy(torch.sigmoid(z), target, reduction="none").sum(1)

    def torch_bce(z):
        return F.binary_cross_entropy_with_logits(z, target, reduction="none").sum(1)

    best = interleaved({
        "sigmoid": backward_of(sigmoid_bce, logits),
        "logits": backward_of(torch_bce, logits),
        "hand": backward_of(lambda z: _HandBCE.apply(z, target), logits),
    }, rounds, calls=200)
    return [
        ("loss", "256 x 784", "sigmoid + binary_cross_entropy",
         "binary_cross_entropy_with_logits", best["sigmoid"], best["logits"]),
        ("loss", "256 x 784", "binary_cross_entropy_with_logits", "hand-written BCE",
         best["logits"], best["hand"]),
    ]


def gather(rounds):
    X = torch.rand(60_000, 784, device=DEVICE)
    rng = np.random.default_rng(0)
    rows = torch.from_numpy(rng.permutation(60_000)[:BATCH]).to(DEVICE)
    best = interleaved({
        "before": lambda: X[rows],
        "after": lambda: torch.index_select(X, 0, rows),
    }, rounds, calls=200)
    return [("gather", "256 of 60,000 rows", "X[rows]", "index_select",
             best["before"], best["after"])]


NETWORKS = {
    "dense": lambda: Autoencoder(32),
    "conv": lambda: ConvAutoencoder(),
    "deep": lambda: Autoencoder(30, hidden_layer_sizes=(1000, 500, 250),
                                code_activation="identity"),
}


def training_rows():
    """10,240 MNIST training digits as float32 in [0, 1], else random values."""
    try:
        from skae.datasets import load_mnist

        X = load_mnist("train", return_X_y=True, download=False)[0][:BATCH * 40]
    except (FileNotFoundError, OSError, ValueError):
        X = np.random.default_rng(0).random((BATCH * 40, 784))
    return np.ascontiguousarray(X, dtype=np.float32)


def fitted_network(model):
    """The training rows, ``model`` fitted on 256 of them, and its encoder and decoder."""
    X = training_rows()
    estimator = NETWORKS[model]().set_params(max_iter=1, random_state=0, device=str(DEVICE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X[:BATCH])
    networks = nn.ModuleDict({"encoder": estimator.encoder_, "decoder": estimator.decoder_})
    return X, estimator, networks


def training_step(model, autocast=False, memory_format=None):
    """A callable taking one training step of ``model`` on the next 256 rows."""
    X, estimator, networks = fitted_network(model)
    if memory_format is not None:
        networks.to(memory_format=memory_format)
    optimizer = estimator._make_optimizer(networks)
    objective = estimator._objective(torch.Generator().manual_seed(0))
    source = BatchSource(X, DEVICE)
    order = np.random.default_rng(1).permutation(len(X))
    count = [0]

    def step():
        start = count[0] % 40 * BATCH
        count[0] += 1
        batch = source.take(order[start:start + BATCH])
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=autocast):
            loss = sum(objective(batch).values())
        loss.backward()
        optimizer.step()

    return step


def conv_weights(rounds):
    best = interleaved({
        "before": training_step("conv", memory_format=torch.contiguous_format),
        "after": training_step("conv"),
    }, rounds, calls=20)
    return [("conv weights", "chapter's conv net, training step", "contiguous",
             "channels-last", best["before"], best["after"])]


def bfloat16(rounds):
    rows = []
    for model in NETWORKS:
        best = interleaved({
            "before": training_step(model),
            "after": training_step(model, autocast=True),
        }, rounds, calls=100 if model == "dense" else 20)
        rows.append(("bfloat16", f"{model}, training step", "float32",
                     "autocast bfloat16", best["before"], best["after"]))
    return rows


def code_statistics(rounds):
    X = np.concatenate([training_rows()] * 2)
    estimator = ConvAutoencoder(max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X[:BATCH])
    by_torch = skae._base._gram

    def statistics(gram):
        def run():
            skae._base._gram = gram
            try:
                estimator._update_code_distribution(X, reset=True)
            finally:
                skae._base._gram = by_torch
        return run

    best = interleaved({
        "before": statistics(lambda a: a.T @ a),
        "after": statistics(by_torch),
    }, rounds, calls=1)
    return [("code statistics", "chapter's conv net, 20,480 rows", "scatter by numpy",
             "scatter by torch", best["before"], best["after"])]


def fitted_quietly(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


def patched(owner, name, value, function):
    """``function`` run with ``owner.name`` set to ``value`` for the call."""
    def run():
        saved = getattr(owner, name)
        setattr(owner, name, value)
        try:
            function()
        finally:
            setattr(owner, name, saved)
    return run


def inference_pooling(rounds):
    X = training_rows()
    estimator = fitted_quietly(
        ConvAutoencoder(max_iter=1, random_state=0, device=str(DEVICE)), X[:BATCH])
    transform = lambda: estimator.transform(X)  # noqa: E731
    best = interleaved({
        "before": patched(skae._nn.MaxPool2d, "forward", nn.MaxPool2d.forward, transform),
        "after": transform,
    }, rounds, calls=1)
    return [("inference pooling", "chapter's conv net, transform of 10,240 rows",
             "max_pool2d", "maxima of strided views", best["before"], best["after"])]


def inference_batch(rounds):
    X, rows = training_rows(), []
    for model in NETWORKS:
        estimator = fitted_quietly(
            NETWORKS[model]().set_params(max_iter=1, random_state=0, device=str(DEVICE)),
            X[:BATCH])
        sizes = {}
        for values in (2**21, 2**22):
            patched(skae._base, "_INFERENCE_VALUES", values, lambda values=values: sizes.update(
                {values: estimator._inference_batch_size()}))()
        transform = lambda estimator=estimator: estimator.transform(X)  # noqa: E731
        best = interleaved({
            "before": patched(skae._base, "_INFERENCE_VALUES", 2**21, transform),
            "after": patched(skae._base, "_INFERENCE_VALUES", 2**22, transform),
        }, rounds, calls=1)
        rows.append(("inference batch", f"{model}, transform of 10,240 rows",
                     f"{sizes[2**21]} rows a batch", f"{sizes[2**22]} rows a batch",
                     best["before"], best["after"]))
    return rows


class HandWrittenStep:
    """The dense 784-32-784 training step of ``fitted_network("dense")``, without autograd."""

    def __init__(self):
        X, estimator, networks = fitted_network("dense")
        if not (isinstance(estimator.encoder_[1], nn.ReLU) and len(estimator.decoder_) == 1
                and estimator.decoder_.code_scale == 1.0):
            raise RuntimeError("hand-written step: not the 784-Linear-ReLU-Linear-784 net")
        self.source = BatchSource(X, DEVICE)
        self.order = np.random.default_rng(1).permutation(len(X))
        self.shift = estimator._scaling_tensors(torch.float32, DEVICE)[1]
        self.inv_scale = 1.0 / estimator._x_scale
        self.enc, self.dec = estimator.encoder_[0], estimator.decoder_[0]
        self.params = [self.enc.weight, self.enc.bias, self.dec.weight, self.dec.bias]
        self.optimizer = estimator._make_optimizer(networks)  # skae's: fused Adam
        self.objective = estimator._objective(torch.Generator().manual_seed(0))
        self.count = 0

    def gradients(self, x):
        """The loss of the batch ``x`` and its gradients, in ``self.params``' order."""
        n = x.shape[0]
        with torch.no_grad():
            x_net = torch.add(self.shift, x, alpha=self.inv_scale)
            code = torch.addmm(self.enc.bias, x_net, self.enc.weight.t()).relu_()
            logits = torch.addmm(self.dec.bias, code, self.dec.weight.t())
            loss = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
            d_logits = torch.sigmoid(logits).sub_(x).div_(n)
            d_code = (d_logits @ self.dec.weight).mul_(code > 0)
            return loss, [d_code.t() @ x_net, d_code.sum(0), d_logits.t() @ code,
                          d_logits.sum(0)]

    def __call__(self):
        start = self.count % 40 * BATCH
        self.count += 1
        _, grads = self.gradients(self.source.take(self.order[start:start + BATCH]))
        for param, grad in zip(self.params, grads):
            param.grad = grad
        self.optimizer.step()

    def check(self):
        """Raise unless loss and gradients are those of skae's objective by autograd."""
        x = self.source.take(self.order[:BATCH])
        loss = sum(self.objective(x).values())
        expected = torch.autograd.grad(loss, self.params)
        hand_loss, grads = self.gradients(x)
        torch.testing.assert_close(hand_loss, loss.detach())
        for grad, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-6)


def hand_written_step(rounds):
    hand = HandWrittenStep()
    hand.check()
    best = interleaved({"before": training_step("dense"), "after": hand}, rounds, calls=100)
    return [("hand-written step", "dense, training step", "skae's (autograd)",
             "gradients written by hand", best["before"], best["after"])]


def snapshot(rounds):
    _, estimator, networks = fitted_network("dense")
    optimizer = estimator._make_optimizer(networks)
    reused = skae._training.Snapshot(networks, optimizer).take()
    best = interleaved({
        "deepcopy": lambda: (copy.deepcopy(networks.state_dict()),
                             copy.deepcopy(optimizer.state_dict())),
        "first": lambda: skae._training.Snapshot(networks, optimizer).take(),
        "later": reused.take,
    }, rounds, calls=200)
    case = "784-32-784 net and its Adam state, before each epoch"
    return [("snapshot", case, "copy.deepcopy", "a first take: tensor by tensor clones",
             best["deepcopy"], best["first"]),
            ("snapshot", case, "a first take: tensor by tensor clones",
             "later takes: the copies overwritten in place", best["first"], best["later"])]


def threads(rounds):
    """A training step on one thread against on all of torch's, the count set per call."""
    count = torch.get_num_threads()
    if count == 1:
        print("threads: torch has one thread here; nothing to compare")
        return []

    def on(n, step):
        def run():
            torch.set_num_threads(n)
            step()
        return run

    rows = []
    try:
        for model in ("dense", "conv"):
            step = training_step(model)
            best = interleaved({"before": on(1, step), "after": on(count, step)}, rounds,
                               calls=100 if model == "dense" else 20)
            rows.append(("threads", f"{model}, training step", "1 thread", f"{count} threads",
                         best["before"], best["after"]))
    finally:
        torch.set_num_threads(count)
    return rows


def allocator(rounds):
    """The conv net in fresh processes, glibc's malloc defaults against larger thresholds."""
    plain_env = {key: value for key, value in os.environ.items()
                 if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}

    def in_fresh_process(worker, extra):
        done = subprocess.run([sys.executable, __file__, worker, "1"],
                              env={**plain_env, **extra}, capture_output=True, text=True,
                              check=True)
        seconds, faults = done.stdout.split()[-2:]  # per training step
        return float(seconds), float(faults)

    rows = []
    for worker, case in [("--conv-step", "chapter's conv net, training steps alone"),
                         ("--conv-fit", "chapter's conv net, fit of 10,240 rows (per step)")]:
        best = dict.fromkeys(("before", "after"), (float("inf"), 0.0))  # and its faults
        for round_ in range(rounds):
            order = [("before", {}), ("after", MALLOC_ENV)][:: 1 if round_ % 2 == 0 else -1]
            for name, extra in order:
                best[name] = min(best[name], in_fresh_process(worker, extra))
        (before, faults_before), (after, faults_after) = best["before"], best["after"]
        rows.append(("allocator", case,
                     f"glibc defaults ({faults_before:.0f} page faults a step)",
                     f"MALLOC_*_THRESHOLD_ 32, 64 MB ({faults_after:.0f} page faults a step)",
                     before, after))
    return rows


def page_faults():
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def conv_worker(mode, rounds):
    """Print the conv net's seconds and minor page faults per training step, in this process.

    ``mode`` ``"step"``: the best of ``rounds`` rounds of 20 steps alone; ``"fit"``: one
    ``fit`` of the training rows for 2 epochs (validation, code statistics and all).
    """
    if mode == "step":
        step = training_step("conv")
        seconds = interleaved({"step": step}, rounds, calls=20)["step"]
        before = page_faults()
        for _ in range(20):
            step()
        print(seconds, (page_faults() - before) / 20)
        return
    X = training_rows()
    steps = 2 * -(-len(X) // BATCH)
    before, start = page_faults(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ConvAutoencoder(max_iter=2, random_state=0).fit(X)
    print((time.perf_counter() - start) / steps, (page_faults() - before) / steps)


def graphed_step(model):
    """A callable replaying one captured CUDA graph of a whole training step of ``model``."""
    X, estimator, networks = fitted_network(model)
    optimizer = torch.optim.Adam(networks.parameters(), lr=estimator.learning_rate_init,
                                 capturable=True)
    objective = estimator._objective(torch.Generator().manual_seed(0))
    data = BatchSource(X, DEVICE)._tensor
    order = torch.from_numpy(np.random.default_rng(1).permutation(len(X))).to(DEVICE)
    rows = order[:BATCH].clone()  # the graph's input: overwritten before each replay

    def step():
        loss = sum(objective(torch.index_select(data, 0, rows)).values())
        loss.backward()
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    count = [0]

    def replay():
        start = count[0] % 40 * BATCH
        count[0] += 1
        rows.copy_(order[start:start + BATCH])
        graph.replay()

    return replay


def cuda_graph(rounds):
    rows = []
    for model in NETWORKS:
        try:
            graphed = graphed_step(model)
        except Exception as exc:  # noqa: BLE001 -- report what capture does not support
            print(f"CUDA graph: {model}: not captured ({type(exc).__name__}: {exc})"[:300])
            continue
        best = interleaved({"before": training_step(model), "after": graphed}, rounds,
                           calls=100 if model == "dense" else 20)
        rows.append(("CUDA graph", f"{model}, training step", "op by op",
                     "whole step in a CUDA graph", best["before"], best["after"]))
    return rows


LEVERS = {
    "output layer": output_layer,
    "pool first": pool_first,
    "loss": losses,
    "gather": gather,
    "conv weights": conv_weights,
    "bfloat16": bfloat16,
    "code statistics": code_statistics,
    "inference pooling": inference_pooling,
    "inference batch": inference_batch,
    "snapshot": snapshot,
    "hand-written step": hand_written_step,
    "threads": threads,
    "allocator": allocator,
    "CUDA graph": cuda_graph,
}
CPU_ONLY = ("code statistics", "snapshot", "hand-written step", "threads", "allocator")
GPU_ONLY = ("CUDA graph",)


# ------------------------------------------------------------------------------ report


def report_name(args):
    """``levers_<device>.md``; ``levers_<device>_partial.md`` for a run of fewer levers or
    rounds than the default, which must not replace the full run's committed table."""
    partial = not set(default_levers()) <= set(args.levers) or args.rounds < ROUNDS
    return f"levers_{DEVICE.type}{'_partial' if partial else ''}.md"


def default_levers():
    """The levers that concern ``DEVICE``."""
    skipped = CPU_ONLY if DEVICE.type == "cuda" else GPU_ONLY
    return [name for name in LEVERS if name not in skipped]


def write_report(rows, path, command, seconds):
    where = (f"{torch.cuda.get_device_name(DEVICE)} (CUDA {torch.version.cuda}), "
             if DEVICE.type == "cuda" else "")
    lines = [
        "# skae's speed levers, one at a time" + (" (GPU)" if where else ""),
        "",
        f"Command: `{command}`",
        "",
        f"{where}torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
        f"CPUs; time of this run: {seconds:.0f} s. Best of the interleaved rounds, per call.",
        "",
        "| lever | case | before | after | before (ms) | after (ms) | after / before |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for lever, case, before, after, t_before, t_after in rows:
        lines.append(f"| {lever} | {case} | {before} | {after} | {t_before * 1e3:.3g} | "
                     f"{t_after * 1e3:.3g} | {t_after / t_before:.2f} |")
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=positive_int, default=ROUNDS,
                        help=f"interleaved rounds (default {ROUNDS})")
    parser.add_argument("--levers", nargs="+", choices=list(LEVERS), default=None,
                        help="levers to time (default: all that concern the device); fewer "
                        "levers or rounds write levers_<device>_partial.md")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="cpu (default), cuda or cuda:N")
    parser.add_argument("--out", type=Path, default=ROOT / "results",
                        help="folder for levers_<device>.md (default: results/ beside this "
                        "script)")
    parser.add_argument("--conv-step", type=int, help=argparse.SUPPRESS)  # allocator workers
    parser.add_argument("--conv-fit", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.conv_step or args.conv_fit:  # allocator worker, in this process's environment
        conv_worker("step" if args.conv_step else "fit", args.conv_step or 1)
        return
    global DEVICE
    DEVICE = torch.device(args.device)
    args.levers = list(dict.fromkeys(args.levers or default_levers()))  # each once
    path = args.out / report_name(args)
    check_out(__file__, args.out, [path.name])
    start, rows = time.perf_counter(), []
    for name in args.levers:
        found = LEVERS[name](args.rounds)
        for lever, case, before, after, t_before, t_after in found:
            print(f"{lever}: {case}: {before} {t_before * 1e3:.3g} ms, {after} "
                  f"{t_after * 1e3:.3g} ms ({t_after / t_before:.2f})", flush=True)
        rows += found
    command = shlex.join(["python", "benchmarks/levers.py",
                          *(sys.argv[1:] if argv is None else argv)])
    write_report(rows, path, command, time.perf_counter() - start)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
