"""What ``rating verify`` checks beyond the ledger's arithmetic: every row a command reads can be read.

A damaged cell (an amount that is not a decimal, an event body that is not an
event, a document that is not an invoice) must be named by ``verify`` before
any command trips on it. So the checks here read every table the way the
commands do (through the storage's own readers, and with the same decoders on
the raw rows) and turn whatever fails into one line naming the row; nothing is
raised. A corruption fuzzer holds the promise (``tests/storage/test_verify.py``):
whenever a command fails on a damaged database, ``verify`` has reported it.

Rows are also compared with what they must agree with: a transaction with its
fingerprint, an event's columns with its body, a document's columns with its
text, a closed period with its ``close`` transaction. A change there would
not crash a command; it would make one silently wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, TypeVar

from rating.errors import InvalidAmount
from rating.events import EARLIEST, LATEST, UsageEvent
from rating.ids import TransactionKind, payment_marker_id, release_id
from rating.money import MONEY_CONTEXT, ZERO, to_decimal
from rating.periods import parse_period

if TYPE_CHECKING:
    from rating.storage.base import Storage

#: Stored amounts and quantities stay below 10^25 (their adjusted exponent below 25) with at most 35 decimal
#: places, so that any two add up exactly in the money context (60 digits); a larger or finer one cannot be summed
#: by the commands that read it. (Checked on the exponents: arithmetic on 1E+999999999 itself overflows.)
LARGEST = 25
FINEST = -35

T = TypeVar("T")


def _said(error: BaseException) -> str:
    """The first line of what ``error`` says, with its type when it says nothing useful."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if not isinstance(error, InvalidAmount) else text


def _shown(raw: object) -> str:
    """A stored value as a problem line shows it: its repr, cut short."""
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def amount(raw: object) -> Decimal:
    """A stored amount as the commands read it: an exact, finite decimal they can add to any other; or raise."""
    value = to_decimal(raw if isinstance(raw, (Decimal, int)) and not isinstance(raw, bool) else str(raw))
    if value and (value.adjusted() >= LARGEST or value.as_tuple().exponent < FINEST):  # type: ignore[operator]
        raise InvalidAmount(f"{_shown(raw)} is out of the range the ledger adds exactly")
    return value


def group(raw: object) -> tuple[str, ...]:
    """A stored group key (a JSON array of text) as the commands read it; or raise."""
    values = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"group key {_shown(raw)} is not a JSON array of text")
    return tuple(values)


def moment(raw: object) -> dt.datetime:
    """A stored time (ISO text or a datetime) as an aware datetime; or raise."""
    value = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(str(raw))
    if value.tzinfo is None:
        raise ValueError(f"time {_shown(raw)} has no offset")
    return value


def document_models() -> dict[str, Any]:
    """The pydantic model of each kind of stored document (imported here: documents sit above storage)."""
    from rating.invoices.issue import Invoice
    from rating.invoices.settle import CreditNote

    return {"invoice": Invoice, "credit_note": CreditNote}


class Checks:
    """Collects problems; every check runs to the end whatever the others found."""

    def __init__(self, storage: Storage, known: Iterable[str] = ()) -> None:
        self.storage = storage
        self.known = set(known)  # named already (by the ledger's arithmetic checks): not again
        self.problems: list[str] = []

    def read(self, what: str, reader: Callable[[], T]) -> T | None:
        """``reader()``, or None with a problem naming ``what`` when it fails, as it would fail a command."""
        try:
            return reader()
        except Exception as error:  # noqa: BLE001 - any failure of a reader is what verify reports
            if str(error) not in self.known:
                self.problems.append(f"{what} cannot be read: {_said(error)}")
            return None

    def rows(self, table: str, columns: str) -> Iterator[tuple[Any, ...]]:
        """The raw rows of ``table``, one at a time (none where the adapter has no tables); a table that cannot be
        read is a problem."""
        try:
            yield from self.storage._raw_rows(table, columns)
        except Exception as error:  # noqa: BLE001 - a table no command could read is what verify reports
            self.problems.append(f"table {table} cannot be read: {_said(error)}")

    def has_tables(self) -> bool:
        """Whether the adapter keeps tables of rows (an adapter without them has no row to miss)."""
        from rating.storage.base import Storage

        return type(self.storage)._raw_rows is not Storage._raw_rows


def unreadable(storage: Storage, known: Iterable[str] = ()) -> list[str]:
    """Problems that would make a command fail, or read something else than what was written; one line each
    (leaving out those ``known`` already)."""
    checks = Checks(storage, known)
    with localcontext(MONEY_CONTEXT):
        transactions = _transactions(checks)
        events = _events(checks, transactions)
        unique = _period_state(checks)
        _usage(checks, events, unique)
        _charges(checks)
        _documents(checks)
        _closed_periods(checks, transactions)
        _payments(checks, transactions)
        _grants(checks, transactions)
        _reservations(checks, transactions)
        _customers(checks)
        _service(checks)
        _readers(checks)
        checks.problems += aggregate(storage)
    return checks.problems


