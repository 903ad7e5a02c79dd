"""Data-parallel training of one model across processes with ``torch.distributed``.

Start one process per CPU socket, machine or GPU (e.g. with ``torchrun``), initialise the
default process group in each (``gloo`` on CPUs, ``nccl`` on GPUs), and fit the same
estimator on the same data inside :func:`data_parallel` in every process::

    torchrun --nproc-per-node 2 examples/train_data_parallel.py

Every process draws the same batches; each computes the gradient of its slice of a batch
and an all-reduce sums the slices, so one step is the step a single process would take on
the whole batch. ``batch_size`` and ``learning_rate_init`` therefore keep their meaning:
the same values train (up to rounding) the same model on 1, 2 or 8 processes, each process
doing ``1 / world_size`` of the arithmetic of a batch.
"""

import contextlib

import torch.distributed as dist

from ._training import _DATA_PARALLEL, ProcessGroup

__all__ = ["data_parallel"]


@contextlib.contextmanager
def data_parallel(group=None):
    """Train data-parallel over a ``torch.distributed`` process group within this block.

    Inside the block, ``fit`` and ``partial_fit`` of any skae estimator split each batch
    across the processes of ``group`` and sum their gradients with an all-reduce. Every
    process must run the same code on the same ``X`` (a ``np.memmap`` of one file keeps
    that cheap) with the same parameters; the first process's seed is shared, so
    ``random_state=None`` works too. The fitted models are equal in every process.

    Parameters
    ----------
    group : torch.distributed.ProcessGroup or None, default=None
        The processes to train over; ``None`` is the default group, which must be
        initialised (``torch.distributed.init_process_group``).

    Yields
    ------
    None

    Raises
    ------
    RuntimeError
        If ``torch.distributed`` has no initialised process group.

    Notes
    -----
    A ``fit`` or ``partial_fit`` whose data one process refuses raises in every process
    (a ``ValueError`` naming that process in the others) before any weight changes.

    Examples
    --------
    A group of one process (real runs start several, e.g. with ``torchrun``):

    >>> import numpy as np
    >>> import torch.distributed as dist
    >>> from skae import Autoencoder
    >>> from skae.distributed import data_parallel
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> X = np.random.RandomState(0).rand(100, 8)
    >>> with data_parallel():
    ...     ae = Autoencoder(n_components=2, max_iter=3, random_state=0).fit(X)
    >>> ae.n_iter_
    3
    >>> dist.destroy_process_group()
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "data_parallel needs an initialised torch.distributed process group: call "
            "torch.distributed.init_process_group (e.g. 'gloo' on CPUs, 'nccl' on GPUs) "
            "in every process first, or launch with torchrun.")
    token = _DATA_PARALLEL.set(ProcessGroup(group))
    try:
        yield
    finally:
        _DATA_PARALLEL.reset(token)
