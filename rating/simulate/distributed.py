"""The same simulation on a Dask cluster: one partition of customers per task, combined, then closed.

Every billing period of a customer lives in one partition (customers are split
by a hash of their id), so each task runs the columnar pricing of
:func:`rating.simulate.columnar.price_columnar` on its share of the Parquet
files and the driver adds the partial scenarios up before closing periods, as
a single process would. Workers read the Parquet files themselves: the paths
must name the same files on every worker (shared storage, or object storage
DuckDB can read).

One difference from a single process: an event id used by two customers with
different content is caught as a conflict only when both customers fall in the
same partition.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rating.distribution import install_hint
from rating.errors import RatingError
from rating.pricebook.catalog import Catalog
from rating.registry import Registry
from rating.simulate import Scenario, SimulationResult, close_periods

INSTALL_HINT = f"simulating on Dask needs it installed: {install_hint('dask')}"


def price_partition(
    paths: Sequence[str], catalogs: Sequence[Catalog], labels: Sequence[str], part: int, parts: int
) -> tuple[list[Scenario], list[str]]:
    """Price one partition of customers under every catalog; runs on a worker."""
    from rating.simulate.columnar import ParquetHistory, price_columnar

    registry = Registry.load()
    history = ParquetHistory(paths, partition=(part, parts))
    scenarios, notices = [], []
    for catalog, label in zip(catalogs, labels, strict=True):
        scenario, said = price_columnar(history, catalog, registry, label)
        scenarios.append(scenario)
        notices += said
    return scenarios, notices


def _reachable(address: str, timeout: float) -> None:
    """Raise OSError if no TCP server listens at ``address``'s host and port (a plain TCP connect, closed at once)."""
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if host and port.isdigit():
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass


def simulate_on_dask(
    paths: Sequence[str | Path],
    baseline: Catalog,
    candidates: Sequence[Catalog],
    labels: Sequence[str],
    client: Any,
    partitions: int | None = None,
) -> SimulationResult:
    """Simulate the Parquet ``paths`` on the cluster ``client`` talks to (a ``distributed.Client``).

    ``partitions`` defaults to twice the number of worker threads.
    """
    catalogs = [baseline, *candidates]
    files = [str(Path(path).resolve()) for path in paths]
    parts = partitions or max(1, 2 * sum(client.nthreads().values()))
    futures = [
        client.submit(price_partition, files, catalogs, list(labels), i, parts, pure=False) for i in range(parts)
    ]
    totals = [Scenario(label, catalog.latest.currency) for catalog, label in zip(catalogs, labels, strict=True)]
    notices: list[str] = []
    for future in futures:
        scenarios, said = future.result()
        notices += said
        for total, part in zip(totals, scenarios, strict=True):
            total.merge(part)
    closed = [close_periods(scenario, catalog) for scenario, catalog in zip(totals, catalogs, strict=True)]
    return SimulationResult(closed[0], closed[1:], notices)


def connect(address: str | None, workers: int | None, *, timeout: float = 10.0) -> Any:
    """A ``distributed.Client``: to the scheduler at ``address``, or to a new local cluster of ``workers``.

    A scheduler that cannot be reached is a :class:`~rating.errors.RatingError` at once when nothing
    listens at ``host:port`` (else after ``timeout`` seconds), not after Dask's 30 s of retries.
    """
    try:
        from distributed import Client
    except ImportError:
        raise RatingError(INSTALL_HINT) from None
    if address:
        try:
            _reachable(address, timeout)
            return Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as error:  # refused, unresolvable, not a scheduler
            raise RatingError(
                f"cannot reach the Dask scheduler at {address}: {error or type(error).__name__}"
            ) from None
    return Client(local_cluster(workers or 2))


#: Where a local cluster's scheduler serves HTTP (its health and metrics routes): any free port of the loopback.
#: ``dashboard_address=None`` alone turns the dashboard off but still binds port 8787, and warns when it is taken.
HTTP_ADDRESS = "127.0.0.1:0"


def local_cluster(workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded processes that opens no dashboard and no fixed
    port, so it starts the same whether or not another program holds port 8787."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": HTTP_ADDRESS},
    )
