"""The training engine: epochs over batches, early stopping, loss history, guards.

It knows torch and numpy, not scikit-learn: an estimator hands it a module, an objective (a
function of one batch that returns named scalar loss terms) and a :class:`BatchSource`, and
gets back a :class:`TrainingState` that it keeps between calls (warm start, ``partial_fit``).
Training is a few small steps -- :meth:`Trainer.batch_step`, :meth:`Trainer.run_epoch`,
:meth:`Trainer.fit` -- that a subclass may override one at a time.
"""

import contextlib
import contextvars
import copy
import functools
import hashlib
import math
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

SOLVERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
}


def make_optimizer(solver, parameters, learning_rate, state=None):
    """A torch optimizer by name, with ``state`` (a ``state_dict``) loaded when given.

    ``sgd`` uses Nesterov momentum 0.9 as ``MLPRegressor``. Adam and AdamW use torch's fused
    kernel (one pass over all parameters per step) where this torch has it.
    """
    parameters = list(parameters)
    if solver == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=learning_rate, momentum=0.9, nesterov=True)
    else:
        optimizer = SOLVERS[solver](parameters, lr=learning_rate)
    if state is not None:
        check_state_fits(state, parameters, solver)
        optimizer.load_state_dict(state)
        _match_layouts(optimizer)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
        if solver in ("adam", "adamw"):  # whatever the loaded state was trained with
            group["fused"], group["foreach"] = (True if _fused_adam() else None), None
    if solver in ("adam", "adamw") and _fused_adam():
        # the fused kernel keeps its step counts on the parameter's device, in float32
        for param, param_state in optimizer.state.items():
            if "step" in param_state:
                param_state["step"] = param_state["step"].to(param.device, torch.float32)
    return optimizer


