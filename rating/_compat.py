"""Import aliases for one release: modules that moved into packages in 0.2 still import under their old names.

``import rating.closing`` gives :mod:`rating.billing.close` itself (the same module object, so patching
one patches the other). Only the names below are answered; the finder is installed when ``rating`` is
imported and stays out of the way of every other import. Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

#: Former module (under ``rating.``) -> where it lives now.
MOVED: dict[str, str] = {
    "catalog": "pricebook.catalog",
    "cliargs": "cli.args",
    "charges": "core.charges",
    "closing": "billing.close",
    "compiled": "core.compiled",
    "demo": "cli.demo",
    "diff": "reports.diff",
    "documents": "invoices.render",
    "llm_import": "imports.genai_prices",
    "meters": "pricebook.meters",
    "output": "cli.output",
    "payment_registry": "wallet.payment_ids",
    "payments": "billing.payments",
    "payouts": "billing.payouts",
    "pipeline": "core.pipeline",
    "policies": "core.policies",
    "poster": "core.poster",
    "pricer": "core.pricer",
    "pricing": "pricebook.pricing",
    "rerate": "billing.rerate",
    "settlement": "invoices.settle",
    "splits": "pricebook.splits",
    "statements": "billing.statements",
    "subscriptions": "core.subscriptions",
    "yamlstrict": "pricebook.yamlstrict",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``rating.OLD`` with the module it moved to."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith("rating.") and fullname[len("rating.") :] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        # The import system reads the module back from sys.modules: the moved module takes the old name.
        sys.modules[module.__name__] = importlib.import_module("rating." + MOVED[module.__name__[len("rating.") :]])


def install() -> None:
    """Answer the former names (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