def _transactions(checks: Checks) -> dict[str, Any]:
    """Every transaction as the commands read it, compared with its stored fingerprint, kind and customer."""
    storage = checks.storage
    ids = checks.read("the transaction ids", storage._all_transaction_ids) or []
    try:
        everything: list[Any] | None = list(storage.transactions())
    except Exception:  # noqa: BLE001 - named one by one below
        everything = None
    if everything is None:  # name the ones that fail
        everything = [t for id in ids if (t := checks.read(f"transaction {id}", lambda id=id: storage.transaction(id)))]
    found = {t.id: t for t in everything}
    stored = checks.read("the fingerprints", lambda: storage._fingerprints(found)) or {}
    content: dict[str, tuple[str, str | None]] = {}  # id -> (fingerprint, customer), where they can be computed
    for id, transaction in found.items():
        if any(problem.startswith(f"transaction {id} ") for problem in checks.known):
            continue  # its metadata or amounts are named already
        read = checks.read(f"transaction {id}", lambda t=transaction: (t.fingerprint(), t.customer))
        if read is not None:
            content[id] = read
            if id in stored and stored[id] != read[0]:
                checks.problems.append(f"transaction {id} is not as it was written (its fingerprint differs)")
    for id, kind, customer in checks.rows("transactions", "id, kind, customer"):
        if id in content and (kind, customer) != (found[id].kind, content[id][1]):
            checks.problems.append(
                f"transaction {id} is filed as kind {_shown(kind)} of customer {_shown(customer)},"
                f" its content says {found[id].kind!r} of {content[id][1]!r}"
            )
    return found


def _events(checks: Checks, transactions: dict[str, Any]) -> set[str]:
    """Every stored event body is the event its columns say, rated by a stored transaction."""
    ids = set()
    for id, customer, kind, timestamp, body, transaction_id in checks.rows(
        "events", "id, customer, type, timestamp, body, transaction_id"
    ):
        ids.add(id)
        event = checks.read(f"the body of event {id}", lambda body=body: UsageEvent.model_validate_json(str(body)))
        at = checks.read(f"the time of event {id}", lambda timestamp=timestamp: moment(timestamp))
        if event is None or at is None:
            continue
        if (event.id, event.customer, event.type, event.timestamp) != (id, customer, kind, at):
            checks.problems.append(f"event {id}: its columns (id, customer, type, time) disagree with its body")
        elif body != event.canonical_json():
            checks.problems.append(f"event {id}: its body is not as it was written")
        if transactions and transaction_id not in transactions:
            checks.problems.append(f"event {id} names transaction {_shown(transaction_id)}, which is not stored")
    return ids


def _period_state(checks: Checks) -> dict[tuple[Any, ...], bool]:
    """Every period state row decodes; returns whether each key counts unique members."""
    unique: dict[tuple[Any, ...], bool] = {}
    for customer, meter, key, period, quantity, is_unique in checks.rows(
        "period_state", "customer, meter, group_key, period, quantity, is_unique"
    ):
        where = f"the period state of {customer} {meter} {period}"
        checks.read(where, lambda key=key: group(key))
        checks.read(where, lambda quantity=quantity: amount(quantity))
        if is_unique not in (0, 1, True, False):
            checks.problems.append(f"{where}: is_unique is {_shown(is_unique)}")
        unique[customer, meter, key, period] = bool(is_unique)
    for customer, meter, key, period, _ in checks.rows("period_members", "customer, meter, group_key, period, member"):
        if not unique.get((customer, meter, key, period)):
            checks.problems.append(f"a unique member of {customer} {meter} {period} has no unique period state")
    return unique


def _usage(checks: Checks, events: set[str], unique: dict[tuple[Any, ...], bool]) -> None:
    """Every meter reading decodes: a quantity (a member where the meter counts unique members)."""
    for event_id, meter, customer, key, period, reading, before, after in checks.rows(
        "usage", "event_id, meter, customer, group_key, period, reading, before, after"
    ):
        where = f"the reading of event {event_id} on {meter}"
        checks.read(where, lambda key=key: group(key))
        for value in (before, after) if unique.get((customer, meter, key, period)) else (reading, before, after):
            checks.read(where, lambda value=value: amount(value))
        if event_id not in events:
            checks.problems.append(f"{where}: no such event is stored")


def _charges(checks: Checks) -> None:
    """Every charge row decodes, its period a period label (rerate and invoices read it as one)."""
    for event_id, key, period, before, after, value, price in checks.rows(
        "charges", "event_id, group_key, period, before, after, amount, unit_price"
    ):
        where = f"a charge of event {event_id}"
        checks.read(where, lambda key=key: group(key))
        checks.read(f"the period of {where}", lambda period=period: parse_period(str(period)))
        for raw in (before, after, value, *(() if price is None else (price,))):
            checks.read(where, lambda raw=raw: amount(raw))


