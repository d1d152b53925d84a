"""Webhooks out: outbox rows written in the write of the change they announce, delivered at least once, signed per
Standard Webhooks and verified by a receiver with the ``standardwebhooks`` library."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from rating.cli import main
from rating.errors import InvoiceError, WebhookError
from rating.invoices.issue import issue_invoices
from rating.invoices.profiles import parse_billing
from rating.invoices.settle import pay_invoice
from rating.outbox import INVOICE_ISSUED, INVOICE_PAID
from rating.pricebook.catalog import Catalog
from rating.refusals import WebhookRefusal
from rating.storage import Storage
from rating.storage.sqlite import SQLiteStorage
from rating.webhooks import (
    LEASE,
    add_endpoint,
    backoff,
    claim,
    deliver,
    endpoints,
    new_secret,
    remove_endpoint,
    replay,
    sign,
)
from tests.helpers import EXAMPLE, ROOT, SIMPLE_PRICEBOOK, event
from tests.test_invoices import BILLING, ISSUED, NOVEMBER, billed

_SQLiteStorage = SQLiteStorage


@pytest.fixture(autouse=True)
def _closed_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every SQLite storage a test here opens is closed when it ends (Python 3.13 warns of an unclosed one)."""
    opened: list[SQLiteStorage] = []

    def opening(*args: object, **kwargs: object) -> SQLiteStorage:
        opened.append(_SQLiteStorage(*args, **kwargs))  # type: ignore[arg-type]
        return opened[-1]

    monkeypatch.setattr(f"{__name__}.SQLiteStorage", opening)
    yield
    for storage in opened:
        storage.close()


class Receiver:
    """A webhook receiver on a free loopback port: answers each request with the next of ``statuses`` (then 200)
    and keeps what it received (headers, body)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        #: Set when a delivery arrives (a background sender is waited for, never timed).
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def verified(self, secret: str) -> list[dict[str, object]]:
        """Every delivery received, verified with ``secret`` (raises on any that does not verify)."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _issue(storage: Storage, book) -> str:  # type: ignore[no-untyped-def]
    engine = billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=1500, model="m")], "2026-11")
    report = issue_invoices(storage, Catalog([engine.pricebook]), parse_billing(BILLING), "2026-11", issued=ISSUED)
    return report.issued[0].number


def test_an_issued_and_paid_invoice_is_announced_and_delivered_signed(
    storage: Storage, book, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret()
    add_endpoint(storage, receiver.url, [secret])
    number = _issue(storage, book)
    assert [(m.id, m.type) for m in storage.outbox()] == [(f"invoice.issued:{number}", INVOICE_ISSUED)]
    report = deliver(storage)
    assert report.delivered == [(f"invoice.issued:{number}", endpoints(storage)[0].id)]
    [issued] = receiver.verified(secret)
    assert issued["type"] == INVOICE_ISSUED
    assert issued["data"]["number"] == number and issued["data"]["total"] == "1.50"  # type: ignore[index]
    assert receiver.received[0][0]["webhook-id"] == f"invoice.issued:{number}"
    assert deliver(storage).delivered == []  # delivered once: nothing is due
    # Paid in two parts: invoice.paid is announced by the payment that pays it, not by the first.
    assert pay_invoice(storage, number, Decimal("1.00"), "pay-1")
    assert [m.type for m in storage.outbox()] == [INVOICE_ISSUED]
    with pytest.raises(InvoiceError):
        pay_invoice(storage, number, Decimal("0.51"), "pay-2")  # an overpayment: refused, nothing announced
    assert pay_invoice(storage, number, Decimal("0.50"), "pay-3")
    assert not pay_invoice(storage, number, Decimal("0.50"), "pay-3")  # a replay announces nothing again
    assert [m.id for m in storage.outbox()] == [f"invoice.issued:{number}", f"invoice.paid:{number}"]
    assert len(deliver(storage).delivered) == 1
    paid = receiver.verified(secret)[1]
    assert paid["type"] == INVOICE_PAID and paid["data"]["paid"] == "1.50"  # type: ignore[index]


def test_tampered_replayed_or_foreign_deliveries_fail_verification(receiver: Receiver, book) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(":memory:")
    old, new = new_secret(), new_secret()
    add_endpoint(storage, receiver.url, [old, new])  # during a rotation both sign
    _issue(storage, book)
    deliver(storage)
    [(headers, body)] = receiver.received
    assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body.replace(b"1.50", b"0.01"), headers)  # tampered body
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers | {"webhook-id": "invoice.issued:INV-2026-999999"})  # another id
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)  # signed with another secret
    stale = int(headers["webhook-timestamp"]) - 600
    with pytest.raises(WebhookVerificationError):  # the same signature sent again later: the timestamp says when
        Webhook(old).verify(body, headers | {"webhook-timestamp": str(stale)})
    [message] = storage.outbox()
    replayed = sign(message, [old], dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):  # a captured delivery replayed ten minutes on
        Webhook(old).verify(body, replayed)


