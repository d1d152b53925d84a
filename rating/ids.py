"""Transaction ids: every id the library posts a transaction under is built and parsed here, and only here.

An id is its kind, ``:``, and the parts that make it unique: ``fee:acme:2026-11:0``
is the first fee of customer ``acme`` in period ``2026-11``. The kind is the
id's first word; storage files each transaction under it
(:attr:`rating.ledger.Transaction.kind`) and reads them back by it
(:meth:`rating.storage.Storage.transactions_of`).

Ids are stored, and idempotency depends on them: a builder returns the same
bytes for the same parts, release after release. Customer, grant, reservation,
payment and creator ids follow :data:`rating.accounts.ID_GRAMMAR` (no ``:``),
and period labels, asset and contract names cannot hold ``:`` either, so an id
splits back into its parts. Two parts may hold ``:``: an event id (free text)
and the one part of a one-part id (a deposit's reference is ``payment:ID`` when
a provider's payment funded it). Each is therefore the rest of its id: a
``rating:`` id's event is all that follows the kind, a ``rerate:`` id's event
all but its last part.

The kinds and their layouts (parts in order):

==============  ==========================================  ==============================
kind            id                                          built by
==============  ==========================================  ==============================
``rating``      ``rating:EVENT``                            the poster (a rated event)
``rerate``      ``rerate:EVENT:N``                          a re-rating (N counts from 1)
``fee``         ``fee:CUSTOMER:PERIOD:N``                   a period close (N-th plan part)
``minimum``     ``minimum:CUSTOMER:PERIOD``                 a period close
``commitment``  ``commitment:CUSTOMER:PERIOD``              a period close
``prepayment``  ``prepayment:CONTRACT``                     a period close
``rounding``    ``rounding:CUSTOMER:PERIOD:ASSET``          a period close
``close``       ``close:CUSTOMER:PERIOD``                   a period close (its marker)
``tax``         ``tax:CUSTOMER:PERIOD``                     an invoice
``settle``      ``settle:PAYMENT``                          an invoice payment
``credit``      ``credit:NUMBER``                           a credit note
``deposit``     ``deposit:REFERENCE``                       a wallet top-up or a refund to it
``refund``      ``refund:PAYMENT``                          a deposit taken back
``chargeback``  ``chargeback:PAYMENT``                      a deposit taken back
``grant``       ``grant:CUSTOMER:GRANT``                    a wallet grant
``forfeit``     ``forfeit:CUSTOMER:GRANT:N``                an expired grant (N from 0)
``reserve``     ``reserve:RESERVATION``                     a two-phase hold
``release``     ``release:RESERVATION``                     its settlement, void or expiry
``payment``     ``payment:PAYMENT``                         the payment registry's marker
``payout``      ``payout:CREATOR:WEEK``                     a creator payout
==============  ==========================================  ==============================

Storage accepts any id: a transaction this module did not build (a test's, an
embedder's) still has a kind, :func:`prefix_of`, but no :class:`TransactionKind`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rating.errors import InvalidId


class TransactionKind(enum.StrEnum):
    """The kinds of transaction the library posts: each value is the first word of the ids of that kind."""

    RATING = "rating"
    RERATE = "rerate"
    FEE = "fee"
    MINIMUM = "minimum"
    COMMITMENT = "commitment"
    PREPAYMENT = "prepayment"
    ROUNDING = "rounding"
    CLOSE = "close"
    TAX = "tax"
    SETTLE = "settle"
    CREDIT = "credit"
    DEPOSIT = "deposit"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    GRANT = "grant"
    FORFEIT = "forfeit"
    RESERVE = "reserve"
    RELEASE = "release"
    PAYMENT = "payment"
    PAYOUT = "payout"


_K = TransactionKind

#: The parts of each kind's ids, in order. ``sequence`` is a counter (a canonical non-negative integer).
LAYOUTS: dict[TransactionKind, tuple[str, ...]] = {
    _K.RATING: ("event",),
    _K.RERATE: ("event", "sequence"),
    _K.FEE: ("customer", "period", "sequence"),
    _K.MINIMUM: ("customer", "period"),
    _K.COMMITMENT: ("customer", "period"),
    _K.PREPAYMENT: ("contract",),
    _K.ROUNDING: ("customer", "period", "asset"),
    _K.CLOSE: ("customer", "period"),
    _K.TAX: ("customer", "period"),
    _K.SETTLE: ("payment",),
    _K.CREDIT: ("number",),
    _K.DEPOSIT: ("reference",),
    _K.REFUND: ("payment",),
    _K.CHARGEBACK: ("payment",),
    _K.GRANT: ("customer", "grant"),
    _K.FORFEIT: ("customer", "grant", "sequence"),
    _K.RESERVE: ("reservation",),
    _K.RELEASE: ("reservation",),
    _K.PAYMENT: ("payment",),
    _K.PAYOUT: ("creator", "week"),
}
#: Kinds whose first part is free text that may hold ``:`` (besides every one-part kind).
_FREE_FIRST = frozenset({_K.RATING, _K.RERATE})
_KINDS = {kind.value: kind for kind in TransactionKind}
#: How a deposit's reference names the provider's payment that funded it: ``payment:ID``.
_PAID = f"{_K.PAYMENT}:"


# -- building ----------------------------------------------------------------------------
# f-strings, not a generic join: these run once per posted transaction, and their output is stored.

#: Id prefix of the transaction that posts a rated event (``rating:``).
RATING_PREFIX = f"{_K.RATING}:"
#: Id prefix of the marker transactions that close a customer's period (``close:``).
CLOSING_PREFIX = f"{_K.CLOSE}:"


def rating_id(event: str) -> str:
    """``rating:EVENT``: the transaction that posts the rated event ``event``."""
    return f"rating:{event}"


def rerate_id(event: str, number: int) -> str:
    """``rerate:EVENT:N``: the ``number``-th correction of event ``event`` (counted from 1)."""
    return f"rerate:{event}:{number}"


def fee_id(customer: str, period: str, number: int) -> str:
    """``fee:CUSTOMER:PERIOD:N``: the fee of the ``number``-th plan part (from 0) of ``customer`` in ``period``."""
    return f"fee:{customer}:{period}:{number}"


def minimum_id(customer: str, period: str) -> str:
    """``minimum:CUSTOMER:PERIOD``: the minimum spend true-up of ``customer`` in ``period``."""
    return f"minimum:{customer}:{period}"


def commitment_id(customer: str, period: str) -> str:
    """``commitment:CUSTOMER:PERIOD``: the commitment true-up of ``customer`` in ``period``."""
    return f"commitment:{customer}:{period}"


def prepayment_id(contract: str) -> str:
    """``prepayment:CONTRACT``: the prepaid commitment of ``contract``, charged once when it begins."""
    return f"prepayment:{contract}"


def rounding_id(customer: str, period: str, asset: str) -> str:
    """``rounding:CUSTOMER:PERIOD:ASSET``: what rounds ``customer``'s ``period`` in ``asset`` to its scale."""
    return f"rounding:{customer}:{period}:{asset}"