def _documents(checks: Checks) -> None:
    """Every document is the invoice or credit note its columns say."""
    models = checks.read("the kinds of document", document_models) or {}
    for number, kind, customer, period, body in checks.rows("documents", "number, kind, customer, period, body"):
        where = f"document {number}"
        model = models.get(kind)
        if model is None:  # a kind verify has no model of: its text must still be a JSON object of that kind
            text = checks.read(where, lambda body=body: json.loads(str(body)))
            if text is not None and (not isinstance(text, dict) or text.get("kind") != kind):
                checks.problems.append(f"{where} is filed as kind {_shown(kind)}, its text is not a document of it")
            continue
        document = checks.read(where, lambda body=body, model=model: model.model_validate_json(str(body)))
        if document is None:
            continue
        said = (document.number, document.customer) + ((document.period,) if kind == "invoice" else ())
        filed = (number, customer) + ((period,) if kind == "invoice" else ())
        if said != filed:
            checks.problems.append(f"{where}: its columns (number, customer, period) disagree with its text")


def _closed_periods(checks: Checks, transactions: dict[str, Any]) -> None:
    """Every closed period is marked by the ``close`` transaction of that customer and period."""
    for customer, period, transaction_id in checks.rows("closed_periods", "customer, period, transaction_id"):
        transaction = transactions.get(transaction_id)
        if transaction is None:
            if transactions:
                checks.problems.append(f"period {period} of {customer} is closed by {transaction_id}, not stored")
            continue
        meta = transaction.metadata
        if transaction.kind != TransactionKind.CLOSE or (meta.get("customer"), meta.get("period")) != (
            customer,
            period,
        ):
            checks.problems.append(f"period {period} of {customer} is marked closed by {transaction_id}, not its close")


def _source(
    checks: Checks,
    transactions: dict[str, Any],
    where: str,
    verb: str,
    transaction_id: str,
    parse: Callable[[Any], Any],
) -> tuple[Any, Any] | None:
    """The transaction a row says it comes from, and what that transaction says (None where it cannot be read:
    a transaction without its terms); None, with a problem when transactions were read, when it is not stored."""
    transaction = transactions.get(transaction_id)
    if transaction is None:
        if transactions:
            checks.problems.append(f"{where} is {verb} by {_shown(transaction_id)}, not stored")
        return None
    try:
        return transaction, parse(transaction)
    except Exception:  # noqa: BLE001 - whatever a damaged transaction raises, the row disagrees with it
        return transaction, None


def _payments(checks: Checks, transactions: dict[str, Any]) -> None:
    """Every payment row is what its marker transaction ``payment:ID`` says (the payment registry reads the row)."""
    from rating.storage.base import payment_of

    columns = "payment_id, purpose, customer, asset, amount, transaction_id"
    for payment_id, purpose, customer, asset, raw, transaction_id in checks.rows("payments", columns):
        where = f"payment {_shown(payment_id)}"
        value = checks.read(f"the amount of {where}", lambda raw=raw: amount(raw))
        found = _source(checks, transactions, where, "recorded", transaction_id, payment_of)
        if found is None:
            continue
        said = found[1]
        row = (payment_marker_id(payment_id), purpose, customer, asset)
        if (
            said is None
            or row != (said.transaction_id, said.purpose, said.customer, said.asset)
            or (value is not None and value != said.amount)
        ):
            checks.problems.append(f"{where} does not agree with its marker transaction {_shown(transaction_id)}")


def _grants(checks: Checks, transactions: dict[str, Any]) -> None:
    """Every grant row is what its transaction ``grant:CUSTOMER:GRANT`` says, forfeited as often as the
    ``forfeit`` transactions say (wallets read the row); every grant transaction has its row."""
    from rating.core.funding import forfeited_grant, grant_of

    columns = "customer, grant_id, asset, amount, kind, priority, starts, expires, forfeits, transaction_id"
    forfeits: dict[tuple[str, str], int] = {}
    for transaction in transactions.values():
        if transaction.kind == TransactionKind.FORFEIT:
            key = forfeited_grant(transaction)
            forfeits[key] = forfeits.get(key, 0) + 1
    seen = set()
    for customer, grant_id, asset, raw, kind, priority, starts, expires, count, transaction_id in checks.rows(
        "grants", columns
    ):
        where = f"grant {_shown(grant_id)} of {_shown(customer)}"
        seen.add(transaction_id)
        value = checks.read(f"the amount of {where}", lambda raw=raw: amount(raw))
        found = _source(checks, transactions, where, "issued", transaction_id, grant_of)
        if found is None:
            continue
        transaction, said = found
        times = checks.read(f"the times of {where}", lambda s=starts, e=expires: (_moment(s), _moment(e)))
        if (
            said is None
            or (transaction_id, customer, grant_id, asset, kind) != (transaction.id, *_terms(said))
            or priority != said.priority
            or (value is not None and value != said.amount)
            or (times is not None and times != (transaction.timestamp, said.expires))
        ):
            checks.problems.append(f"{where} does not agree with its transaction {_shown(transaction_id)}")
        elif count != forfeits.get((customer, grant_id), 0):
            checks.problems.append(
                f"{where} counts {count} forfeitures, the ledger holds {forfeits.get((customer, grant_id), 0)}"
            )
    if checks.has_tables():
        for transaction in transactions.values():
            if transaction.kind == TransactionKind.GRANT and transaction.id not in seen:
                checks.problems.append(f"grant transaction {_shown(transaction.id)} has no grant row")


