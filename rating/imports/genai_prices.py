"""``rating import genai-prices``: provider price lists as a cost catalogue for the ``llm`` model.

The catalogue is a YAML file of ``models:`` in the ``llm`` model's own terms,
one per provider and model asked for: prices per million tokens (and per
thousand requests), context tiers, time windows, price variants, and every
price change as a ``conditional`` entry ``from`` its date (UTC), the first
prices open-ended so that an earlier date prices at the first known price, as
genai-prices does. A pricebook refers to it; it never holds plans or
customers, so re-importing after a price change rewrites only the catalogue::

    costs:                      # what the providers charge: margin reports work at once
      - {meter: llm_calls, model: llm, catalogue: llm/anthropic.yaml}
    plans:
      pro:
        charges:                # what customers pay: the same prices, 20 % up
          - {meter: llm_calls, model: llm, catalogue: llm/anthropic.yaml, markup: "20"}

A model id that several imported providers serve (Claude at Anthropic and at
Google's Vertex) is named ``provider/id`` for each of them, and the models are
written by provider: the catalogue depends on what is imported, never on the
order providers are named in, and no provider takes another's name.

What cannot be said in these terms (a provider-specific rule such as billing
at least 10 seconds of audio, a unit the ``llm`` model does not know, prices
that do not cover the usage they split) is reported, never dropped silently.
genai-prices is an optional dependency (``pip install 'rating-engine[llm]'``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from rating.distribution import install_hint
from rating.errors import RatingError
from rating.registry import Registry

#: Provider models whose price genai-prices adjusts in code, beyond its price data.
SPECIAL_CASES = {("groq", "whisper-large-v3"), ("groq", "whisper-large-v3-turbo")}


@dataclass
class Imported:
    """A catalogue's models, and what could not be imported, with why."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def write(self, path: str | Path, source: str) -> None:
        """Write the catalogue as YAML (prices as exact decimal text)."""
        header = f"# Imported from {source} by rating import genai-prices; re-import to update, do not edit.\n"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(header + yaml.safe_dump({"models": self.models}, sort_keys=False), encoding="utf-8")


def import_genai_prices(providers: Sequence[str], models: Iterable[str] = ()) -> Imported:
    """The models of ``providers`` (all of them, or only ``models``) as an ``llm`` catalogue."""
    try:
        from genai_prices import data_snapshot
    except ImportError:
        raise RatingError(f"rating import genai-prices needs the llm extra: {install_hint('llm')}") from None
    llm = Registry.load().pricing_models.get("llm")
    if llm is None:
        raise RatingError("no llm pricing model is installed")
    snapshot = data_snapshot.get_snapshot()
    wanted, found = set(models), set()
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: list[str] = []
    for provider_id in sorted(set(providers)):  # the catalogue is the same whatever order providers are named in
        provider = next((p for p in snapshot.providers if p.id == provider_id), None)
        if provider is None:
            known = ", ".join(sorted(p.id for p in snapshot.providers))
            raise RatingError(f"genai-prices has no provider {provider_id!r}; it has {known}")
        for model in provider.models:
            if wanted and model.id not in wanted:
                continue
            if (provider.id, model.id) in SPECIAL_CASES:
                skipped.append(f"{provider.id}/{model.id}: priced by a rule in genai-prices' code, not its data")
                continue
            try:
                entry = _model(provider.id, model)
                llm.model_validate({"meter": "m", "model": "llm", "models": {model.id: entry}})
            except (ValueError, TypeError) as error:
                reason = str(error).splitlines()[-1] if str(error) else type(error).__name__
                skipped.append(f"{provider.id}/{model.id}: {reason.strip()}")
                continue
            entries[(provider.id, model.id)] = entry
        found |= {m.id for m in provider.models}
    names = catalogue_names(entries)
    result = Imported({names[ids]: entry for ids, entry in entries.items()}, skipped)
    result.skipped += [f"{name}: no such model at {', '.join(providers)}" for name in sorted(wanted - found)]
    return result


def catalogue_names(models: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Each (provider, model id)'s name in a catalogue: the model id, or ``provider/model id`` where that name is
    shared (a model several providers serve, or an id that reads like another's qualified name). The names depend
    on which models are imported, never on the order they come in, so no provider takes another's name."""
    names = {ids: ids[1] for ids in models}
    while True:
        holders: dict[str, list[tuple[str, str]]] = {}
        for ids, name in names.items():
            holders.setdefault(name.lower(), []).append(ids)
        shared = [group for group in holders.values() if len(group) > 1]
        if not shared:
            return names
        for group in shared:
            plain = [ids for ids in group if names[ids] == ids[1]]
            if not plain:  # only "a" serving "b/c" and "a/b" serving "c" get here
                raise RatingError(f"models {', '.join('/'.join(ids) for ids in group)} cannot be told apart by name")
            for provider, model in plain:
                names[(provider, model)] = f"{provider}/{model}"


def _model(provider: str, model: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"provider": provider, "match": _match(model.match)}
    if isinstance(model.prices, list):
        entry["prices"] = _prices(model.prices[0].prices)
        conditional = [_when(c.constraint) | {"prices": _prices(c.prices)} for c in model.prices[1:]]
        if any("from" not in c and "window" not in c for c in conditional):
            raise ValueError("a conditional price without a condition")
        entry["conditional"] = conditional
    else:
        entry["prices"] = _prices(model.prices)
    if model.price_variants:
        entry["variants"] = [
            {"when": dict(v.when), **_when(v.constraint), "prices": _prices(v.prices)} for v in model.price_variants
        ]
    return entry


def _match(clause: Any) -> dict[str, Any]:
    for name in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, name):
            return {name: getattr(clause, name)}
    if hasattr(clause, "or_"):
        return {"or": [_match(c) for c in clause.or_]}
    if hasattr(clause, "and_"):
        return {"and": [_match(c) for c in clause.and_]}
    raise ValueError(f"a model match {type(clause).__name__} the llm model cannot express")


def _when(constraint: Any) -> dict[str, Any]:
    if constraint is None:
        return {}
    if hasattr(constraint, "start_date"):
        return {"from": constraint.start_date.isoformat()}
    if hasattr(constraint, "start_time"):
        return {"window": {"start": _utc(constraint.start_time), "end": _utc(constraint.end_time), "zone": "UTC"}}
    raise ValueError(f"a price condition {type(constraint).__name__} the llm model cannot express")


def _utc(moment: dt.time) -> str:
    if moment.tzinfo is not None:
        moment = dt.datetime.combine(dt.date(1970, 1, 1), moment).astimezone(dt.UTC).time()
    return moment.replace(tzinfo=None).isoformat()


def _prices(prices: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in prices.__dict__.items():
        if value is None or key.startswith("_"):
            continue
        if isinstance(value, Decimal):
            result[key] = str(value)
        elif hasattr(value, "base") and hasattr(value, "tiers"):
            tiers = [{"start": int(t.start), "price": str(t.price)} for t in value.tiers]
            result[key] = {"base": str(value.base), "tiers": tiers}
        else:
            raise ValueError(f"{key}: a price {type(value).__name__} the llm model cannot express")
    return result
