"""Notifications: what plugins are told once ratings are stored.

The ``rating_transaction_posted`` hook for every stored rating, ``rating_spend_alert``
when a customer's period spend crosses its ``spend_alert``, and ``rating_top_up_needed``
when a wallet falls below its ``top_up`` threshold. Each hook is looked up once: with no
plugin implementing it, telling costs nothing.

The same two crossings are also webhook messages (:mod:`rating.outbox`): :meth:`Notifications.announcements`
gives them to the writer, which stores them in the write scope of the ratings that crossed (plugins are told
after the commit; the outbox row commits with the ratings or not at all). With no customer having an alert or a
top-up, that costs nothing either.
"""

from __future__ import annotations

from decimal import Decimal

from rating import outbox
from rating.accounts import customer_of
from rating.core.charges import RatedEvent
from rating.core.pricer import Pricer
from rating.pricebook.catalog import Catalog
from rating.records import OutboxMessage
from rating.registry import Registry
from rating.statekeys import SPEND

#: Per (wallet account, asset): its balance before and after what was stored.
WalletMoves = dict[tuple[str, str], tuple[Decimal, Decimal]]


class Notifications:
    """Tells plugins about stored ratings, spend alerts crossed and wallets to top up."""

    def __init__(self, registry: Registry, catalog: Catalog, pricer: Pricer) -> None:
        self.registry, self.catalog, self.pricer = registry, catalog, pricer
        hooks = registry.manager.hook
        self._posted = hooks.rating_transaction_posted if hooks.rating_transaction_posted.get_hookimpls() else None
        self._alerts = bool(hooks.rating_spend_alert.get_hookimpls())
        self._top_ups = bool(hooks.rating_top_up_needed.get_hookimpls())
        specs = catalog.latest.customers.values()
        self._announces = any(s.spend_alert is not None or s.top_up is not None for s in specs)

    def notify(self, fresh: list[RatedEvent], wallets: WalletMoves) -> None:
        """Tell plugins of stored ratings (``fresh``), spend alerts crossed and wallets to top up."""
        if self._posted is not None:
            for rating in fresh:
                self._posted(transaction=rating.transaction)
        self.alert(fresh, wallets)

    def alert(self, fresh: list[RatedEvent], wallets: WalletMoves) -> None:
        """Tell plugins of spend alerts crossed and wallets to top up by what was just stored."""
        hook = self.registry.manager.hook
        book = self.catalog.latest
        for rating in fresh if self._alerts else ():
            spec = book.spec_of(rating.event.customer)
            alert = spec.spend_alert if spec is not None else None
            for usage in rating.usage:
                if usage.meter == SPEND and alert is not None and usage.before < alert <= usage.after:
                    hook.rating_spend_alert(
                        customer=rating.event.customer,
                        period=usage.period,
                        spent=usage.after,
                        threshold=alert,
                        asset=self.pricer.version_at(rating.event.timestamp).billed_asset[rating.plan],
                    )
        for (account, asset), (before, after) in wallets.items() if self._top_ups else ():
            customer = customer_of(account)
            assert customer is not None
            spec = book.spec_of(customer)
            if spec is not None and spec.top_up is not None and -before >= spec.top_up.below > -after:
                hook.rating_top_up_needed(customer=customer, asset=asset, available=-after, amount=spec.top_up.amount)

    def announcements(self, fresh: list[RatedEvent], wallets: WalletMoves) -> list[OutboxMessage]:
        """The webhook messages of the spend alerts crossed and the wallets to top up by ``fresh`` (stored in
        the same write): ``spend.alert_crossed`` once per customer, period and threshold; ``wallet.top_up_needed``
        once per crossing, named by the last rated event of the customer that crossed."""
        if not self._announces:
            return []
        book = self.catalog.latest
        found: list[OutboxMessage] = []
        last: dict[str, str] = {}
        for rating in fresh:
            customer = rating.event.customer
            last[customer] = rating.event.id
            spec = book.spec_of(customer)
            alert = spec.spend_alert if spec is not None else None
            if alert is None:
                continue
            for usage in rating.usage:
                if usage.meter == SPEND and usage.before < alert <= usage.after:
                    asset = self.pricer.version_at(rating.event.timestamp).billed_asset[rating.plan]
                    data = {"customer": customer, "period": usage.period, "spent": usage.after}
                    data |= {"threshold": alert, "asset": asset}
                    subject = f"{customer}:{usage.period}:{alert}"
                    found.append(outbox.message(outbox.SPEND_ALERT_CROSSED, subject, data))
        for (account, asset), (before, after) in wallets.items():
            owner = customer_of(account)
            spec = book.spec_of(owner) if owner is not None else None
            if owner is None or spec is None or spec.top_up is None or owner not in last:
                continue
            if -before >= spec.top_up.below > -after:
                data = {"customer": owner, "asset": asset, "available": -after, "amount": spec.top_up.amount}
                subject = f"{owner}:{asset}:{last[owner]}"
                found.append(outbox.message(outbox.WALLET_TOP_UP_NEEDED, subject, data))
        return found
