"""Storage.undelivered: per endpoint, the outbox messages not delivered to it, counted by each storage alike (one
query on SQL storages): delivered ones leave it, failed and given-up ones stay, a replay puts one back."""

from __future__ import annotations

import datetime as dt

from rating.outbox import INVOICE_ISSUED, INVOICE_PAID, message
from rating.records import DeliveryRecord
from rating.storage import Storage

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def line(message_id: str, endpoint: str, state: str, minute: int) -> DeliveryRecord:
    return DeliveryRecord(message_id, endpoint, state, 1, T0 + dt.timedelta(minutes=minute), None, "", "w")


def test_undelivered_counts_what_each_endpoint_still_lacks(storage: Storage) -> None:
    with storage.writing():
        storage.announce([message(INVOICE_ISSUED, f"INV-{n}", {"n": n}, T0 + dt.timedelta(hours=n)) for n in range(4)])
        storage.announce([message(INVOICE_PAID, "INV-0", {"n": 0}, T0 + dt.timedelta(hours=5))])
    issued, paid = "invoice.issued:INV-", "invoice.paid:INV-0"
    assert storage.undelivered("a", T0) == 5
    assert storage.undelivered("a", T0 + dt.timedelta(hours=2)) == 3  # added later: only what came after
    assert storage.undelivered("a", T0, [INVOICE_PAID]) == 1
    assert storage.undelivered("a", T0, [INVOICE_PAID, INVOICE_ISSUED]) == 5
    storage.log_deliveries(
        [
            line(f"{issued}0", "a", "claimed", 1),
            line(f"{issued}0", "a", "delivered", 2),
            line(f"{issued}1", "a", "failed", 3),
            line(f"{issued}2", "a", "gave_up", 4),
            line(paid, "b", "delivered", 5),  # another endpoint's delivery counts for it alone
            line(f"{issued}3", "a", "delivered", 6),
            line(f"{issued}3", "a", "replayed", 7),  # sent again: undelivered until it is
        ]
    )
    assert storage.undelivered("a", T0) == 4  # INV-1 failed, INV-2 given up, INV-3 replayed, the payment
    assert storage.undelivered("b", T0) == 4 and storage.undelivered("b", T0, [INVOICE_PAID]) == 0
    storage.log_deliveries([line(f"{issued}3", "a", "delivered", 8)])
    assert storage.undelivered("a", T0) == 3
