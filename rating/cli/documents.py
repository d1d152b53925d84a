"""Writing documents (invoices, statements) as files: ``--html DIR`` and ``--pdf DIR``."""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from rating.invoices.profiles import load_billing

#: A document to write: its file name without suffix, and what renders it as HTML and as PDF.
Document = tuple[str, Callable[[], str], Callable[[], bytes]]

#: Bytes of a file name, leaving room for the suffix under the usual limit of 255.
MAX_FILE_NAME = 200


def file_name(name: str) -> str:
    """``name`` (holding a customer id or an invoice number) as one file name: never a path, never hidden.

    Ids may hold ``/``, ``\\``, ``%`` and the like: each character other than a letter, a digit
    or one of ``-_.~+=,@`` is percent-encoded (UTF-8), and a leading ``.`` too, so distinct names
    stay distinct files. A name too long for a file system keeps its start and a hash of the whole.
    """
    encoded = "".join(
        c if (c.isalnum() or c in "-_.~+=,@") and c.isprintable() else urllib.parse.quote(c, safe="") for c in name
    )
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded.encode()) > MAX_FILE_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        encoded = encoded.encode()[: MAX_FILE_NAME - 17].decode(errors="ignore") + "-" + digest
    return encoded


def document_fonts(args: argparse.Namespace) -> tuple[str, ...]:
    """The font files the ``--billing`` file names for PDFs (``fonts:``), if ``--pdf`` and ``--billing`` are given."""
    return load_billing(args.billing).fonts if args.pdf and args.billing else ()


def document_languages(args: argparse.Namespace) -> dict[str, str]:
    """The translation files the ``--billing`` file names (``languages:``), if documents are written."""
    return load_billing(args.billing).languages if (args.html or args.pdf) and args.billing else {}


def write_documents(args: argparse.Namespace, documents: Sequence[Document]) -> None:
    """Each document as ``DIR/NAME.html`` for ``--html DIR`` and ``DIR/NAME.pdf`` for ``--pdf DIR``."""
    # Every document is rendered before any is written: one that cannot be (unrenderable_text) leaves no files.
    rendered: list[tuple[Path, bytes]] = []
    for folder, suffix in ((args.html, ".html"), (args.pdf, ".pdf")):
        if folder is None:
            continue
        for name, html, pdf in documents:
            content = html().encode("utf-8") if suffix == ".html" else pdf()
            rendered.append((Path(folder) / f"{name}{suffix}", content))
    for path, content in rendered:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path}", file=sys.stderr)
