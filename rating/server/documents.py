"""The service's documents and reports beyond invoices: credit notes, statements, and the upcoming bill.

All of these only read the ledger. ``upcoming`` computes what closing the customer's open period
now would post (:func:`rating.billing.close.preview_closing`, the close's own code path) without
writing it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from rating.accounts import receivable_account
from rating.billing.close import period_usage, preview_closing
from rating.billing.statements import statement
from rating.core.subscriptions import spans_within
from rating.errors import EventError, InvoiceError
from rating.invoices.issue import CREDIT_NOTE, CreditNote, documents_of
from rating.invoices.profiles import Billing
from rating.ledger import Transaction
from rating.money import ZERO
from rating.periods import ONE_TICK, PeriodClock, bounds_of, parse_period, zone
from rating.pricebook.model import Pricebook
from rating.refusals import InvoiceRefusal, Refusal
from rating.server import views
from rating.server.ledger import Ledger

Guard = Callable[[str], Callable[[Request], Awaitable[None]]]
#: A period label as ``rating statement --period`` takes it.
PERIOD = Query(pattern=r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?|-W[0-9]{2}|-Q[1-4])?$", examples=["2026-11"])
#: A language a statement is rendered in (an unknown one is refused, not a 500).
LANGUAGE = Query(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="the language of html and pdf (en, de, fr, es, pl)")


def document_fonts(app: FastAPI) -> tuple[str, ...]:
    """The font files the app's billing file names for PDFs (``app.state.billing``, set by ``create_app``)."""
    billing: Billing | None = getattr(app.state, "billing", None)
    return billing.fonts if billing is not None else ()


#: What a document route answers: JSON by default, ``NUMBER.pdf`` and ``NUMBER.html`` rendered (OpenAPI).
DOCUMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The document: JSON, or NUMBER.pdf as PDF, or NUMBER.html as a self-contained page",
        "content": {"application/json": {}, "application/pdf": {}, "text/html": {}},
    }
}