def _terms(grant: Any) -> tuple[str, str, str, str]:
    return grant.customer, grant.id, grant.asset, grant.kind


def _moment(raw: object) -> Any:
    """A stored time as an aware datetime (text on SQLite, a datetime on PostgreSQL), None for none."""
    if raw is None or isinstance(raw, dt.datetime):
        return raw
    return dt.datetime.fromisoformat(str(raw))


def _reservations(checks: Checks, transactions: dict[str, Any]) -> None:
    """Every reservation row is what its transaction ``reserve:ID`` says, and in the state its release (when
    there is one) leaves it (metered requests and wallets read the row); every hold has its row."""
    from rating.core.funding import release_state, reservation_of

    columns = "id, customer, asset, amount, expires_at, draw, state, transaction_id, released_by"
    seen = set()
    for id, customer, asset, raw, expires_at, draw, state, transaction_id, released_by in checks.rows(
        "reservations", columns
    ):
        where = f"reservation {_shown(id)}"
        seen.add(transaction_id)
        value = checks.read(f"the amount of {where}", lambda raw=raw: amount(raw))
        expiry = checks.read(f"the expiry of {where}", lambda raw=expires_at: _moment(raw))
        taken = checks.read(
            f"the draw of {where}", lambda draw=draw: tuple((a, Decimal(str(t))) for a, t in json.loads(str(draw)))
        )
        found = _source(checks, transactions, where, "held", transaction_id, reservation_of)
        if found is None:
            continue
        transaction, said = found
        if (
            said is None
            or (transaction_id, id, customer, asset) != (transaction.id, said.id, said.customer, said.asset)
            or (value is not None and value != said.amount)
            or (expiry is not None and expiry != said.expires_at)
            or (taken is not None and taken != said.draw)
        ):
            checks.problems.append(f"{where} does not agree with its transaction {_shown(transaction_id)}")
            continue
        release = transactions.get(release_id(id))
        expected = ("held", None) if release is None else (release_state(release)[1], release.id)
        if (state, released_by) != expected:
            checks.problems.append(
                f"{where} is {_shown(state)}, its ledger says {expected[0]}"
                + (f" (by {_shown(expected[1])})" if expected[1] else "")
            )
    if checks.has_tables():
        for transaction in transactions.values():
            if transaction.kind == TransactionKind.RESERVE and transaction.id not in seen:
                checks.problems.append(f"reservation transaction {_shown(transaction.id)} has no reservation row")


def _customers(checks: Checks) -> None:
    """Every customer version (rating.customers) holds a JSON object and its times, numbered 1, 2, ... per
    customer: engines read every latest one whenever a customer changes."""
    numbers: dict[str, list[int]] = {}
    columns = "customer, sequence, effective, spec, recorded_at"
    for customer, sequence, effective, spec, recorded_at in checks.rows("customer_versions", columns):
        where = f"version {sequence} of customer {_shown(customer)}"
        text = checks.read(where, lambda spec=spec: json.loads(str(spec)))
        if text is not None and not isinstance(text, dict):
            checks.problems.append(f"{where} holds {_shown(spec)}, not a JSON object")
        for raw in (effective, recorded_at):
            moment = checks.read(where, lambda raw=raw: _moment(raw))
            if moment is not None and moment.tzinfo is None:
                checks.problems.append(f"{where} has a time without its zone: {_shown(raw)}")
        numbers.setdefault(str(customer), []).append(int(sequence))
    for customer, seen in sorted(numbers.items()):
        if sorted(seen) != list(range(1, len(seen) + 1)):
            checks.problems.append(f"the versions of customer {_shown(customer)} are not numbered 1 to {len(seen)}")