def closing_id(customer: str, period: str) -> str:
    """``close:CUSTOMER:PERIOD``: the marker transaction that closes ``period`` for ``customer``."""
    return f"close:{customer}:{period}"


def tax_id(customer: str, period: str) -> str:
    """``tax:CUSTOMER:PERIOD``: the tax of the invoice of ``customer`` for ``period``."""
    return f"tax:{customer}:{period}"


def settle_id(payment: str) -> str:
    """``settle:PAYMENT``: an invoice payment, under the payment's reference."""
    return f"settle:{payment}"


def credit_id(number: str) -> str:
    """``credit:NUMBER``: the credit note ``number``."""
    return f"credit:{number}"


def deposit_id(reference: str) -> str:
    """``deposit:REFERENCE``: a wallet deposit (a top-up, ``deposit:payment:ID`` when a payment funded it;
    a credit note refunded to the wallet, ``deposit:NUMBER``)."""
    return f"deposit:{reference}"


def paid_reference(payment: str) -> str:
    """``payment:PAYMENT``: the reference of a deposit the provider's payment ``payment`` funded
    (its id is ``deposit:payment:PAYMENT``); :func:`paid_by` reads it back."""
    return f"{_PAID}{payment}"


def refund_id(payment: str) -> str:
    """``refund:PAYMENT``: a deposit refunded by the provider's payment ``payment``."""
    return f"refund:{payment}"


def chargeback_id(payment: str) -> str:
    """``chargeback:PAYMENT``: a deposit charged back by the provider's payment ``payment``."""
    return f"chargeback:{payment}"


def take_back_id(kind: str, payment: str) -> str:
    """:func:`refund_id` or :func:`chargeback_id` by ``kind``; :class:`~rating.errors.InvalidId` for another kind."""
    if kind == _K.REFUND:
        return refund_id(payment)
    if kind == _K.CHARGEBACK:
        return chargeback_id(payment)
    raise InvalidId(f"a deposit is taken back by a refund or a chargeback, not {kind!r}")


def grant_id(customer: str, grant: str) -> str:
    """``grant:CUSTOMER:GRANT``: the grant ``grant`` to ``customer``."""
    return f"grant:{customer}:{grant}"


def forfeit_id(customer: str, grant: str, number: int) -> str:
    """``forfeit:CUSTOMER:GRANT:N``: the ``number``-th forfeiture (from 0) of what was left of an expired grant."""
    return f"forfeit:{customer}:{grant}:{number}"


def reserve_id(reservation: str) -> str:
    """``reserve:RESERVATION``: the hold that opens a two-phase reservation."""
    return f"reserve:{reservation}"


def release_id(reservation: str) -> str:
    """``release:RESERVATION``: what settles, voids or expires the reservation."""
    return f"release:{reservation}"


def payment_marker_id(payment: str) -> str:
    """``payment:PAYMENT``: the payment registry's marker of the provider's payment id ``payment``."""
    return f"payment:{payment}"


