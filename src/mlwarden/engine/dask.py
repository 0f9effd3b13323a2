"""The Dask engine: the same folds, one task per partition, on a dask.distributed cluster.

With ``--scheduler tcp://host:8786`` it joins an existing cluster (workers must reach
the data: shared storage or s3://); without, it starts an in-process LocalCluster with a
worker process per core. Partial states come back to the client and merge in partition
order, exactly as the local engine merges them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import EngineError
from ..registry import FoldCheck
from ..sources.datasets import Partition
from .base import Engine, Folded, fold_partition, merge_states
from .local import fold_to_file, read_states, state_folder

T = TypeVar("T")
R = TypeVar("R")


class DaskEngine(Engine):
    name = "dask"

    def __init__(self, *, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise EngineError("--engine dask needs the dask extra: pip install 'mlwarden[dask]'") from e
        self._cluster: Any = None
        self._states: str | None = None  # where LocalCluster workers leave their partitions' states
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                n = max(1, workers or os.cpu_count() or 1)
                # Nannies give workers MALLOC_TRIM_THRESHOLD_=65536 by default. Setting it turns
                # off glibc's adaptive mmap threshold: every large temporary array is then a
                # fresh mmap, faulted in page by page, and a partition's fold took 2.8x the CPU
                # it takes in a plain process (bench/bench_fold_scaling.py). Unset for our workers.
                with _default_malloc():
                    self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                 dashboard_address=":0", silence_logs=40)
                self.client = Client(self._cluster)
        except (OSError, TimeoutError) as e:
            self.close()
            raise EngineError(f"cannot reach the Dask scheduler {scheduler or '(local)'}: {e}") from e

    def fold(self, checks: Sequence[FoldCheck], partitions: Sequence[Partition]) -> dict[str, Folded]:
        if not partitions:
            return merge_states(checks, [])
        # a key of its own each call: re-scattering equal checks under the key being released
        # tripped an assertion in the scheduler (a bench folding twice on one cluster)
        [shared] = self.client.scatter([list(checks)], broadcast=True, hash=False)
        if self._cluster is not None:
            # our LocalCluster: the workers share this host's disk. States go as files, as in the
            # local engine, not as messages the client deserializes on the cores the workers
            # fold on (two workers gained 1.12x over one so; bench/bench_fold_scaling.py)
            if self._states is None:
                self._states = state_folder()
            futures = [self.client.submit(fold_to_file, shared, p, self._states, pure=False) for p in partitions]
            return merge_states(checks, (read_states(path) for path in _in_order(futures)))
        futures = [self.client.submit(fold_partition, shared, p, pure=False) for p in partitions]
        return merge_states(checks, _in_order(futures))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        return self.client.gather(self.client.map(fn, list(items), pure=False))

    def close(self, *, abort: bool = False) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        folder, self._states = self._states, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _default_malloc() -> Iterator[None]:
    """Start workers with glibc's own malloc tuning: no MALLOC_TRIM_THRESHOLD_ from the nanny's
    config, nor the copy an earlier nanny left in this process's environment (nannies set
    their variables here before spawning: a later cluster's workers inherit them)."""
    import dask

    key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    left = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    ours = left is not None and left == str(dask.config.get(key, None))  # a nanny's, not the user's
    if ours:
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
    try:
        with dask.config.set({key: None}):
            yield
    finally:
        if ours and left is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = left


def _in_order(futures: list[Any]) -> Any:
    """Each partial state in partition order, released once taken: the client holds one at a time."""
    futures.reverse()
    while futures:
        future = futures.pop()
        yield future.result()
        future.release()
