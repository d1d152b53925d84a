"""Conformance kits for extenders: what a third-party pricing model's or storage adapter's own tests run.

- :mod:`rating.testing.models`: checks a pricing model keeps its promises
  (:func:`check_period_model`, :func:`check_per_event_model`);
- :mod:`rating.testing.storage`: :class:`StorageContract`, the storage contract
  as one pytest suite a storage adapter runs against itself (provisional: see
  its docstring). Loaded on first use, so the model checks need no pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rating.testing.models import check_per_event_model, check_period_model

if TYPE_CHECKING:
    from rating.testing.storage import StorageContract

__all__ = ["StorageContract", "check_per_event_model", "check_period_model"]


def __getattr__(name: str) -> Any:
    if name == "StorageContract":
        from rating.testing.storage import StorageContract

        return StorageContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
