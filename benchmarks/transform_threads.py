"""Why ``speed.py``'s paired ``transform`` ratio against PCA moves so much: BLAS threads.

``speed.py`` times ``Autoencoder(32).transform`` and ``PCA(32).transform`` of 10,000 MNIST
rows one call each, alternating. numpy's OpenBLAS keeps its threads spinning for a while
after a product, on the cores that torch's threads need for the next call, and torch's
OpenMP threads spin after theirs. This script times the two ``transform`` calls of
``speed.py`` (after one epoch of training on those rows; the weights do not change the
time) in three orders: each library back to back (``k`` calls in a row, the first left
out), the two strictly alternating, and ``speed.py``'s own order (one call of each per
turn, which goes first rotating every turn), with the paired ratio ``speed.py`` judges
its target on. It does so
with numpy's BLAS at its default number of threads and limited to one by
``threadpoolctl``; torch keeps its threads throughout. Each time is the median over the
rounds::

    SKAE_DATA=../shared/data python benchmarks/transform_threads.py   # about 15 seconds

Results: ``benchmarks/results/transform_threads.md`` (``--out`` for another folder).
"""

import datetime
import statistics
import time
import warnings

import numpy as np
from _cli import check_out, load_mnist_or_fail, positive_int, report_parser
from compare_pca import environment_line
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from skae import Autoencoder

ROWS = 10_000
BACK_TO_BACK = 5


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(skae_transform, pca_transform, rounds):
    """Median seconds of each call in each order, ``{order: seconds}``, and the median
    ratio of skae's time to PCA's in ``speed.py``'s order, ``"rotating ratio"``."""
    times = {"skae, back to back": [], "PCA, back to back": [],
             "skae right after PCA": [], "PCA right after skae": [],
             "skae, rotating": [], "PCA, rotating": []}
    for _ in range(rounds):
        for name, call in (("skae", skae_transform), ("PCA", pca_transform)):
            calls = [_seconds(call) for _ in range(BACK_TO_BACK)]
            times[f"{name}, back to back"].extend(calls[1:])
        for _ in range(BACK_TO_BACK):
            times["skae right after PCA"].append(_seconds(skae_transform))
            times["PCA right after skae"].append(_seconds(pca_transform))
        for turn in range(2 * BACK_TO_BACK):  # one call each, the order rotating per turn
            pair = (("skae", skae_transform), ("PCA", pca_transform))
            for name, call in pair[::-1] if turn % 2 else pair:
                times[f"{name}, rotating"].append(_seconds(call))
    medians = {order: statistics.median(values) for order, values in times.items()}
    medians["rotating ratio"] = statistics.median(
        a / b for a, b in zip(times["skae, rotating"], times["PCA, rotating"]))
    return medians


def blas_line():
    blas = [f"{i['internal_api']} {i.get('version') or ''} ({i['num_threads']} threads, "
            f"{i.get('threading_layer') or 'threading unknown'})".replace("  ", " ")
            for i in threadpool_info() if i["user_api"] == "blas"]
    return "; ".join(blas) or "no BLAS seen by threadpoolctl"


def report(results, args, seconds):
    lines = ["# transform after the other library's call: BLAS threads", "",
             f"{datetime.date.today()}, `SKAE_DATA=../shared/data python "
             f"benchmarks/transform_threads.py`, {environment_line()}; BLAS libraries loaded: "
             f"{blas_line()}. {args.rounds} rounds. Time of this run: {seconds:.0f} s.", "",
             f"`Autoencoder(32).transform` and `PCA(32).transform` of {ROWS:,} MNIST rows; "
             "the median time of a call in each order (ms). Back to back: "
             f"{BACK_TO_BACK} calls of one library in a row, the first left out. Right "
             "after: the two strictly alternating. speed.py's order: one call of each per "
             "turn, the order of the two rotating every turn (skae PCA, PCA skae, ...), "
             "and the median over turns of the ratio of the two calls of a turn, as "
             "`speed.py` judges its target.", "",
             "| numpy's BLAS | skae, back to back | PCA, back to back | skae / PCA | "
             "skae right after PCA | PCA right after skae | skae / PCA | "
             "speed.py's order: skae | PCA | paired skae / PCA |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, t in results.items():
        ms = {k: 1e3 * v for k, v in t.items()}
        lines.append(
            f"| {label} | {ms['skae, back to back']:.2f} | {ms['PCA, back to back']:.2f} | "
            f"{t['skae, back to back'] / t['PCA, back to back']:.2f} | "
            f"{ms['skae right after PCA']:.2f} | {ms['PCA right after skae']:.2f} | "
            f"{t['skae right after PCA'] / t['PCA right after skae']:.2f} | "
            f"{ms['skae, rotating']:.2f} | {ms['PCA, rotating']:.2f} | "
            f"{t['rotating ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = report_parser(__file__, __doc__, "transform_threads.md")
    parser.add_argument("--rounds", type=positive_int, default=20,
                        help="rounds of each measurement (default: 20)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_out(__file__, args.out, ["transform_threads.md"])
    X, _ = load_mnist_or_fail(__file__)
    X = np.ascontiguousarray(X[:ROWS], dtype=np.float32)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Autoencoder(32, max_iter=1, random_state=0).fit(X)
    pca = PCA(32, random_state=0).fit(X)
    calls = (lambda: model.transform(X), lambda: pca.transform(X))
    results = {"default threads": measure(*calls, args.rounds)}
    with threadpool_limits(1, user_api="blas"):
        results["1 thread"] = measure(*calls, args.rounds)
    text = report(results, args, time.perf_counter() - start)
    (args.out / "transform_threads.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
