"""Running batch tasks on Dask distributed: an embedded local cluster (one single-threaded worker
process per core, each with a memory limit) or an existing cluster by its scheduler's address."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from research.batch import Job, failed_result, run_job

if TYPE_CHECKING:
    from distributed import Client

ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT = "15s"  # to reach an existing scheduler
MAX_WORKER_MEMORY = 2 * 1024**3  # a replay needs about 120 MB; plots and big EDF headers more


class ClusterError(RuntimeError):
    """Dask is missing or the cluster cannot be reached; the message says what to do."""


@dataclass(frozen=True)
class ClusterInfo:
    """Where the tasks ran."""

    address: str
    workers: int
    embedded: bool
    memory_limit: int | None  # bytes per worker (embedded cluster)


def _dask() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise ClusterError(
            "batch runs on Dask distributed, which is not installed: "
            "pip install 'crampwatch[research]'"
        ) from error
    return distributed


def cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_memory_limit(workers: int) -> int:
    """Bytes per worker: an equal share of the machine's memory, at most 2 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MAX_WORKER_MEMORY
    return min(MAX_WORKER_MEMORY, total // max(1, workers))


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    memory_limit: int | str | None = None,
) -> Iterator[tuple[Client, ClusterInfo]]:
    """A client on the cluster at `scheduler` (or $DASK_SCHEDULER_ADDRESS), else on a new local
    cluster of `workers` single-threaded processes (default: one per core); closed on exit
    (the local cluster with it, its workers stopped)."""
    distributed = _dask()
    address = scheduler or os.environ.get(ADDRESS_VARIABLE)
    if address:
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} ({error}); is `dask scheduler` "
                f"running there, and the address right (tcp://HOST:8786)?"
            ) from error
        with _closing(client):
            count = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            yield client, ClusterInfo(address, count, embedded=False, memory_limit=None)
        return
    count = workers or cores()
    limit = memory_limit or default_memory_limit(count)
    with _workers_ignore_ctrl_c():
        cluster = distributed.LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            memory_limit=limit,
            dashboard_address=":0",  # no fixed port: other clusters may run here
            # The batch reports every failure itself, in its tables and words; the workers'
            # own logs would only add Dask's view of a teardown (Ctrl-C) to the terminal.
            silence_logs=logging.CRITICAL,
        )
    with _closing(cluster), _closing(distributed.Client(cluster)) as client:
        yield client, ClusterInfo(cluster.scheduler_address, count, True, _bytes(limit))


@contextmanager
def _closing(thing: Any) -> Iterator[Any]:
    """Close a Dask client or cluster on the way out; after an interrupt or an error, quietly
    (tasks torn down mid-flight make Dask log tracebacks that are no news to the user)."""
    try:
        yield thing
    except BaseException:
        with _quiet_dask_logs():
            thing.close()
        raise
    thing.close()


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with Ctrl-C ignored (they inherit it): the terminal sends it to
    every process of the batch, and the workers are to be stopped by the batch, in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _bytes(limit: int | str) -> int:
    if isinstance(limit, int):
        return limit
    from dask.utils import parse_bytes

    return int(parse_bytes(limit))


def run_jobs(
    client: Client,
    jobs: Sequence[Job],
    on_result: Callable[[Job, dict[str, Any]], None],
    task: Callable[[Job], dict[str, Any]] = run_job,
) -> None:
    """Submit every job as a task and hand each result to `on_result` as it arrives. A task
    whose workers kept dying (out of memory, killed) comes back as a failed result; on an
    interrupt (Ctrl-C) the tasks not yet finished are cancelled before it propagates."""
    distributed = _dask()
    futures = {
        client.submit(task, job, key=f"crampwatch-{job.key}", pure=False): job for job in jobs
    }
    try:
        for future in distributed.as_completed(list(futures)):
            job = futures.pop(future)
            on_result(job, _outcome(future, job, distributed))
    finally:
        if futures:
            client.cancel(list(futures), force=True)


def _outcome(future: Any, job: Job, distributed: Any) -> dict[str, Any]:
    try:
        return future.result()
    except distributed.KilledWorker:
        return failed_result(
            job,
            "the workers processing this recording died repeatedly (out of memory? see "
            "--memory-limit); it is tried again on the next run",
        )
    except Exception as error:  # the task itself never raises; this is the cluster's failure
        return failed_result(job, f"the cluster could not run this task: {error!r}")


def worker_peaks(client: Client) -> dict[str, float]:
    """Each worker's peak resident memory so far, in MB (Linux, from getrusage)."""
    return client.run(_peak_rss_mb)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
