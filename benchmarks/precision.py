"""bfloat16 mixed precision against float32: the epoch's time and the model it trains.

``precision="bfloat16"`` runs the encoder and the decoder of each training step under
``torch.autocast`` in bfloat16; the weights, the optimizer, the loss and all inference stay
in float32. This script trains each network of ``speed.py`` (784-32-784, the chapter's conv
net, 784-1000-500-250-30, skae's default training settings) twice from the same seed, once
in each precision, one ``partial_fit`` epoch over MNIST's 60,000 training digits at a time,
the two models' epochs interleaved with their order alternating. It reports:

- the epoch's time: the best of each, and the median over epochs of the paired ratio
  (bfloat16 over float32), the first epoch (network built, warm-up) left out. An epoch is
  the whole ``partial_fit``, whose pass over ``X`` for ``sample``'s code statistics runs in
  float32 in both;
- after the last epoch, both models' test score (minus nats per test digit) and test R²
  (:func:`skae.metrics.reconstruction_r2`), and their training loss per epoch.

One seed: the difference between the two precisions' scores is to be read against the
epoch-to-epoch wobble of a run, not as a precise figure. bfloat16 pays only where the
hardware computes it natively (the report names the CPU's bfloat16 flags)::

    SKAE_DATA=../shared/data python benchmarks/precision.py      # about 2 minutes, 2 cores
    python benchmarks/precision.py --models conv --epochs 3
    python benchmarks/precision.py --device cuda

Results: ``benchmarks/results/precision_cpu.md`` (``precision_cuda.md`` with ``--device
cuda``); a run with fewer models or epochs than the default writes
``precision_<device>_partial.md`` instead (ignored by git), so that it never replaces the
full run's table. ``--out`` names another folder.
"""

import datetime
import re
import statistics
import time
import warnings

import numpy as np
import torch
from _cli import at_least, check_out, load_mnist_or_fail, report_parser, torch_device
from compare_pca import environment_line
from sklearn.exceptions import ConvergenceWarning

from skae import Autoencoder, ConvAutoencoder
from skae.metrics import reconstruction_r2

MODELS = {
    "dense": ("Autoencoder(32): 784-32-784",
              lambda **kw: Autoencoder(32, **kw)),
    "conv": ("ConvAutoencoder(): the chapter's conv net",
             lambda **kw: ConvAutoencoder(**kw)),
    "deep": ("Autoencoder(30, hidden_layer_sizes=(1000, 500, 250), code_activation='identity')",
             lambda **kw: Autoencoder(30, hidden_layer_sizes=(1000, 500, 250),
                                      code_activation="identity", **kw)),
}
PRECISIONS = ("float32", "bfloat16")
DEFAULT_EPOCHS = 6


def cpu_line():
    """The CPU's model name and the bfloat16 flags it reports (Linux only)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "CPU unknown"
    name = re.search(r"^model name\s*:\s*(.*)$", info, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", info, re.MULTILINE)
    bf16 = sorted({f for f in (flags.group(1).split() if flags else []) if "bf16" in f})
    return (f"{name.group(1).strip() if name else 'CPU'}; bfloat16 flags: "
            + (", ".join(bf16) if bf16 else "none"))


def timed(function, X, device):
    """Seconds that ``function(X)`` takes, the GPU's queued work included."""
    if device != "cpu":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function(X)
    if device != "cpu":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def compare(model, X, X_test, epochs, device):
    """Train the two precisions side by side; a dict of what the report shows."""
    _, make = MODELS[model]
    fits = {p: make(random_state=0, device=device, precision=p) for p in PRECISIONS}
    seconds = {p: [] for p in PRECISIONS}
    for epoch in range(epochs):
        order = PRECISIONS if epoch % 2 == 0 else PRECISIONS[::-1]
        for precision in order:
            seconds[precision].append(timed(fits[precision].partial_fit, X, device))
        print(f"  {model} epoch {epoch + 1}/{epochs}: "
              + ", ".join(f"{p} {seconds[p][-1]:.2f}s" for p in PRECISIONS), flush=True)
    steady = {p: s[1:] for p, s in seconds.items()}
    return {
        "seconds": steady,
        "ratio": statistics.median(b / f for f, b in zip(steady["float32"], steady["bfloat16"])),
        "score": {p: fits[p].score(X_test) for p in PRECISIONS},
        "r2": {p: reconstruction_r2(fits[p], X_test) for p in PRECISIONS},
        "loss": {p: fits[p].loss_curve_ for p in PRECISIONS},
    }


def report(results, args, seconds):
    lines = [
        "# bfloat16 mixed precision against float32 (MNIST)", "",
        f"{datetime.date.today()}, `{args.command}`, {environment_line()}; {cpu_line()}"
        + (f"; {torch.cuda.get_device_name(args.device)}" if args.device != "cpu" else "")
        + f". Time of this run: {seconds:.0f} s.", "",
        f"Each model trained {args.epochs} `partial_fit` epochs of the 60,000 training digits "
        "in each precision from the same seed, the two interleaved; times leave out the "
        "first epoch. Ratio: the median over epochs of bfloat16's time over float32's in "
        "the same epoch. Score: `score` on the 10,000 test digits (minus nats per digit; "
        "higher is better).", "",
        "| model | float32 epoch (s) | bfloat16 epoch (s) | ratio | float32 score | "
        "bfloat16 score | float32 test R² | bfloat16 test R² |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, r in results.items():
        best = {p: min(r["seconds"][p]) for p in PRECISIONS}
        lines.append(
            f"| {MODELS[model][0]} | {best['float32']:.2f} | {best['bfloat16']:.2f} | "
            f"{r['ratio']:.2f} | {r['score']['float32']:.2f} | {r['score']['bfloat16']:.2f} | "
            f"{r['r2']['float32']:.4f} | {r['r2']['bfloat16']:.4f} |")
    lines += ["", "Training loss per epoch (nats per digit):", ""]
    for model, r in results.items():
        for p in PRECISIONS:
            lines.append(f"- {model}, {p}: " + ", ".join(f"{v:.2f}" for v in r["loss"][p]))
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = report_parser(__file__, __doc__, "precision_<device>.md")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--epochs", type=at_least(2), default=DEFAULT_EPOCHS,
                        help=f"epochs per model and precision (default: {DEFAULT_EPOCHS}; "
                        "the first is not timed)")
    parser.add_argument("--device", type=torch_device, default="cpu")
    args = parser.parse_args(argv)
    full = args.epochs == DEFAULT_EPOCHS and set(args.models) == set(MODELS)
    device = "cpu" if args.device == "cpu" else "cuda"
    args.report = f"precision_{device}{'' if full else '_partial'}.md"
    args.command = "SKAE_DATA=../shared/data python benchmarks/precision.py" + (
        "" if args.device == "cpu" else f" --device {args.device}") + (
        "" if full else f" --models {' '.join(args.models)} --epochs {args.epochs}")
    return args


def main(argv=None):
    args = parse_args(argv)
    check_out(__file__, args.out, [args.report])
    X, X_test = load_mnist_or_fail(__file__)
    X, X_test = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, X_test))
    start = time.perf_counter()
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for model in args.models:
            results[model] = compare(model, X, X_test, args.epochs, args.device)
    text = report(results, args, time.perf_counter() - start)
    (args.out / args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