def _total_dtype(device):
    """float64 for the epoch's loss totals, where the device has it (MPS has not)."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def check_state_fits(state, parameters, solver):
    """Refuse an optimizer's ``state_dict`` that does not fit ``parameters``: one group of
    them (as skae makes), entries for those parameters only, a step count in each (but
    sgd's), and tensors of each parameter's shape (torch checks only their number; a fused
    kernel would read and write out of bounds). Made without an optimizer, so loading a
    model needs none."""
    groups = state["param_groups"]
    ids = [i for group in groups for i in group["params"]]
    if len(groups) != 1 or len(ids) != len(parameters):
        raise ValueError(f"the optimizer state is of {len(ids)} parameters in {len(groups)} "
                         f"groups, the network has {len(parameters)} in one.")
    if not set(state["state"]) <= set(ids):
        raise ValueError("the optimizer state has entries for parameters it does not list.")
    for position, (i, param) in enumerate(zip(ids, parameters)):
        entry = state["state"].get(i, {})
        if not isinstance(entry, dict) or (entry and solver != "sgd" and "step" not in entry):
            raise ValueError(f"the optimizer state of parameter {position} is not a "
                             f"{solver} state: {entry!r:.100}")
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor):
                continue
            fits = value.numel() == 1 if key == "step" else value.shape == param.shape
            if not fits:
                raise ValueError(
                    f"the optimizer state does not fit the network: its {key!r} of "
                    f"parameter {position} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(param.shape)}.")


def _match_layouts(optimizer):
    """Give loaded per-parameter state the memory layout of its parameter (channels-last).

    Saved state comes back contiguous; a fused kernel pairs elements by memory order, so
    a state tensor laid out unlike its parameter would be updated against the wrong weights.
    """
    for param, param_state in optimizer.state.items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                param_state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


@functools.cache
def _fused_adam():
    """Whether this torch has a fused Adam for the CPU (since 2.4). Asked at the first
    optimizer, not at import: making any torch optimizer imports ``torch._dynamo``, about
    a second that ``import skae`` need not pay (loading a model to transform never does)."""
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True

# Replay full training batches on a GPU from a CUDA graph where safe (see GraphedStep).
CUDA_GRAPHS = True


class BatchSource:
    """Rows of a 2-D array, gathered by index as float32 tensors on ``device``.

    An in-memory ``numpy.ndarray`` is wrapped once as a float32 tensor (no copy when it is
    already float32 and writable; one float32 copy otherwise) and, for an accelerator, moved
    there once when it leaves a quarter of the free memory for training. Anything else that
    supports ``X[indices]`` -- ``np.memmap``, scipy sparse matrices (densified per batch), zarr or
    dask arrays -- is read one batch at a time and cast to float32 per batch, so it is never
    loaded whole. Out-of-core arrays are read in index order and the rows then put back in
    the order asked for: a batch is the same, row for row, as from the in-memory array.
    """

    def __init__(self, X, device="cpu"):
        self.X = X
        self.device = torch.device(device)
        self.n_samples = X.shape[0]
        self._tensor = None
        if type(X) is np.ndarray and (X.dtype != np.float32 or X.flags.writeable):
            data = np.ascontiguousarray(X, dtype=np.float32)
            self._tensor = torch.from_numpy(data if shares_with_torch(data) else data.copy())
            if self.device.type != "cpu" and _leaves_headroom(self._tensor, self.device):
                try:  # an accelerator: move the data once, if it fits
                    self._tensor = self._tensor.to(self.device)
                except torch.cuda.OutOfMemoryError:  # gather batches from the host instead
                    pass

    @property
    def on_gpu(self):
        """Whether the whole array sits on a CUDA device (rows can be gathered there)."""
        return self._tensor is not None and self._tensor.is_cuda

    def gather(self, rows):
        """Rows ``rows`` (an int64 tensor on the array's device) of the in-memory array."""
        return torch.index_select(self._tensor, 0, rows)  # 2x faster than [rows] on the CPU

    def take(self, indices):
        """Rows ``indices`` (a 1-D int64 array) as a float32 tensor."""
        if self._tensor is not None:
            batch = self.gather(torch.from_numpy(indices).to(self._tensor.device))
        else:
            order = np.argsort(indices, kind="stable") if _is_lazy(self.X) else None
            rows = self.X[indices if order is None else indices[order]]
            rows = rows.toarray() if hasattr(rows, "toarray") else rows
            rows = np.asarray(rows, dtype=np.float32)
            batch = torch.from_numpy(rows if order is None else rows[np.argsort(order)])
        return batch.to(self.device, non_blocking=True)


def _leaves_headroom(tensor, device):
    """Whether moving ``tensor`` to ``device`` leaves a quarter of its free memory.

    The network, its optimizer state and a batch's activations need room beside the
    data; without it the rows stay on the host and each batch is copied over. Free memory
    counts what torch's allocator holds unused. Other accelerators are not asked.
    """
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return tensor.nbytes <= 0.75 * free


def shares_with_torch(a):
    """Whether ``torch.from_numpy`` takes the array ``a`` without a copy or a warning.

    It refuses negative strides and strides that are not a multiple of the item size,
    which numpy allows even in an array it calls contiguous (on an axis of length 1), and
    non-native byte order; it warns on read-only memory.
    """
    return (a.flags.writeable and a.dtype.isnative
            and all(s >= 0 and s % a.itemsize == 0 for s in a.strides))


def _is_lazy(X):
    # Out-of-core arrays read faster (h5py: only) in increasing index order.
    return isinstance(X, np.memmap) or not isinstance(X, np.ndarray) and not hasattr(X, "toarray")


@dataclass
class TrainingState:
    """What training remembers between calls (warm start, ``partial_fit``)."""

    n_iter: int = 0
    loss_curve: list = field(default_factory=list)
    loss_terms: dict = field(default_factory=dict)
    validation_scores: list = field(default_factory=list)
    validation_epochs: list = field(default_factory=list)  # the epoch (from 1) of each score
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    no_improvement_count: int = 0

    def __post_init__(self):
        if len(self.validation_epochs) != len(self.validation_scores):  # saved without them
            self.validation_epochs = list(range(1, len(self.validation_scores) + 1))

    def __setstate__(self, state):  # also a state pickled before validation_epochs existed
        self.__dict__.update(state)
        self.__dict__.setdefault("validation_epochs", [])
        self.__post_init__()

    def record(self, terms, score=None):
        """Add an epoch: its loss terms and, with early stopping, its validation score.

        A term that a warm start adds (``alpha`` set after a first fit) counts 0 in the
        epochs before it, and one it drops counts 0 after: the terms still sum to
        ``loss_curve`` epoch by epoch.
        """
        self.n_iter += 1
        self.loss_curve.append(terms["loss"])
        for name, value in terms.items():
            if name != "loss":
                self.loss_terms.setdefault(name, [0.0] * (self.n_iter - 1)).append(value)
        for values in self.loss_terms.values():  # a term it drops (alpha set to 0) counts 0
            if len(values) < self.n_iter:
                values.append(0.0)
        if score is not None:
            self.validation_scores.append(score)
            self.validation_epochs.append(self.n_iter)


def batch_indices(indices, batch_size, generator=None):
    """Split ``indices`` into batches, in a random order when ``generator`` is given."""
    if generator is not None:
        order = torch.randperm(len(indices), generator=generator).numpy()
        indices = indices[order]
    return [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]


def warn_at_caller(message, category):
    """``warnings.warn`` attributed to the first frame outside skae and scikit-learn.

    So a warning points at the user's line whichever estimator, override or trainer
    raised it (scikit-learn's fit wrapper and a meta-estimator's loop are skipped too).
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
            "skae", "sklearn"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _is_finite(module):
    """Whether every parameter is finite: one check and one sync over them all, not one
    per tensor (it runs after every epoch, and small data make thousands of them)."""
    flat = [p.detach().reshape(-1) for p in module.parameters()]
    return not flat or bool(torch.cat(flat).isfinite().all())


class Snapshot:
    """The state of a module and its optimizer at one moment, to put back later.

    A :meth:`take` copies every tensor of the module's ``state_dict`` and of the optimizer's
    per-parameter state into copies of the same layout (channels-last conv weights stay
    so), allocated by the first take and overwritten in place by the next ones while the
    tensors keep their shapes: for 784-32-784 with Adam a later take cost 0.066 ms against
    a first one's 0.080 and ``copy.deepcopy``'s 0.387 (``benchmarks/levers.py``,
    "snapshot"), a cost paid before every epoch, of which small data make thousands.
    :meth:`restore` copies the weights back in place and gives the optimizer new copies of
    its state (none for a parameter that had none). The optimizer's hyperparameters are
    not saved: training does not change them. A take stopped midway (Ctrl-C) leaves a
    mix of old and new copies: a snapshot to restore after such a stop must not be the
    one being taken (:meth:`Trainer._fit_epochs` alternates two for the best weights).
    """

    def __init__(self, module, optimizer):
        self.module = module
        self.optimizer = optimizer
        self._weights = self._state = self._layout = None

    def take(self):
        """Copy the current state; returns the snapshot."""
        weights = list(self.module.state_dict().values())
        state = [(param, key, value) for param, values in self.optimizer.state.items()
                 for key, value in values.items()]
        layout = ([(w.shape, w.dtype, w.device, w.stride()) for w in weights],
                  [(id(param), key, _tensor_layout(value)) for param, key, value in state])
        if layout != self._layout:  # the first take, or the optimizer's first step since
            self._layout = None  # until the copies are whole (an error may stop them)
            self._weights = [w.detach().clone() for w in weights]
            self._state = [(param, key, _copy_value(value)) for param, key, value in state]
            self._layout = layout
            return self
        with torch.no_grad():
            for saved, live in zip(self._weights, weights, strict=True):
                saved.copy_(live)
            for i, (param, key, value) in enumerate(state):
                saved = self._state[i][2]
                if isinstance(value, torch.Tensor):
                    saved.copy_(value)
                else:
                    self._state[i] = (param, key, _copy_value(value))
        return self

    def restore(self):
        """Put the state of the last :meth:`take` back."""
        with torch.no_grad():
            for live, saved in zip(self.module.state_dict().values(), self._weights,
                                   strict=True):
                live.copy_(saved)
        self.optimizer.state.clear()
        for param, key, value in self._state:
            self.optimizer.state[param][key] = _copy_value(value)


def _tensor_layout(value):
    if isinstance(value, torch.Tensor):
        return value.shape, value.dtype, value.device, value.stride()
    return None


def _copy_value(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if value is None or type(value) in (bool, int, float, str):  # immutable
        return value
    return copy.deepcopy(value)


class GraphedStep:
    """A training step captured once in a CUDA graph, then replayed for every full batch.

    A small network's step on a GPU is bound by its kernel launches, not its arithmetic;
    a replay launches the whole step -- gather, forward, backward, optimizer step -- at
    once (on an H100 the 784-32-784 net's training loop over MNIST went from 0.34 to
    0.071 s an epoch; ``benchmarks/speed.py --device cuda``). It computes what
    :meth:`Trainer.batch_step` computes.
    The first :attr:`WARMUP` steps run as usual, on a side stream as capture requires; the
    batch's row indices are then copied into the graph's input before each replay, and the
    loss terms it returns are the graph's outputs, valid until the next replay.

    Only where nothing in a step reads or draws on the host: the rows on the GPU, a fused
    Adam/AdamW (its step counters live on the GPU), and an objective that draws nothing
    from the trainer's CPU generator (checked on the first warm-up step: the denoiser's
    noise and the VAE's draws come from it, so a GPU fit draws what a CPU fit draws).
    An objective that reads the host otherwise (``.item()``, a branch on a tensor's value,
    a tensor made from host data) fails to capture: its estimator must say so through
    ``_replayable_steps``. There is no fallback after a failed capture.
    """

    WARMUP = 3

    def __init__(self, trainer, source):
        self.trainer = trainer
        self.source = source
        self.rows = torch.zeros(trainer.batch_size, dtype=torch.int64,
                                device=source._tensor.device)
        self.stream = torch.cuda.Stream(source._tensor.device)
        self.graph = None
        self.terms = None
        self.warmed = 0
        self.usable = True

    @staticmethod
    def supports(trainer, source, n_rows):
        return (source.on_gpu and n_rows == trainer.batch_size and trainer.graphs
                and bool(CUDA_GRAPHS)
                and all(group.get("fused") for group in trainer.optimizer.param_groups))

    def step(self, indices):
        """One step on the rows ``indices``: detached loss terms, as ``batch_step``'s."""
        with torch.cuda.device(self.rows.device):  # its streams, not the current device's
            self.rows.copy_(torch.from_numpy(indices))
            if self.graph is None and self.warmed < self.WARMUP:
                return self._warm_up()
            if self.graph is None:
                self._capture()
            self.graph.replay()
            return self.terms

    def _warm_up(self):
        generator = self.trainer.generator
        drawn_before = generator.get_state()
        main = torch.cuda.current_stream()
        self.stream.wait_stream(main)
        try:
            with torch.cuda.stream(self.stream):
                terms = self.trainer.batch_step(self.source.gather(self.rows))
        finally:  # also on Ctrl-C: what follows on the main stream waits for this step
            main.wait_stream(self.stream)
        for value in terms.values():  # read on the main stream: not to be reused before
            value.record_stream(main)
        self.usable = torch.equal(generator.get_state(), drawn_before)
        self.warmed += 1
        return terms

    def _capture(self):
        optimizer = self.trainer.optimizer
        for group in optimizer.param_groups:  # the fused kernels keep their counters on
            group["capturable"] = True        # the GPU: only torch's check reads the flag
        try:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self.terms = self.trainer.batch_step(self.source.gather(self.rows))
        finally:
            for group in optimizer.param_groups:
                group["capturable"] = False


class Trainer:
    """Minimise ``objective`` over batches of a :class:`BatchSource`.

    Parameters
    ----------
    module : torch.nn.Module
        Holds every trained parameter (e.g. a ``ModuleDict`` of encoder and decoder).
    objective : callable
        ``objective(batch) -> dict[str, Tensor]``: named scalar loss terms of one batch,
        minimised through their sum.
    optimizer : torch.optim.Optimizer
    batch_size : int
    shuffle : bool
        Shuffle the samples every epoch.
    generator : torch.Generator
        Draws the shuffling (and whatever randomness ``objective`` uses). It is re-seeded
        with ``seed + epoch`` at the start of every epoch, so training for 2 + 2 epochs
        (warm start) draws exactly what 4 epochs in one call draw.
    seed : int
    verbose : int
        1 prints one line per epoch; 2 also draws a progress bar over the batches.
    graphs : bool
        Allow replaying full batches on a GPU from a CUDA graph (:class:`GraphedStep`).
    """

    def __init__(self, module, objective, optimizer, batch_size, *, shuffle=True,
                 generator=None, seed=0, verbose=0, graphs=True):
        self.module = module
        self.objective = objective
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator() if generator is None else generator
        self.seed = seed
        self.verbose = verbose
        self.graphs = graphs
        self._graphed = None  # a GraphedStep once a full batch on a GPU asks for one

    def batch_step(self, batch):
        """One gradient step; returns the detached loss terms, ``"loss"`` their sum."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.objective(batch)
        loss = sum(terms.values())
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), **{name: t.detach() for name, t in terms.items()}}

    def run_epoch(self, source, indices, epoch=0):
        """One pass over ``indices``; returns each term's mean over samples."""
        self.module.train()
        self.generator.manual_seed(self.seed + epoch)
        batches = batch_indices(indices, self.batch_size, self.generator if self.shuffle else None)
        totals = {}
        for i, batch_idx in enumerate(batches):
            for name, value in self.weighted_step(source, batch_idx).items():
                if name not in totals:  # float64: a float32 running sum drifts by about tol
                    totals[name] = torch.zeros((), dtype=_total_dtype(value.device),
                                               device=value.device)
                totals[name] += value  # no tensor kept per batch: they would pin heap pages
            if self.verbose >= 2:
                _progress(i + 1, len(batches))
        totals = self.sum_totals(totals)
        return {name: float(total) / len(indices) for name, total in totals.items()}

    def weighted_step(self, source, batch_idx):
        """One step on the rows ``batch_idx``: its loss terms times its number of rows.

        Full batches of rows held on a GPU are replayed from a CUDA graph where that is
        safe (:class:`GraphedStep`); other steps run op by op.
        """
        graphed = self._graphed_step(source, len(batch_idx))
        if graphed is not None:
            terms = graphed.step(batch_idx)
            if not graphed.usable:  # the objective draws on the host: never capture it
                self._graphed = False
        else:
            terms = self.batch_step(source.take(batch_idx))
        return {name: value * len(batch_idx) for name, value in terms.items()}

    def _graphed_step(self, source, n_rows):
        graphed = self._graphed
        if graphed is False or not GraphedStep.supports(self, source, n_rows):
            return None
        if graphed is None or graphed.source is not source:
            graphed = self._graphed = GraphedStep(self, source)
        return graphed

    def sum_totals(self, totals):
        """The epoch's weighted loss totals over all processes (here: one)."""
        return totals

    def fit(self, source, indices, state, max_epochs, *, tol=0.0, n_iter_no_change=None,
            validation_score=None):
        """Train up to ``max_epochs`` epochs; returns why it stopped.

        The reason is ``"converged"`` (no improvement of at least ``tol`` for more than
        ``n_iter_no_change`` epochs, on ``validation_score()`` when given, else on the
        training loss), ``"max_iter"``, ``"diverged"`` (a non-finite loss, weight or
        validation score: the weights of the last finite epoch are restored) or
        ``"interrupted"`` (Ctrl-C: the weights of the last complete epoch are restored, so
        a half-done epoch or optimizer step never remains). With ``validation_score`` the
        best weights are restored at the end. Any other error in an epoch (out of memory,
        say) restores what Ctrl-C restores, then propagates.
        """
        try:
            return self._fit_epochs(source, indices, state, max_epochs, tol,
                                    n_iter_no_change, validation_score)
        finally:
            # no gradients left behind: a copy of the weights, and on a GPU memory of the
            # graph's pool that it could not release
            self.optimizer.zero_grad(set_to_none=True)
            self._graphed = None  # let the graph, its memory and the rows it reads go

    def _fit_epochs(self, source, indices, state, max_epochs, tol, n_iter_no_change,
                    validation_score):
        best = snapshot = None
        # the state before the running epoch, and with early stopping the best one, taken
        # in turns into two snapshots: a take that Ctrl-C stops leaves the last best whole
        epoch_state = Snapshot(self.module, self.optimizer)
        best_states = (Snapshot(self.module, self.optimizer),
                       Snapshot(self.module, self.optimizer))
        reason = "max_iter"
        try:
            if validation_score is not None and state.validation_scores:
                # a warm start after early stopping: the weights it starts from compete for
                # the best, so the fit ends with weights that score best_validation_score
                state.best_validation_score = validation_score()
                best = best_states[0].take()
            for _ in range(max_epochs):
                start = time.perf_counter()
                snapshot = epoch_state.take()
                terms = self.run_epoch(source, indices, epoch=state.n_iter)
                finite = math.isfinite(terms["loss"]) and _is_finite(self.module)
                # the epoch counts once it is scored (a Ctrl-C while scoring undoes it)
                score = None if validation_score is None or not finite else validation_score()
                if not finite or (score is not None and not math.isfinite(score)):
                    # finite weights can still overflow on the validation rows
                    self._restore(snapshot)
                    warn_at_caller(
                        f"Training diverged at epoch {state.n_iter + 1} (non-finite loss or "
                        "validation score); stopped and kept the weights of the last finite "
                        "epoch. Lower learning_rate_init or scale the data.", RuntimeWarning)
                    reason = "diverged"
                    break
                state.record(terms, score)
                snapshot = None  # the weights now are those of a complete epoch
                if score is not None and score > state.best_validation_score:
                    best = best_states[best is best_states[0]].take()
                improved = self._update_no_improvement(state, terms["loss"], score, tol)
                if self.verbose:
                    _report(state, score, time.perf_counter() - start, improved)
                if n_iter_no_change is not None and state.no_improvement_count > n_iter_no_change:
                    reason = "converged"
                    break
        except KeyboardInterrupt:
            warn_at_caller(
                "Training interrupted by user; kept the weights of the last complete epoch "
                "(of the best one with early stopping).", UserWarning)
            reason = "interrupted"
            if best is None and snapshot is not None:
                self._restore(snapshot)
        except BaseException:  # e.g. out of GPU memory: kept what Ctrl-C keeps, then raised
            kept = best if best is not None else snapshot
            if kept is not None:
                self._restore(kept)
            raise
        if best is not None:
            self._restore(best)
        return reason

    def _restore(self, snapshot):
        snapshot.restore()  # new optimizer state tensors: capture again
        if self._graphed:
            self._graphed = None

    @staticmethod
    def _update_no_improvement(state, loss, score, tol):
        if score is not None:
            improved = score >= state.best_validation_score + tol
            state.best_validation_score = max(state.best_validation_score, score)
        else:
            improved = loss <= state.best_loss - tol
            state.best_loss = min(state.best_loss, loss)
        state.no_improvement_count = 0 if improved else state.no_improvement_count + 1
        return improved


class DataParallelTrainer(Trainer):
    """A :class:`Trainer` for one process of a ``torch.distributed`` group.

    Every process holds the same data and the same module and draws the same batches (the
    generator is seeded alike). Each batch is cut into ``world_size`` contiguous slices;
    a process computes the gradient of its slice's loss weighted by the slice's share of
    the batch, and an all-reduce sums them: the gradient of the whole batch, as in one
    process. Every process then takes the same optimizer step, so the modules stay equal
    without broadcasting weights. Batch-level statistics inside the objective (the sparse
    penalty's mean activation) are computed per slice. That the processes hold the same
    data, with rows enough for each, is checked before by :func:`agreed_preparation`.

    Parameters
    ----------
    *args, **kwargs
        As :class:`Trainer`.
    group : torch.distributed.ProcessGroup or None
        The process group (``None``: the default group).
    """

    def __init__(self, *args, group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self._device = next(self.module.parameters()).device
        self._term_names = None

    def weighted_step(self, source, batch_idx):
        slices = np.array_split(batch_idx, self.world_size)
        own = slices[self.rank]
        start = sum(len(rows) for rows in slices[:self.rank])
        self.optimizer.zero_grad(set_to_none=True)
        if len(own):
            token = _BATCH_ROWS.set((len(batch_idx), start, start + len(own)))
            try:
                terms = self.objective(source.take(own))
            finally:
                _BATCH_ROWS.reset(token)
            terms = {"loss": sum(terms.values()), **terms}
            (terms["loss"] * (len(own) / len(batch_idx))).backward()
            self._term_names = list(terms)
        else:  # a last batch with fewer rows than processes (the first one has enough)
            terms = dict.fromkeys(self._term_names,
                                  torch.zeros((), dtype=torch.float32, device=self._device))
        self._all_reduce_gradients()
        self.optimizer.step()
        return {name: t.detach() * len(own) for name, t in terms.items()}

    def _all_reduce_gradients(self):
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        flat = torch.cat([torch.zeros_like(p).ravel() if p.grad is None else p.grad.ravel()
                          for p in params])
        dist.all_reduce(flat, group=self.group)
        for p, grad in zip(params, torch.split(flat, [p.numel() for p in params])):
            # laid out like the parameter (channels-last conv weights), as a fused step needs
            p.grad = torch.empty_like(p).copy_(grad.view(p.shape))

    def sum_totals(self, totals):
        names = sorted(totals)
        flat = torch.stack([torch.as_tensor(totals[name]).to(self._device, torch.float64)
                            for name in names])
        dist.all_reduce(flat, group=self.group)
        return dict(zip(names, flat.cpu()))


@dataclass(frozen=True)
class ProcessGroup:
    """The ``torch.distributed`` group that training runs data-parallel over."""

    group: object = None


_DATA_PARALLEL = contextvars.ContextVar("skae_data_parallel", default=None)
# (rows of the batch, first and end row of this process's slice) in a data-parallel step
_BATCH_ROWS = contextvars.ContextVar("skae_batch_rows", default=None)


def draw(sampler, like, generator):
    """``sampler`` (``torch.rand`` or ``torch.randn``) values shaped like ``like``, drawn
    from the CPU ``generator`` (the same draws on every device) and moved to its device.

    In a data-parallel step, where ``like`` holds this process's slice of the batch, the
    values are drawn for the whole batch and the slice's rows kept: each process uses the
    draws one process would give those rows, not a copy of another slice's.
    """
    rows, shape = _BATCH_ROWS.get(), tuple(like.shape)
    if rows is not None and shape and shape[0] == rows[2] - rows[1]:
        values = sampler((rows[0],) + shape[1:], generator=generator, dtype=like.dtype)
        values = values[rows[1]:rows[2]]
    else:
        values = sampler(shape, generator=generator, dtype=like.dtype)
    return values.to(like.device)


def data_parallel_group():
    """The active :class:`ProcessGroup` (set by ``skae.distributed.data_parallel``) or None."""
    return _DATA_PARALLEL.get()


@dataclass
class Agreement:
    """What preparing a fit found in one process, to compare across a data-parallel group.

    ``seed`` is the seed of a new network (None to keep the network); after
    :func:`agreed_preparation` it is the group's first process's.
    """

    parallel: bool
    sizes: tuple = None
    fingerprint: str = None
    seed: int = None

    def report(self, X, n_train, scaling, seed):
        """Record the validated ``X`` (``n_train`` rows trained on), the model's
        ``scaling`` and the new network's ``seed``."""
        self.sizes, self.seed = (X.shape[0], n_train), seed
        if self.parallel:  # the same sizes but other values must not pass either
            self.fingerprint = _fingerprint(X, scaling)


def _fingerprint(X, scaling):
    """A digest of the width, three rows of ``X`` and the ``(mean, scale, loss)`` that
    scale it: what differs between processes given other data, cheaply."""
    rows = np.unique([0, X.shape[0] // 2, X.shape[0] - 1])
    values = X[rows]
    values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
    digest = hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    mean, scale, loss = scaling
    digest.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
    digest.update(repr((X.shape[1], float(scale), loss)).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def agreed_preparation(batch_size):
    """Run the block that prepares a fit in every process of the active data-parallel
    group, and end it alike in all of them: one collective, after the block.

    The block reports what it found (:meth:`Agreement.report`). Where it raised in any
    process, every process raises (that one its own error, the others a ``ValueError``
    naming it), so none waits in a later collective for a process that left. Then the
    processes must have the same ``X`` (sizes, and a fingerprint of values and scaling),
    and the first batch must give each a row. Outside a group, the block just runs.
    A Ctrl-C stops only its own process here: the others wait for the group's timeout.
    """
    parallel = data_parallel_group()
    agreement = Agreement(parallel=parallel is not None)
    if parallel is None:
        yield agreement
        return
    error = None
    try:
        yield agreement
    except Exception as exc:
        error = exc
    world_size = dist.get_world_size(parallel.group)
    reports = [None] * world_size
    said = None if error is None else f"{type(error).__name__}: {error}"
    mine = (said, agreement.sizes, agreement.fingerprint, agreement.seed)
    dist.all_gather_object(reports, mine, group=parallel.group)
    if error is not None:
        raise error
    refused = [(rank, said) for rank, (said, *_) in enumerate(reports) if said is not None]
    if refused:
        rank, said = refused[0]
        raise ValueError(f"data-parallel training stopped before it began: process {rank} "
                         f"of the group refused its data or parameters ({said})")
    sizes = [tuple(sizes) for _, sizes, _, _ in reports]
    if len(set(sizes)) > 1:
        raise ValueError(
            "data-parallel training needs the same X in every process; the processes "
            f"have (samples, training samples) = {sizes}.")
    if len({fingerprint for _, _, fingerprint, _ in reports}) > 1:
        raise ValueError(
            "data-parallel training needs the same X in every process; the processes' X "
            "have the same sizes but other values (or scale to other means).")
    n_train = sizes[0][1]
    if min(batch_size, n_train) < world_size:  # alike in every process
        raise ValueError(
            "data-parallel training needs at least as many samples in the first batch as "
            f"processes ({world_size}); it has {min(batch_size, n_train)}.")
    agreement.seed = reports[0][3]  # the group's first process's


def _progress(done, total, width=30):
    filled = width * done // total
    end = "\n" if done == total else ""
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} batches", end=end,
          file=sys.stderr, flush=True)


def _report(state, score, seconds, improved):
    line = f"Epoch {state.n_iter:>4d}: loss {state.loss_curve[-1]:.6g}"
    if score is not None:
        line += f", validation score {score:.6g}"
    print(f"{line}, {seconds:.2f}s{'' if improved else ' (no improvement)'}", flush=True)