def test_a_failing_endpoint_is_retried_with_backoff_and_later_succeeds(receiver: Receiver, book) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(":memory:")
    secret = new_secret()
    add_endpoint(storage, receiver.url, [secret])
    number = _issue(storage, book)
    receiver.statuses = [500, 503]
    start = dt.datetime.now(dt.UTC)
    assert [f[2] for f in deliver(storage, now=start).failed] == ["500"]
    assert deliver(storage, now=start + backoff(1) / 2).failed == []  # waiting out its backoff: not sent
    assert len(receiver.received) == 1
    assert [f[2] for f in deliver(storage, now=start + backoff(1)).failed] == ["503"]
    later = start + backoff(1) + backoff(2)
    assert len(deliver(storage, now=later).delivered) == 1
    assert deliver(storage, now=later + dt.timedelta(days=1)).delivered == []
    assert len(receiver.verified(secret)) == 3
    assert {headers["webhook-id"] for headers, _ in receiver.received} == {f"invoice.issued:{number}"}
    log = [(d.state, d.attempt) for d in storage.deliveries()]
    assert log == [("claimed", 1), ("failed", 1), ("claimed", 2), ("failed", 2), ("claimed", 3), ("delivered", 3)]


def test_an_endpoint_nobody_answers_at_is_logged_failed_and_replay_sends_again(receiver: Receiver, book) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(":memory:")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    secret = new_secret()
    gone = add_endpoint(storage, dead, [secret])
    live = add_endpoint(storage, receiver.url, [secret], ["invoice.issued"])
    number = _issue(storage, book)
    report = deliver(storage)
    assert [(f[1], f[2].split(":")[0]) for f in report.failed] == [(gone.id, "URLError")]
    assert report.delivered == [(f"invoice.issued:{number}", live.id)]
    remove_endpoint(storage, gone.id)
    assert [e.id for e in endpoints(storage)] == [live.id]
    assert replay(storage, f"invoice.issued:{number}") == [live.id]
    assert len(deliver(storage).delivered) == 1
    assert [h["webhook-id"] for h, _ in receiver.received] == [f"invoice.issued:{number}"] * 2
    with pytest.raises(WebhookError) as refused:
        replay(storage, "invoice.issued:INV-1999-000001")
    assert refused.value.code == WebhookRefusal.UNKNOWN_MESSAGE


def test_a_claim_holds_a_pair_for_one_worker_until_its_lease_runs_out(book) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(":memory:")
    add_endpoint(storage, "http://127.0.0.1:9/", [new_secret()])
    _issue(storage, book)
    now = dt.datetime.now(dt.UTC)
    assert len(claim(storage, now=now, worker="a")) == 1
    assert claim(storage, now=now, worker="b") == []  # held by a (a died, say)
    assert claim(storage, now=now + LEASE - dt.timedelta(seconds=1), worker="b") == []
    assert [attempt for _, _, attempt in claim(storage, now=now + LEASE, worker="b")] == [1]