#: A SHA-256 as the service stores it (API keys, their owners of idempotency keys, request fingerprints).
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: An idempotency key (``rating.server.idempotency``, a layer above): visible ASCII, 1 to 255 characters.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: The scopes of an API key (``rating.apikeys.SCOPES``, a layer above; a test keeps them equal).
SCOPES = frozenset({"read", "write", "admin"})
#: The states of a delivery log line (:mod:`rating.webhooks`).
DELIVERY_STATES = frozenset({"claimed", "delivered", "failed", "gave_up", "replayed"})


def _service(checks: Checks) -> None:
    """The tables of the service: API keys stored hashed with known scopes, idempotent requests as the server
    keeps them, outbox messages of known types, and delivery lines that name a stored message and an endpoint."""
    from rating.outbox import EVENT_TYPES
    from rating.refusals import VerifyRefusal

    problems = checks.problems
    for name, sha256, scopes in checks.rows("api_keys", "name, sha256, scopes"):
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):  # never shown: it may be a key in clear
            problems.append(f"{VerifyRefusal.API_KEY_NOT_HASHED}: API key {_shown(name)} is not stored as its SHA-256")
        if not str(scopes) or not set(str(scopes).split(",")) <= SCOPES:
            problems.append(f"{VerifyRefusal.API_KEY_MALFORMED}: API key {_shown(name)} has scopes {_shown(scopes)}")
    columns = "owner, idempotency_key, fingerprint, started_at, status, media_type, body"
    for owner, key, fingerprint, started, status, media_type, body in checks.rows("idempotent_requests", columns):
        where = f"{VerifyRefusal.IDEMPOTENCY_MALFORMED}: idempotency key {_shown(key)}"
        if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
            problems.append(f"{where} is not 1 to 255 visible ASCII characters")
        if not isinstance(owner, str) or (owner and not _SHA256.fullmatch(owner)):
            problems.append(f"{where} has an owner that is not an API key's SHA-256: {_shown(owner)}")
        if not isinstance(fingerprint, str) or not _SHA256.fullmatch(fingerprint):
            problems.append(f"{where} has a fingerprint that is not a SHA-256: {_shown(fingerprint)}")
        try:
            moment(started)
        except (TypeError, ValueError) as error:
            problems.append(f"{where} has an unreadable start: {_said(error)}")
        answered = (status, media_type, body)
        if any(part is not None for part in answered):
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                problems.append(f"{where} is answered with status {_shown(status)}, not an HTTP status")
            if body is None:
                problems.append(f"{where} is answered without its body")
    messages: set[str] = set()
    for id, type, payload in checks.rows("outbox", "id, type, payload"):
        messages.add(str(id))
        where = f"{VerifyRefusal.OUTBOX_MALFORMED}: outbox message {_shown(id)}"
        if type not in EVENT_TYPES:
            problems.append(f"{where} has the unknown type {_shown(type)}")
        try:
            body = json.loads(str(payload))
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("type") != type or not isinstance(body.get("data"), dict):
            problems.append(f"{where}: its payload is not the JSON body of a {_shown(type)} message")
    endpoints = {str(id) for (id,) in checks.rows("webhook_endpoints", "id")}
    unreferenced: dict[tuple[str, str], int] = {}
    for message, endpoint, state in checks.rows("deliveries", "message, endpoint, state"):
        if state not in DELIVERY_STATES:
            problems.append(
                f"{VerifyRefusal.OUTBOX_MALFORMED}: a delivery of {_shown(message)} to {_shown(endpoint)} is in"
                f" the unknown state {_shown(state)}"
            )
        if str(message) not in messages or str(endpoint) not in endpoints:
            pair = (str(message), str(endpoint))
            unreferenced[pair] = unreferenced.get(pair, 0) + 1
    for (message, endpoint), lines in sorted(unreferenced.items()):
        missing = [what for what, known, name in (("message", messages, message), ("endpoint", endpoints, endpoint))
                   if name not in known]  # fmt: skip
        problems.append(
            f"{VerifyRefusal.DELIVERY_UNREFERENCED}: {lines} delivery line{'s' if lines > 1 else ''} of"
            f" {_shown(message)} to {_shown(endpoint)} name{'' if lines > 1 else 's'} no stored"
            f" {' and no '.join(missing)}"
        )


def _readers(checks: Checks) -> None:
    """The storage's own readers over everything, as the commands call them."""
    storage = checks.storage
    periods = checks.read("the charges", lambda: {stored.charge.period for stored in storage.charges()})
    checks.read("the rated events", lambda: deque(storage.activity(EARLIEST, LATEST), maxlen=0))
    checks.read("the grants", storage.grants)
    checks.read("the held reservations", storage.held_reservations)
    checks.read("the customers", storage.latest_customers)
    balances = checks.read("the balances", storage.balances)
    if balances:
        accounts = sorted({account for account, _ in balances})
        checks.read("the totals of the accounts", lambda: storage.account_totals(accounts, LATEST))
    for period in sorted(periods or ()):
        checks.read(f"the charges of period {period}", lambda period=period: storage.period_totals(period))


