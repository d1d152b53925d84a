"""The modules that moved into packages in 0.2 import under their old names for one release, as the same
module objects (a monkeypatch of either reaches both)."""

from __future__ import annotations

import importlib

import pytest

from rating import _compat


@pytest.mark.parametrize(("old", "new"), sorted(_compat.MOVED.items()))
def test_a_moved_module_imports_under_its_old_name_as_the_same_module(old: str, new: str) -> None:
    assert importlib.import_module(f"rating.{old}") is importlib.import_module(f"rating.{new}")


def test_the_names_of_a_module_that_became_a_package_still_import_from_it() -> None:
    from rating.billing import parse_billing  # rating.billing was the billing-file module
    from rating.invoices import issue_invoices
    from rating.invoices.issue import issue_invoices as issued
    from rating.invoices.profiles import parse_billing as parsed
    from rating.pricebook import load_pricebook
    from rating.pricebook.model import load_pricebook as loaded
    from rating.reports import usage_report
    from rating.reports.usage import usage_report as reported
    from rating.wallet import Wallets
    from rating.wallet.wallets import Wallets as wallets

    assert (parse_billing, issue_invoices, load_pricebook, usage_report, Wallets) == (
        parsed,
        issued,
        loaded,
        reported,
        wallets,
    )


def test_a_name_no_module_had_is_still_an_attribute_error() -> None:
    import rating.invoices

    with pytest.raises(AttributeError):
        rating.invoices.no_such_name  # noqa: B018