def payout_id(creator: str, week: str) -> str:
    """``payout:CREATOR:WEEK``: what ``creator`` was paid for ``week``."""
    return f"payout:{creator}:{week}"


# -- parsing -------------------------------------------------------------------------------


def prefix_of(id: str) -> str:
    """The first word of any transaction id: the kind storage files it under, for ids built elsewhere too."""
    return id.partition(":")[0]


def kind_of(id: str) -> TransactionKind | None:
    """The kind of an id this module builds (by its first word only), or None."""
    return _KINDS.get(id.partition(":")[0])


def paid_by(reference: str) -> str | None:
    """The provider's payment a deposit's reference names (``payment:ID`` is ``ID``), or None."""
    return reference[len(_PAID) :] if reference.startswith(_PAID) else None


@dataclass(frozen=True, slots=True)
class TransactionId:
    """A transaction id split into its kind and parts (:func:`parse`); ``str()`` gives the id back.

    The named parts are properties: one the kind has no place for is an :class:`~rating.errors.InvalidId`.
    """

    kind: TransactionKind
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((self.kind.value, *self.parts))

    def part(self, name: str) -> str:
        """The part called ``name`` (a name of :data:`LAYOUTS`); :class:`~rating.errors.InvalidId` if it has none."""
        layout = LAYOUTS[self.kind]
        if name not in layout:
            raise InvalidId(f"a {self.kind} id has no {name}: {self}")
        return self.parts[layout.index(name)]

    def has(self, name: str) -> bool:
        """Whether ids of this kind have a part called ``name``."""
        return name in LAYOUTS[self.kind]

    @property
    def event(self) -> str:
        """The event of a ``rating`` or ``rerate`` id."""
        return self.part("event")

    @property
    def customer(self) -> str:
        """The customer of a period id (``fee``, ``minimum``, ``close`` ...), a ``grant`` or a ``forfeit``."""
        return self.part("customer")

    @property
    def period(self) -> str:
        """The period label of a period id."""
        return self.part("period")

    @property
    def sequence(self) -> int:
        """The counter of a ``rerate``, ``fee`` or ``forfeit`` id."""
        return int(self.part("sequence"))

    @property
    def asset(self) -> str:
        """The asset of a ``rounding`` id."""
        return self.part("asset")

    @property
    def contract(self) -> str:
        """The contract of a ``prepayment`` id."""
        return self.part("contract")

    @property
    def payment(self) -> str:
        """The provider's payment id of a ``settle``, ``refund``, ``chargeback`` or ``payment`` id."""
        return self.part("payment")

    @property
    def number(self) -> str:
        """The credit note number of a ``credit`` id."""
        return self.part("number")

    @property
    def reference(self) -> str:
        """The reference of a ``deposit`` id (``payment:ID`` when a provider's payment funded it)."""
        return self.part("reference")

    @property
    def grant(self) -> str:
        """The grant of a ``grant`` or ``forfeit`` id."""
        return self.part("grant")

    @property
    def reservation(self) -> str:
        """The reservation of a ``reserve`` or ``release`` id."""
        return self.part("reservation")

    @property
    def creator(self) -> str:
        """The creator of a ``payout`` id."""
        return self.part("creator")

    @property
    def week(self) -> str:
        """The week label of a ``payout`` id."""
        return self.part("week")


def _canonical_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def parse(id: str) -> TransactionId:
    """The kind and parts of ``id``; :class:`~rating.errors.InvalidId` when this module builds no such id.

    ``str(parse(id)) == id`` for every id it accepts.
    """
    head, colon, rest = id.partition(":")
    kind = _KINDS.get(head)
    if kind is None or not colon:
        raise InvalidId(f"{id!r} is not a transaction id of a known kind")
    layout = LAYOUTS[kind]
    # Every part but the first is split off from the right: only the first may hold ':', where it is free text.
    parts = tuple(rest.rsplit(":", len(layout) - 1)) if len(layout) > 1 else (rest,)
    free = len(layout) == 1 or kind in _FREE_FIRST
    if len(parts) != len(layout) or not all(parts) or (not free and ":" in parts[0]):
        raise InvalidId(f"{id!r} is not a {kind} id: {':'.join((kind, *(p.upper() for p in layout)))}")
    if "sequence" in layout and not _canonical_count(parts[layout.index("sequence")]):
        raise InvalidId(f"{id!r} is not a {kind} id: its counter is not a number")
    return TransactionId(kind, parts)


__all__ = [
    "CLOSING_PREFIX",
    "LAYOUTS",
    "RATING_PREFIX",
    "TransactionId",
    "TransactionKind",
    "chargeback_id",
    "closing_id",
    "commitment_id",
    "credit_id",
    "deposit_id",
    "fee_id",
    "forfeit_id",
    "grant_id",
    "kind_of",
    "minimum_id",
    "paid_by",
    "paid_reference",
    "parse",
    "payment_marker_id",
    "payout_id",
    "prefix_of",
    "prepayment_id",
    "rating_id",
    "release_id",
    "rerate_id",
    "reserve_id",
    "refund_id",
    "rounding_id",
    "settle_id",
    "take_back_id",
    "tax_id",
]