# -- the aggregate: the ledger is the sum of the per-event records ------------------------------------------------
#
# Issue 22 keeps every event's records (its meter readings and charges) whatever the ledger posts per transaction;
# these checks prove that the two say the same, in memory bounded by customers, accounts and state keys (never by
# events): SQL rows are streamed (SQLite) or summed by the database (PostgreSQL's exact NUMERIC), memory reads its
# own structures. A row that cannot be decoded is skipped here: the checks above name it.

#: Transaction kinds whose revenue postings charge records back: a rating (``rating:EVENT``) and its corrections
#: (``rerate:EVENT:N``: a re-rating, an arrival re-pricing, a close's settlement). Fees, minimums, commitments,
#: credits, wallet settlements and forfeits post revenue no event's record holds, and are left out.
RECORDED_KINDS = (TransactionKind.RATING, TransactionKind.RERATE)

Key = tuple[Any, ...]


def aggregate(storage: Storage) -> list[str]:
    """Where the ledger is not the sum of the per-event records; one line each, starting with its code
    (:class:`~rating.refusals.VerifyRefusal`).

    - ``revenue_not_recorded``: per customer, revenue account ``revenue:PLAN:METER`` and asset, what the customer's
      rating and correction transactions credit the account equals the sum of the customer's charge records of
      that plan and meter in that asset. Payer postings (receivable, wallet, grants, a prepaid draw, a
      reservation) and shares, costs and provider payables are not charges: they are not compared.
    - ``state_not_recorded``: per (customer, meter, group, period) with meter readings, the stored period state is
      the largest ``after`` of its readings (every aggregate only grows: sums and counts of quantities that cannot
      be negative, maxima, unique counts, running totals), and a unique-count state counts its stored members.
      A period a correction re-priced is left out (its state is replaced by the re-pricing, which stores charge
      records and no readings), and so are the term-long prepaid draw-downs of a customer with corrections (and
      every state of a customer with a correction that names no period).
      Memory keeps no readings, only the state they advanced: there is nothing to compare.
    """
    from rating.storage.sql import SqlStorage

    problems = []
    with localcontext(MONEY_CONTEXT):
        posted, charged = _sql_revenue(storage) if isinstance(storage, SqlStorage) else _memory_revenue(storage)
        problems += _revenue(posted, charged)
        if isinstance(storage, SqlStorage):  # per event, where the customer's sums agree (charges swapped, say)
            named = {key for key in set(posted) | set(charged) if posted.get(key, ZERO) != charged.get(key, ZERO)}
            problems += _event_revenue(storage, named)
            problems += _states(storage)
    return problems


def _revenue_of(account: str) -> bool:
    """Whether ``account`` is a charge's revenue account ``revenue:PLAN:METER`` (not ``revenue:shares``)."""
    # Ratings and their corrections credit only these (a contract's own revenue, revenue:contract:NAME, is posted
    # by closes, which are not compared): a plan named "contract" is a plan like any other here.
    parts = account.split(":")
    return len(parts) == 3 and parts[0] == "revenue"


def _add(totals: dict[Key, Decimal], key: Key, raw: object) -> None:
    """Add the stored amount ``raw`` to ``totals[key]``; an amount that cannot be read is named elsewhere."""
    try:
        value = amount(raw)
    except Exception:  # noqa: BLE001, S112 - a damaged cell: the row checks name it
        return
    totals[key] = totals.get(key, Decimal(0)) + value


def _memory_revenue(storage: Storage) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
    """(credited per (customer, account, asset) by ratings and corrections, charged per the same key by records)."""
    from rating.accounts import revenue_account

    posted: dict[Key, Decimal] = {}
    for kind in RECORDED_KINDS:
        for transaction in storage.transactions_of(kind):
            for p in transaction.postings:
                if _revenue_of(p.account):
                    _add(posted, (transaction.customer, p.account, p.asset), -p.amount)
    charged: dict[Key, Decimal] = {}
    for stored in storage.charges():
        c = stored.charge
        _add(charged, (stored.customer, revenue_account(c.plan, c.meter), c.asset), c.amount)
    return posted, charged


