"""Command-line checks shared by the benchmark scripts.

Bad input stops a script with one line, as argparse does, before any work: a benchmark runs
for minutes to an hour, and a bad ``--out`` or missing data found at the end loses all of it.
Each script imports this module as ``_cli``: its own folder is on ``sys.path`` when it runs
as ``python benchmarks/<script>.py``, from any working directory.
"""

import argparse
import sys
import tempfile
from pathlib import Path


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    return at_least(1)(text)


def at_least(minimum):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {kind}, got {value}")
        return value

    return parse


def torch_device(text):
    """An argparse type: ``cpu`` or a CUDA device that torch sees (``cuda``, ``cuda:N``).

    ``cpu:N`` is the CPU too, and is returned as ``cpu``: the scripts compare the device's
    name with ``"cpu"``.
    """
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device name (cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise argparse.ArgumentTypeError(f"{text!r}: only cpu and cuda are benchmarked")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: torch sees no CUDA GPU here")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise argparse.ArgumentTypeError(
            f"{text!r}: torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return str(device)


def report_parser(script, doc, report):
    """A parser whose ``--out`` is the folder for ``report`` (default: results/ beside
    ``script``), for a script that writes one report."""
    parser = argparse.ArgumentParser(prog=Path(script).name, description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(script).resolve().parent / "results",
                        help=f"folder for {report} (default: results/ beside this script)")
    return parser


def fail(script, message):
    """Stop with one line, as argparse does, for a problem of the input, not of the code.

    ``script`` is the calling script's ``__file__``: its name starts the line.
    """
    sys.exit(f"{Path(script).name}: error: {message}")


def check_out(script, folder, names=(), option="--out"):
    """Make ``folder`` and check that files can be written there, and to ``names`` in it.

    The folder is probed by a temporary file (permission bits do not stop root, a read-only
    file system does); existing ``names`` are opened for appending, which changes nothing.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        fail(script, f"{option}: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        for name in names:
            path = folder / name
            if path.is_dir():
                fail(script, f"{option}: {path} is a folder, not a file")
            if path.exists():
                with open(path, "a"):
                    pass
    except OSError as exc:
        fail(script, f"{option}: cannot write the results to {folder} ({exc})")


def load_mnist_or_fail(script):
    """MNIST's training and test pixels; one line and exit where they cannot be loaded."""
    from skae.datasets import load_mnist

    try:
        return (load_mnist("train", return_X_y=True)[0],
                load_mnist("test", return_X_y=True)[0])
    except (OSError, ValueError) as exc:  # missing, corrupt or not downloadable
        fail(script, exc)