def install(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    """Add the credit note, statement and upcoming routes (scope ``read``) to ``app``."""
    read = [Depends(needs("read"))]

    @app.get("/v1/credit-notes", dependencies=read)
    async def list_credit_notes(customer: str | None = None) -> JSONResponse:
        """Every issued credit note (of one customer if asked), in the order issued."""
        notes = await ledger.run(lambda led: documents_of(led.storage, CREDIT_NOTE, customer=customer))
        return JSONResponse({"credit_notes": [_note(note) for note in notes]})

    @app.get("/v1/credit-notes/{number}", dependencies=read, response_model=None, responses=DOCUMENT_RESPONSES)
    async def show_credit_note(number: str) -> Response:
        """One credit note as JSON (as ``rating invoice show CN-...`` shows it); ``NUMBER.pdf`` and ``NUMBER.html``
        render it as ``rating invoice show CN-... --pdf|--html`` does, naming the invoice it credits."""
        stem, _, suffix = number.rpartition(".") if number.endswith((".pdf", ".html")) else (number, "", "")

        def shown(led: Ledger) -> Response:  # rendered on the ledger's thread, as invoices are
            found = documents_of(led.storage, CREDIT_NOTE, stem)
            if not found:
                raise InvoiceError(InvoiceRefusal.UNKNOWN_INVOICE, f"no credit note {stem}")
            if suffix == "pdf":
                from rating.invoices.render import credit_note_pdf

                return Response(credit_note_pdf(CreditNote.model_validate(found[0])), media_type="application/pdf")
            if suffix == "html":
                from rating.invoices.render import credit_note_html

                return HTMLResponse(credit_note_html(CreditNote.model_validate(found[0])))
            return JSONResponse(_note(found[0]))

        return await ledger.run(shown)

    @app.get("/v1/customers/{customer}/statement", dependencies=read, response_model=None)
    async def customer_statement(
        customer: str,
        period: Annotated[str, PERIOD],
        format: Literal["json", "html", "pdf"] = "json",
        language: Annotated[str, LANGUAGE] = "en",
    ) -> Response:
        """The customer's wallet statement of ``period`` (as ``rating statement show``): opening, movements,
        closing and owed per asset, and the usage of the period; ``format=html|pdf`` renders it in ``language``
        (en, de, fr, es, pl; another is ``unknown_language``)."""
        try:
            parse_period(period)
        except ValueError as error:
            raise EventError(Refusal.INVALID_RECORD, str(error)) from None
        shown = await ledger.run(lambda led: statement(led.storage, led.catalog.latest, customer, period))
        if format == "html":
            from rating.invoices.render import statement_html

            return HTMLResponse(statement_html(shown, language))
        if format == "pdf":
            from rating.invoices.render import statement_pdf

            return Response(statement_pdf(shown, language, document_fonts(app)), media_type="application/pdf")
        return JSONResponse(views.as_json(shown))

    @app.get("/v1/customers/{customer}/upcoming", dependencies=read)
    async def upcoming(customer: str) -> JSONResponse:
        """What the customer's open period would bill if it closed now: its usage per meter, the closing
        charges the close would post (fees, minimum and commitment true-ups, rounding), and the totals
        (``paid_from_wallet``: its usage is paid from its wallet as rated, not billed on account)."""
        return JSONResponse(await ledger.run(lambda led: _upcoming(led, customer)))


def _note(document: dict[str, Any]) -> dict[str, Any]:
    """A stored credit note as JSON (amounts as decimal text)."""
    shown: dict[str, Any] = views.as_json(CreditNote.model_validate(document))
    return shown


def _open_period(book: Pricebook, customer: str, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    """The label and bounds of the period of ``customer`` that ``now`` falls in, by its plan's period kind, time
    zone and anchor; ``unknown_customer`` when the customer has no plan now."""
    parts = spans_within(book, customer, now, now + ONE_TICK)
    if not parts:
        raise EventError(Refusal.UNKNOWN_CUSTOMER, f"customer {customer!r} has no plan at {now.isoformat()}")
    timezone, anchor = zone(book.timezone_of(customer)), book.anchor_of(customer)
    label = PeriodClock(book.plans[parts[0].plan].period, timezone, anchor).label(now)
    _, start, end = bounds_of(label, timezone, anchor)
    return label, start, end


def _upcoming(led: Ledger, customer: str) -> dict[str, Any]:
    """The upcoming bill of ``customer`` (on the ledger's thread; reads only)."""
    now = led.clock()
    book = led.catalog.in_force(now) or led.catalog.latest
    period, start, end = _open_period(book, customer, now)
    usage: dict[tuple[str, str], list[Decimal]] = {}
    for stored in period_usage(led.storage, customer, period).charges:
        charge = stored.charge
        summed = usage.setdefault((charge.meter, charge.asset), [ZERO, ZERO])
        summed[0] += charge.after - charge.before
        summed[1] += charge.amount
    previewed = preview_closing(led.storage, led.catalog, customer, period)
    closing = [_closing_line(t, customer) for t in previewed if t.postings]
    totals: dict[str, Decimal] = {}
    for (_, asset), (_, amount) in usage.items():
        totals[asset] = totals.get(asset, ZERO) + amount
    for closed in closing:
        totals[closed["asset"]] = totals.get(closed["asset"], ZERO) + Decimal(closed["amount"])
    return {
        "customer": customer,
        "period": period,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "as_of": now.isoformat(),
        "closed": bool(led.storage.closed_periods([(customer, period)])),
        "paid_from_wallet": book.pays_from_wallet(customer),
        "usage": [
            {"meter": meter, "asset": asset, "quantity": views.money(quantity), "amount": views.money(amount)}
            for (meter, asset), (quantity, amount) in sorted(usage.items())
        ],
        "closing": closing,
        "totals": {asset: views.money(amount) for asset, amount in sorted(totals.items())},
    }


def _closing_line(transaction: Transaction, customer: str) -> dict[str, str]:
    """One closing charge: what it is and what it adds to the customer's receivable."""
    receivable = receivable_account(customer)
    posting = next(p for p in transaction.postings if p.account == receivable)
    return {
        "id": transaction.id,
        "description": transaction.description,
        "asset": posting.asset,
        "amount": views.money(posting.amount),
    }
