"""In-process storage: dictionaries, for tests, quotes and benchmarks. Lost on exit."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal

from rating.accounts import is_cost
from rating.events import UsageEvent
from rating.ids import TransactionKind, rating_id
from rating.ledger import Transaction
from rating.money import ZERO, exact
from rating.records import (
    ApiKeyRecord,
    ChargeRecord,
    CorrectionRecord,
    CustomerVersion,
    DeliveryRecord,
    EventRecord,
    IdempotentRequest,
    OutboxMessage,
    PeriodState,
    WebhookEndpoint,
)
from rating.statekeys import StateKey
from rating.storage.base import Activity, Scope, Storage, StoredCharge

#: What a meter read: (meter, quantity or unique value).
Reading = tuple[str, Decimal | str]
_Record = tuple[str, str, tuple[ChargeRecord, ...], UsageEvent | None, tuple[Reading, ...]]


class MemoryStorage(Storage):
    """Keeps everything in dictionaries; a lock makes each batch atomic among threads.

    Writes only start after every check has passed, so a refused batch leaves
    nothing behind.
    """

    rolls_back = False  # what a write scope stored stays when it fails

    keeps_explanations = False  # records carry what renders the text on read: memory is short, reads are few

    def __init__(self, url: str = "memory:") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._transactions: dict[str, Transaction] = {}
        self._events: dict[str, UsageEvent] = {}
        self._states: dict[StateKey, PeriodState] = {}
        self._balances: dict[tuple[str, str], Decimal] = {}
        #: What was charged, in the order it was stored: per rated event (event id, customer, charges, the event,
        #: what its meters read), per correction (event id, customer, charges, None, ()). One tuple per event,
        #: the rest derived when read: memory is what this storage is short of.
        self._records: list[_Record] = []
        self._by_kind: dict[tuple[str, str | None], list[str]] = {}
        self._closed: set[tuple[str, str]] = set()
        #: Charge amounts that corrections added, by event: kept apart so uncorrected events cost nothing more.
        self._corrected: dict[str, list[tuple[str, Decimal]]] = {}
        self._documents: dict[str, tuple[str, int, str, str, str, str]] = {}
        self._customers: list[CustomerVersion] = []
        self._api_keys: dict[str, ApiKeyRecord] = {}
        self._idempotent: dict[tuple[str, str], IdempotentRequest] = {}
        self._outbox: dict[str, OutboxMessage] = {}
        self._deliveries: list[DeliveryRecord] = []
        self._endpoints: list[WebhookEndpoint] = []
        #: How many writes were stored: what :meth:`change_marker` tells apart.
        self._writes = 0

    def _atomic(self, customers: Scope = None) -> AbstractContextManager[None]:
        return self._lock  # type: ignore[return-value] # one writer at a time, whatever the scope

    def change_marker(self) -> object | None:
        return self._writes

    def rated_events(self, ids: Iterable[str]) -> dict[str, UsageEvent]:
        events = self._events
        return {i: events[i] for i in ids if i in events}

    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        result = {}
        with self._lock:  # a writer in another thread changes states in place: copy none half-changed
            for key in keys:
                state = self._states.get(key)
                if state is not None:
                    members = None if state.members is None else set(state.members)
                    result[key] = PeriodState(state.quantity, members)
        return result

    def transaction(self, id: str) -> Transaction | None:
        return self._transactions.get(id)

    def transactions(self) -> Iterator[Transaction]:
        return iter(list(self._transactions.values()))

    def transactions_of(self, kind: str, customer: str | None = None) -> list[Transaction]:
        return [self._transactions[id] for id in self._by_kind.get((kind, customer), ())]

    def balances(self, accounts: Iterable[str] | None = None) -> dict[tuple[str, str], Decimal]:
        if accounts is None:
            return dict(self._balances)
        wanted = set(accounts)
        return {k: v for k, v in self._balances.items() if k[0] in wanted}

    def closed_periods(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return self._closed.intersection(keys)

    def charges(self, customer: str | None = None) -> Iterator[StoredCharge]:
        return iter(
            [
                StoredCharge(event_id, who, charge)
                for event_id, who, charges, _, _ in self._records
                if customer is None or who == customer
                for charge in charges
            ]
        )

    def activity(self, since: dt.datetime, until: dt.datetime, customer: str | None = None) -> Iterator[Activity]:
        chosen = [
            (event, readings, charges)
            for _, who, charges, event, readings in self._records
            if event is not None and since <= event.timestamp < until and (customer is None or who == customer)
        ]
        chosen.sort(key=lambda record: (record[0].timestamp, record[0].id))  # time order, ties by id
        return iter([self._activity_of(*record) for record in chosen])

    def _activity_of(
        self, event: UsageEvent, readings: tuple[Reading, ...], charges: tuple[ChargeRecord, ...]
    ) -> Activity:
        amounts = tuple((c.asset, c.amount) for c in charges) + tuple(self._corrected.get(event.id, ()))
        posted = self._transactions[rating_id(event.id)].postings
        return Activity(event, readings, amounts, tuple((p.asset, p.amount) for p in posted if is_cost(p.account)))

    @exact
    def account_totals(self, accounts: Iterable[str], until: dt.datetime) -> dict[tuple[str, str], Decimal]:
        wanted = set(accounts)
        totals: dict[tuple[str, str], Decimal] = {}
        for transaction in self._transactions.values():
            if transaction.timestamp < until:
                for p in transaction.postings:
                    if p.account in wanted:
                        totals[(p.account, p.asset)] = totals.get((p.account, p.asset), ZERO) + p.amount
        return totals

    @exact
    def period_totals(self, period: str) -> dict[tuple[str, str], Decimal]:
        totals: dict[tuple[str, str], Decimal] = {}
        for _, customer, charges, _, _ in self._records:
            for charge in charges:
                if charge.period == period:
                    key = (customer, charge.asset)
                    totals[key] = totals.get(key, ZERO) + charge.amount
        return totals

    def _all_transaction_ids(self) -> list[str]:
        return list(self._transactions)

    def _all_postings(self) -> Iterator[tuple[str, str, str, Decimal]]:
        for transaction in self._transactions.values():
            for p in transaction.postings:
                yield transaction.id, p.account, p.asset, p.amount

    def _fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        stored = self._transactions
        return {i: stored[i].fingerprint() for i in ids if i in stored}

    def _write_transactions(self, transactions: Sequence[Transaction]) -> None:
        self._writes += 1  # every write goes through here: ratings and corrections too
        balances = self._balances
        stored, by_kind = self._transactions, self._by_kind
        for transaction in transactions:
            id = transaction.id
            stored[id] = transaction
            kind, customer = transaction.kind, transaction.customer
            by_kind.setdefault((kind, None), []).append(id)
            if customer is not None:
                by_kind.setdefault((kind, customer), []).append(id)
                if kind == TransactionKind.CLOSE:
                    self._closed.add((customer, transaction.metadata["period"]))
            for posting in transaction.postings:
                key = (posting.account, posting.asset)
                balances[key] = balances.get(key, ZERO) + posting.amount

    def _write_ratings(self, ratings: Sequence[EventRecord]) -> None:
        self._write_transactions([r.transaction for r in ratings])
        states, records, events = self._states, self._records, self._events
        for event, _, usage, charges, _ in ratings:  # unpacked at once: once per event on the hot path
            customer = event.customer
            events[event.id] = event
            for meter, group, period, reading, _, after in usage:
                key = (customer, meter, group, period)  # a StateKey's shape, equal and hashing alike
                state = states.get(key)  # type: ignore[call-overload]
                unique = isinstance(reading, str)
                if state is None:
                    state = states[key] = PeriodState(ZERO, set() if unique else None)  # type: ignore[index]
                state.quantity = after
                if unique:
                    assert state.members is not None
                    state.members.add(reading)
            readings = tuple([(u[0], u[3]) for u in usage])
            records.append((event.id, customer, charges, event, readings))

    def _write_corrections(
        self, corrections: Sequence[CorrectionRecord], states: Mapping[StateKey, PeriodState]
    ) -> None:
        self._write_transactions([c.transaction for c in corrections])
        for correction in corrections:
            self._records.append((correction.event_id, correction.customer, correction.charges, None, ()))
            self._corrected.setdefault(correction.event_id, []).extend((c.asset, c.amount) for c in correction.charges)
        for key, state in states.items():
            self._states[key] = PeriodState(state.quantity, None if state.members is None else set(state.members))

    def documents(self, number: str | None = None, customer: str | None = None) -> list[str]:
        return [
            text
            for key, (_, _, _, who, _, text) in self._documents.items()
            if (number is None or key == number) and (customer is None or who == customer)
        ]

    def _document_of(self, kind: str, customer: str, period: str) -> str | None:
        found = [d[5] for d in self._documents.values() if d[2:5] == (kind, customer, period)]
        return found[0] if found else None

    def _last_in_series(self, series: str) -> int:
        return max((d[1] for d in self._documents.values() if d[0] == series), default=0)

    def _write_document(
        self, number: str, series: str, sequence: int, kind: str, customer: str, period: str, text: str
    ) -> None:
        self._documents[number] = (series, sequence, kind, customer, period, text)

    def _customer_rows(self, customer: str | None) -> list[CustomerVersion]:
        rows = [v for v in self._customers if customer is None or v.customer == customer]
        return sorted(rows, key=lambda v: (v.customer, v.sequence))

    def customers_version(self) -> int:
        return len(self._customers)

    def _write_customer_version(self, version: CustomerVersion) -> None:
        self._customers.append(version)

    def _api_key_rows(self) -> list[ApiKeyRecord]:
        return list(self._api_keys.values())

    def _write_api_key(self, key: ApiKeyRecord) -> None:
        self._api_keys[key.name] = key

    def _write_revocation(self, name: str, at: dt.datetime) -> None:
        self._api_keys[name] = self._api_keys[name]._replace(revoked_at=at)

    def _idempotent_row(self, owner: str, key: str) -> IdempotentRequest | None:
        return self._idempotent.get((owner, key))

    def _write_idempotent(self, request: IdempotentRequest) -> None:
        self._idempotent[(request.owner, request.key)] = request

    def _delete_idempotent(self, owner: str, key: str) -> None:
        self._idempotent.pop((owner, key), None)

    def _purge_idempotent(self, before: dt.datetime) -> int:
        old = [at for at, request in self._idempotent.items() if request.started_at < before]
        for at in old:
            del self._idempotent[at]
        return len(old)

    def outbox(self, ids: Iterable[str] | None = None) -> list[OutboxMessage]:
        if ids is None:
            return list(self._outbox.values())
        return [self._outbox[id] for id in dict.fromkeys(ids) if id in self._outbox]

    def _write_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        self._outbox.update((m.id, m) for m in messages)

    def deliveries(self, messages: Iterable[str] | None = None) -> list[DeliveryRecord]:
        wanted = None if messages is None else set(messages)
        return [d for d in self._deliveries if wanted is None or d.message in wanted]

    def _write_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        self._deliveries.extend(records)

    def webhook_endpoint_versions(self) -> list[WebhookEndpoint]:
        return sorted(self._endpoints, key=lambda e: (e.id, e.version))

    def _write_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._endpoints.append(endpoint)
