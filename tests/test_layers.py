"""What importing one module loads: the layers show at run time, not only in the import contracts."""

import subprocess
import sys

import pytest

import rating
from rating import ledger
from rating.billing import rerate

#: The foundations: modules that import nothing above them.
FOUNDATIONS = {
    "rating",
    "rating._compat",
    "rating.money",
    "rating.errors",
    "rating.refusals",
    "rating.periods",
    "rating.accounts",
}


def loaded_by(module: str) -> set[str]:
    """The ``rating`` modules (and pluggy) a fresh interpreter holds after importing ``module``."""
    code = (
        "import sys\n"
        f"import {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('rating', 'rating_plugins', 'pluggy')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_importing_money_loads_only_foundations() -> None:
    assert loaded_by("rating.money") <= FOUNDATIONS


@pytest.mark.parametrize("module", ["rating.core.pricer", "rating.pricebook.model", "rating.pricebook.catalog"])
def test_the_pricing_side_loads_no_plugin_machinery_storage_or_engine(module: str) -> None:
    loaded = loaded_by(module)
    assert not {m for m in loaded if m.startswith(("rating.storage", "rating.registry", "pluggy"))}
    assert not loaded & {"rating.engine", "rating.wallet.wallets", "rating.billing.rerate"}


def test_the_registry_loads_storage_only_to_open_it() -> None:
    assert not {m for m in loaded_by("rating.registry") if m.startswith("rating.storage")}


def test_every_public_name_still_resolves_from_the_package() -> None:
    for name in rating.__all__:
        assert getattr(rating, name).__name__ == name
    assert set(rating.__all__) <= set(dir(rating))
    with pytest.raises(AttributeError):
        rating.not_a_name  # noqa: B018


def test_invoices_and_rerate_agree_on_the_correction_kind() -> None:
    # invoices reads corrections by the kind defined with the other transaction ids, not through rerate.
    assert ledger.RERATE == rerate.RERATE == "rerate"


def test_the_lazy_exports_are_the_public_names() -> None:
    assert sorted(rating._EXPORTS) == sorted(rating.__all__)