def test_the_outbox_row_exists_only_if_the_change_committed(tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(tmp_path / "r.db")
    with pytest.raises(RuntimeError), storage.writing():
        _issue(storage, book)
        assert len(storage.outbox()) == 1  # written in the write...
        raise RuntimeError("the write fails after the invoice was numbered")
    assert storage.outbox() == [] and storage.documents() == []  # ...and rolled back with it
    number = _issue(storage, book)
    assert [m.id for m in SQLiteStorage(tmp_path / "r.db").outbox()] == [f"invoice.issued:{number}"]


@pytest.mark.parametrize(
    ("url", "secret", "events", "code"),
    [
        ("ftp://x", new_secret(), [], WebhookRefusal.INVALID_ENDPOINT),
        ("https://x", "whsec_" + "A" * 8, [], WebhookRefusal.INVALID_SECRET),
        ("https://x", "not base64!", [], WebhookRefusal.INVALID_SECRET),
        ("https://x", new_secret(), ["invoice.voided"], WebhookRefusal.INVALID_ENDPOINT),
    ],
)
def test_an_endpoint_that_cannot_be_used_is_refused_with_its_code(url: str, secret: str, events, code) -> None:  # type: ignore[no-untyped-def]
    storage = SQLiteStorage(":memory:")
    with pytest.raises(WebhookError) as refused:
        add_endpoint(storage, url, [secret], events)
    assert refused.value.code == code and endpoints(storage) == []


def test_an_invoice_issued_by_the_cli_is_delivered(
    demo_history: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = new_secret()
    monkeypatch.setenv("HOOK_SECRET", secret)
    assert main(["webhooks", "add", receiver.url, "--secret-env", "HOOK_SECRET", "--db", "history.db"]) == 0
    added = capsys.readouterr().out.strip()
    assert main(["webhooks", "list", "--db", "history.db", "-o", "json"]) == 0
    listed = capsys.readouterr().out
    assert secret not in listed and json.loads(listed) == [
        {"id": added, "url": receiver.url, "events": "all", "secrets": 1, "version": 1}
    ]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    capsys.readouterr()
    main([*issue, "--date", "2026-12-01", "-o", "json"])
    numbers = [i["number"] for i in json.loads(capsys.readouterr().out)]
    assert numbers and not receiver.received  # written to the outbox, not sent by the command that wrote it
    assert main(["webhooks", "deliver", "--db", "history.db"]) == 0
    assert [d["data"]["number"] for d in receiver.verified(secret)] == numbers  # type: ignore[index]
    assert main(["webhooks", "replay", f"invoice.issued:{numbers[0]}", "--db", "history.db"]) == 0
    assert main(["webhooks", "deliver", "--db", "history.db"]) == 0
    assert receiver.received[-1][0]["webhook-id"] == f"invoice.issued:{numbers[0]}"
    monkeypatch.delenv("HOOK_SECRET")
    assert main(["webhooks", "add", receiver.url, "--secret-env", "HOOK_SECRET", "--db", "history.db"]) == 2


def test_a_crossed_spend_alert_and_a_low_wallet_are_announced_once_with_their_ratings(book, storage: Storage) -> None:  # type: ignore[no-untyped-def]
    from rating.engine import Engine
    from rating.registry import Registry
    from rating.wallet.wallets import Wallets
    from tests.test_spend_controls import BOOK, runs

    Wallets(storage).deposit("prepaid", "USD", Decimal(4), "pay-1")
    engine = Engine(book(BOOK), storage, Registry.load())
    engine.rate_batch(runs("capped", 4) + runs("prepaid", 3), chunk_size=1)
    engine.rate_batch(runs("capped", 4) + runs("prepaid", 3), chunk_size=1)  # again: duplicates announce nothing
    bodies = [json.loads(m.payload) for m in storage.outbox()]
    assert [(b["type"], b["data"]) for b in bodies] == [
        (
            "spend.alert_crossed",
            {"customer": "capped", "period": "2026-11", "spent": "2.00", "threshold": "1.50", "asset": "USD"},
        ),
        ("wallet.top_up_needed", {"customer": "prepaid", "asset": "USD", "available": "1.00", "amount": "20"}),
    ]
    assert [m.id for m in storage.outbox()] == [
        "spend.alert_crossed:capped:2026-11:1.50",
        "wallet.top_up_needed:prepaid:USD:prepaid-2",
    ]
