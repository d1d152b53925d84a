"""Translation files: the labels of invoices, credit notes and statements in one language, as data.

English and German are built in (:data:`rating.invoices.render.WORDS`); French, Spanish and Polish ship as
files (``rating/invoices/languages/fr.yaml``, ``es.yaml``, ``pl.yaml``); any other language is a file that the
billing file names, relative to it::

    languages:
      it: languages/it.yaml

A translation file holds Babel's ``locale`` (for numbers, dates and country names) and the ``words``: a label
per key of the English labels (a key left out is shown in English; a key English does not have is refused,
as a typing error). Placeholders in braces (``{number}``, ``{date}``...) are filled in as written::

    locale: it_IT
    words:
      invoice: Fattura
      number: Numero fattura
      page: Pagina {page} di {pages}

A profile's ``language`` may be any language with labels: built in, shipped, or named under ``languages:``
(else the billing file is refused at load, at the profile's position); a document in a language with no
labels is refused with ``unknown_language``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rating.errors import PricebookError
from rating.pricebook import yamlstrict
from rating.pricebook.model import Problems

#: Where the shipped translation files are: one ``LANGUAGE.yaml`` each.
SHIPPED = Path(__file__).parent / "languages"
#: The languages whose labels are built in, with their Babel locales.
BUILT_IN = {"en": "en_US", "de": "de_DE"}


class Translation(BaseModel):
    """A translation file: Babel's locale for the language, and its labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    locale: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z][a-z]{3})?(_([A-Z]{2}|[0-9]{3}))?$", examples=["fr_FR"])
    words: dict[str, str] = Field(min_length=1)


def shipped() -> dict[str, Path]:
    """The shipped translation files, by language."""
    return {path.stem: path for path in sorted(SHIPPED.glob("*.yaml"))}


def available(files: Mapping[str, str | Path] | None = None) -> list[str]:
    """Every language with labels: built in, shipped, or in ``files`` (a billing file's ``languages:``)."""
    return sorted({*BUILT_IN, *shipped(), *(files or {})})


def load_translation(path: str | Path, known: frozenset[str] | None = None) -> Translation:
    """Read and validate a translation file; :class:`~rating.errors.PricebookError` names every problem at its
    ``file:line:column`` (with ``known``, the keys a label may have: any other is refused)."""
    try:
        stat = Path(path).stat()
    except OSError as error:
        raise PricebookError([f"{path}: cannot read translation file: {error.strerror or error}"]) from None
    return _load(str(path), stat.st_mtime_ns, known)


@lru_cache(maxsize=64)
def _load(path: str, _changed: int, known: frozenset[str] | None) -> Translation:
    try:
        document = yamlstrict.load(yamlstrict.read_file(path, "translation file"))
    except OSError as error:
        raise PricebookError([f"{path}: cannot read translation file: {error.strerror or error}"]) from None
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{path}:{error}"]) from None
    problems = Problems(path, document)
    if not isinstance(document.data, dict):
        problems.add((), "a translation file is a mapping with locale and words")
        problems.raise_if_any()
    try:
        translation = Translation.model_validate(document.data)
    except ValidationError as error:
        problems.add_validation((), error)
        problems.raise_if_any()
        raise
    for key in translation.words:
        if known is not None and key not in known:
            problems.add(("words", key), f"no label is called {key!r} (a typing error?)")
    problems.raise_if_any()
    return translation
