"""Builds the plugin manager and resolves what plugins provide, once.

No module-level state: each :class:`Registry` owns its own plugin manager, so
tests and embedders can build one with extra plugins without touching others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pluggy

from rating import hookspecs
from rating.errors import PluginError, StorageError
from rating.pricebook.pricing import PricingModel, declared_common_options

if TYPE_CHECKING:
    from rating.storage import Storage

ENTRY_POINT_GROUP = "rating.plugins"


def plugin_manager(extra_plugins: Iterable[object] = (), *, entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the installed plugins and ``extra_plugins``."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    if entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    return manager


@dataclass
class Registry:
    """What the plugins provide: pricing models and storage adapters, by name."""

    manager: pluggy.PluginManager
    pricing_models: dict[str, type[PricingModel]] = field(default_factory=dict)
    storage_adapters: dict[str, Callable[..., Storage]] = field(default_factory=dict)

    @classmethod
    def load(cls, extra_plugins: Iterable[object] = (), *, entry_points: bool = True) -> Registry:
        """Discover installed plugins (entry-point group ``rating.plugins``) plus ``extra_plugins``."""
        manager = plugin_manager(extra_plugins, entry_points=entry_points)
        registry = cls(manager)
        for models in manager.hook.rating_pricing_models():
            for model in models:
                registry._add_pricing_model(model)
        for adapters in manager.hook.rating_storage_adapters():
            for scheme, factory in adapters.items():
                if scheme in registry.storage_adapters:
                    raise PluginError(f"two plugins provide the storage scheme {scheme!r}")
                registry.storage_adapters[scheme] = factory
        return registry

    def _add_pricing_model(self, model: type[PricingModel]) -> None:
        if not (isinstance(model, type) and issubclass(model, PricingModel)) or not model.name:
            raise PluginError(f"{model!r} is not a named PricingModel subclass")
        clashing = declared_common_options(model)
        if clashing:
            raise PluginError(
                f"pricing model {model.name!r} ({model.__module__}) declares {', '.join(sorted(clashing))}, named"
                " like the common options every charge has; rename the parameter"
            )
        if model.name in self.pricing_models:
            other = self.pricing_models[model.name]
            raise PluginError(
                f"pricing model {model.name!r} is provided twice: {other.__module__} and {model.__module__}"
            )
        self.pricing_models[model.name] = model

    def open_storage(self, url: str, *, read_only: bool = False, existing: bool = False) -> Storage:
        """Open the storage at ``url`` (``memory:``, ``sqlite:///file.db`` or a plain SQLite path).

        By default a missing database is created and an older schema migrated. ``read_only``
        opens it for reading only; ``existing`` opens it for writing. Either way nothing is
        created or migrated: a missing database (or one without a rating schema) is refused
        with ``StorageError.code`` ``no_database``, an older schema with ``schema_outdated``.
        """
        # Imported when storage is opened: loading pricebooks through a registry never loads storage.
        from rating.storage import masked, scheme_of

        scheme = scheme_of(url)
        factory = self.storage_adapters.get(scheme)
        if factory is None:
            known = ", ".join(sorted(self.storage_adapters)) or "none installed"
            raise StorageError(f"no storage adapter for {scheme!r} URLs ({masked(url)}); installed: {known}")
        if read_only:
            return factory(url, read_only=True)
        if not existing:
            return factory(url)
        if "existing" not in inspect.signature(factory).parameters:  # an adapter written before the keyword
            raise PluginError(
                f"the {scheme!r} storage adapter cannot open an existing database only (no existing= keyword):"
                " update the plugin"
            )
        return factory(url, existing=True)

    @property
    def enriches_events(self) -> bool:
        """Whether any plugin implements ``rating_enrich_event`` (else the engine skips the call)."""
        return bool(self.manager.hook.rating_enrich_event.get_hookimpls())