def _rows(storage: Any, query: str) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query``, streamed; none when the query fails (a damaged table is named by the row checks)."""
    try:
        yield from storage._run(query)
    except Exception:  # noqa: BLE001 - named by the row checks above
        return


def _sql_revenue(storage: Any) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
    """As :func:`_memory_revenue`, from the tables: summed by the database where it adds exactly."""
    from rating.accounts import revenue_account

    kinds = ", ".join(f"'{kind}'" for kind in RECORDED_KINDS)
    ledger = (
        "SELECT t.customer, p.account, p.asset, {amount} FROM postings p JOIN transactions t ON t.id = p.transaction_id"
        f" WHERE t.kind IN ({kinds}) AND substr(p.account, 1, 8) = 'revenue:'"
    )
    records = "SELECT customer, plan, meter, asset, {amount} FROM charges"
    if storage.sums:
        ledger = ledger.format(amount="SUM(p.amount)") + " GROUP BY t.customer, p.account, p.asset"
        records = records.format(amount="SUM(amount)") + " GROUP BY customer, plan, meter, asset"
    else:
        ledger, records = ledger.format(amount="p.amount"), records.format(amount="amount")
    posted: dict[Key, Decimal] = {}
    for customer, account, asset, raw in _rows(storage, ledger):
        if _revenue_of(str(account)):
            _add(posted, (customer, account, asset), raw)
    posted = {key: -value for key, value in posted.items()}
    charged: dict[Key, Decimal] = {}
    for customer, plan, meter, asset, raw in _rows(storage, records):
        _add(charged, (customer, revenue_account(str(plan), str(meter)), asset), raw)
    return posted, charged


def _event_revenue(storage: Any, named: set[Key]) -> list[str]:
    """``revenue_not_recorded`` per event: what its rating and its corrections credit each revenue account equals
    its own charge records (charges swapped between two events of a customer keep the customer's sums). Rows come
    ordered by event, so memory holds one event at a time. (customer, account, asset) already ``named`` by the
    customer's sums are not named again per event; nor is an event no transaction names by its ``event_id``
    (a ledger written by hand, as the storage contract's: the customer's sums still cover it)."""
    from rating.refusals import VerifyRefusal

    sqlite = storage.dialect == "sqlite"
    event = "json_extract(t.metadata, '$.event_id')" if sqlite else "(t.metadata::jsonb ->> 'event_id')"
    kinds = ", ".join(f"'{kind}'" for kind in RECORDED_KINDS)
    # A credit is a negative posting and a charge a positive amount: their difference is minus the sum of both.
    query = (
        f"SELECT {event}, t.customer, p.account, p.asset, p.amount, 1 FROM postings p"
        f" JOIN transactions t ON t.id = p.transaction_id"
        f" WHERE t.kind IN ({kinds}) AND substr(p.account, 1, 8) = 'revenue:'"
        " UNION ALL SELECT event_id, customer, 'revenue:' || plan || ':' || meter, asset, amount, 0 FROM charges"
        " ORDER BY 1"
    )
    problems: list[str] = []
    current: object = None
    customer: object = None
    sums: dict[Key, Decimal] = {}  # per (account, asset): the postings and charges, whose sum is minus the excess
    posted = False  # whether a transaction of the event names it

    def settle() -> None:
        for (account, asset), total in sorted(sums.items()) if posted and current is not None else ():
            off = -total  # what the rating and corrections credit beyond the charge records
            if off and (customer, account, asset) not in named:
                problems.append(
                    f"{VerifyRefusal.REVENUE_NOT_RECORDED}: customer {customer!r}: event {current!r}: its rating and"
                    f" corrections credit {account} {off:+} {asset} more than its charge records"
                )
        sums.clear()

    for event_id, who, account, asset, raw, ledger in _rows(storage, query):
        if event_id != current:
            settle()
            current, customer, posted = event_id, who, False
        posted = posted or bool(ledger)
        if _revenue_of(str(account)):
            _add(sums, (str(account), str(asset)), raw)
    settle()
    return problems


def _revenue(posted: dict[Key, Decimal], charged: dict[Key, Decimal]) -> list[str]:
    """``revenue_not_recorded`` for each (customer, account, asset) whose credit is not its records' sum."""
    from rating.refusals import VerifyRefusal

    problems = []
    for key in sorted(set(posted) | set(charged), key=str):
        credit, recorded = posted.get(key, Decimal(0)), charged.get(key, Decimal(0))
        if credit != recorded:
            customer, account, asset = key
            problems.append(
                f"{VerifyRefusal.REVENUE_NOT_RECORDED}: customer {customer!r}: its ratings and corrections credit"
                f" {account} {credit} {asset}, its charge records of it sum to {recorded}"
            )
    return problems


def _states(storage: Any) -> list[str]:
    """``state_not_recorded`` for each period state that its meter readings (or unique members) do not give."""
    from rating.refusals import VerifyRefusal
    from rating.statekeys import TERM

    corrected = _corrected_periods(storage)
    customers = {customer for customer, _ in corrected}
    readings = "SELECT customer, meter, group_key, period, {after}, {before} FROM usage"
    if storage.sums:
        readings = readings.format(after="MAX(after)", before="MIN(before)")
        readings += " GROUP BY customer, meter, group_key, period"
    else:
        readings = readings.format(after="after", before="before")
    latest: dict[Key, Decimal] = {}
    first: dict[Key, Decimal] = {}  # the lowest ``before`` of each key's readings: its first starts from nothing
    legacy: set[tuple[str, str]] = set()  # periods with readings of positional running totals (old schemas)
    for customer, meter, key, period, raw, raw_before in _rows(storage, readings):
        if "[" in meter:
            legacy.add((customer, period))
        if {(customer, period), (customer, None)} & corrected or (period == TERM and customer in customers):
            continue  # re-priced: its state is the re-pricing's, which stores no readings
        try:
            after, before = amount(raw), amount(raw_before)
        except Exception:  # noqa: BLE001, S112 - named by the row checks
            continue
        where = (customer, meter, key, period)
        known = latest.get(where)
        if known is None or after > known:
            latest[where] = after
        lowest = first.get(where)
        if lowest is None or before < lowest:
            first[where] = before
    members = {
        (customer, meter, key, period): int(count)
        for customer, meter, key, period, count in _rows(
            storage,
            "SELECT customer, meter, group_key, period, COUNT(*) FROM period_members"
            " GROUP BY customer, meter, group_key, period",
        )
    }
    problems = []
    stored = set()
    counted: set[Key] = set()  # unique-count states whose members are compared with their readings
    for customer, meter, key, period, raw, unique in _rows(
        storage, "SELECT customer, meter, group_key, period, quantity, is_unique FROM period_state"
    ):
        where = (customer, meter, key, period)
        stored.add(where)
        try:
            quantity = amount(raw)
        except Exception:  # noqa: BLE001, S112 - named by the row checks
            continue
        said = f"{VerifyRefusal.STATE_NOT_RECORDED}: customer {customer!r}: the state of {meter} {key} in {period}"
        replaced = {(customer, period), (customer, None)} & corrected or (period == TERM and customer in customers)
        adopted = meter.startswith("total:") and (customer, period) in legacy  # renamed by the migration, unread
        if where not in latest and quantity and not replaced and not adopted and "[" not in meter:
            problems.append(f"{said} is {quantity}, and no reading moved it")  # planted, or its readings deleted
        elif where in latest and latest[where] != quantity:
            problems.append(f"{said} is {quantity}, its latest reading leaves {latest[where]}")
        elif first.get(where) and not adopted and "[" not in meter:
            problems.append(f"{said}: its first reading starts from {first[where]}, not from nothing")
        elif unique in (1, True) and members.get(where, 0) != quantity:
            problems.append(f"{said} is {quantity}, it has {members.get(where, 0)} unique members")
        elif unique in (1, True) and not replaced:
            counted.add(where)
    problems += _members(storage, counted)
    for customer, meter, key, period in sorted(set(latest) - stored, key=str):
        if "[" not in meter:  # positional running totals of old schemas: set aside by the migration
            problems.append(
                f"{VerifyRefusal.STATE_NOT_RECORDED}: customer {customer!r}: {meter} {key} in {period} has readings"
                " and no stored state"
            )
    return problems


def _members(storage: Any, keys: set[Key]) -> list[str]:
    """``state_not_recorded`` for each unique-count state of ``keys`` whose members are not the members its
    readings counted (a unique meter's reading is the member)."""
    from rating.refusals import VerifyRefusal

    read = _values_of(storage, "SELECT DISTINCT customer, meter, group_key, period, reading FROM usage", keys)
    kept = _values_of(storage, "SELECT customer, meter, group_key, period, member FROM period_members", keys)
    return [
        f"{VerifyRefusal.STATE_NOT_RECORDED}: customer {key[0]!r}: the members of {key[1]} {key[2]} in {key[3]}"
        f" are not those its readings counted ({len(kept[key] - read[key])} unread)"
        for key in sorted(keys, key=str)
        if kept[key] != read[key]
    ]


def _values_of(storage: Any, query: str, keys: set[Key]) -> dict[Key, set[str]]:
    """The values (last column) ``query`` gives each state key of ``keys`` (its first four columns)."""
    values: dict[Key, set[str]] = {key: set() for key in keys}
    for customer, meter, key, period, value in _rows(storage, query):
        found = values.get((customer, meter, key, period))
        if found is not None:
            found.add(str(value))
    return values


def _corrected_periods(storage: Any) -> set[tuple[str, str | None]]:
    """The (customer, period) pairs that corrections posted in (the period they count in, adjust or settle);
    (customer, None) for a correction that names no period."""
    found: set[tuple[str, str | None]] = set()
    for customer, metadata in _rows(storage, "SELECT customer, metadata FROM transactions WHERE kind = 'rerate'"):
        try:
            meta = metadata if isinstance(metadata, dict) else json.loads(str(metadata))
        except ValueError:
            continue
        named = [meta[name] for name in ("period", "adjusts", "settles") if isinstance(meta.get(name), str)]
        # A correction that names no period (not one rerate posts) may have replaced any state of its customer.
        found.update((customer, period) for period in named or [None])
    return found
