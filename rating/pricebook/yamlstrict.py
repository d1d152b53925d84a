"""A strict YAML reader on PyYAML for pricebooks.

- numbers become :class:`~decimal.Decimal` from their source text, never float;
- only ``true``/``false`` are booleans: ``NO``, ``yes``, ``on`` stay strings;
- dates stay text (the schema decides what they mean);
- duplicate keys and merge keys (``<<``) are errors;
- every value's position is kept, so later errors can name ``file:line:column``;
- what a document may expand to is bounded: nesting (:data:`MAX_DEPTH`), values built
  through aliases (:data:`MAX_VALUES`, against alias bombs), and an alias may not contain itself;
- files are read in at most :data:`MAX_FILE_BYTES` (:func:`read_file`), whatever they are: a pipe or
  ``/dev/zero`` is refused once it passes the limit, not read until memory runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path as FilePath
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

#: Deepest nesting of mappings and sequences a pricebook may have.
MAX_DEPTH = 64
#: Most values a document may expand to, aliases included (a pricebook has thousands at most).
MAX_VALUES = 200_000
#: Largest YAML file read (a pricebook, an ``llm`` catalogue, a billing file): real ones are kilobytes.
MAX_FILE_BYTES = 5 * 1024 * 1024

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_NUMBER = re.compile(
    r"""^[-+]?(?:
        [0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
       |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    )$""",
    re.X,
)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-like implicit typing and no float, date or 1.1 boolean."""


StrictLoader.yaml_implicit_resolvers = {}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _NUMBER, list("-+.0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


class YamlError(Exception):
    """A YAML document is not acceptable; ``location`` is ``line:column`` (1-based)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        self.line, self.column, self.message = line, column, message
        super().__init__(f"{line}:{column}: {message}")


@dataclass
class Document:
    """The plain data of a YAML document and the position of every value in it."""

    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int, int]:
        """Line and column of the value at ``path``, or of its nearest enclosing value."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _scalar(node: ScalarNode) -> Any:
    tag, text = node.tag, node.value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true"
    if tag in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int"):
        try:
            return Decimal(text.replace("_", ""))
        except InvalidOperation:
            raise YamlError(*_mark(node), f"{text!r} is not a decimal number") from None
    if tag == "tag:yaml.org,2002:str":
        return text
    raise YamlError(*_mark(node), f"unsupported YAML tag {tag}")


class _Builder:
    """Turns composed nodes into plain data, within the bounds on depth, size and aliases."""

    def __init__(self) -> None:
        self.positions: dict[Path, tuple[int, int]] = {}
        self.values = 0
        self.open: set[int] = set()  # nodes being built: meeting one again is an alias of itself

    def build(self, node: Node, path: Path) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlError(*_mark(node), f"the document expands to more than {MAX_VALUES:,} values (aliases?)")
        if len(path) > MAX_DEPTH:
            raise YamlError(*_mark(node), f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in self.open:
            raise YamlError(*_mark(node), "an alias refers to a value that contains it")
        self.open.add(id(node))
        try:
            return _build(node, path, self)
        finally:
            self.open.discard(id(node))


def _build(node: Node, path: Path, builder: _Builder) -> Any:
    positions = builder.positions
    # A mapping value is located at its key (where a reader looks); others at themselves.
    positions.setdefault(path, _mark(node))
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        return [builder.build(item, path + (i,)) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(*_mark(key_node), "merge keys (<<) are not supported; write the keys out")
            if not isinstance(key_node, ScalarNode):
                raise YamlError(*_mark(key_node), "mapping keys must be plain text")
            key = key_node.value
            if key in result:
                first_line = positions[path + (key,)][0]
                raise YamlError(*_mark(key_node), f"duplicate key {key!r} (first given on line {first_line})")
            positions[path + (key,)] = _mark(key_node)
            result[key] = builder.build(value_node, path + (key,))
        return result
    raise YamlError(*_mark(node), "unsupported YAML node")


def load(text: str) -> Document:
    """Parse one YAML document strictly. Raises :class:`YamlError` with its position."""
    try:
        root = yaml.compose(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(line, column, f"invalid YAML: {error.problem or error.context}") from None
    except yaml.reader.ReaderError as error:  # a NUL or another character YAML does not allow
        line, column = _line_column(text, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise YamlError(line, column, f"invalid YAML: character U+{code:04X} is not allowed") from None
    except yaml.YAMLError as error:
        raise YamlError(1, 1, f"invalid YAML: {error}") from None
    except RecursionError:
        raise YamlError(1, 1, f"invalid YAML: nested deeper than {MAX_DEPTH} levels") from None
    if root is None:
        return Document(None)
    builder = _Builder()
    data = builder.build(root, ())
    return Document(data, builder.positions)


def read_file(path: str | FilePath, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the file at ``path``, reading at most ``limit`` + 1 bytes of it whatever it is.

    Raises OSError when it cannot be opened or read, and :class:`YamlError` at the byte where it
    passes ``limit`` (``what`` names the kind of file in the message) or is not UTF-8.
    """
    with FilePath(path).open("rb") as stream:
        raw = stream.read(limit + 1)
    if len(raw) > limit:
        line, column = _byte_line_column(raw, limit)
        raise YamlError(line, column, f"the file is over the {limit:,}-byte {what} limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _byte_line_column(raw, error.start)
        raise YamlError(line, column, f"not UTF-8 (byte {raw[error.start]:#04x}); save the {what} as UTF-8") from None


def _byte_line_column(raw: bytes, position: int) -> tuple[int, int]:
    return raw.count(b"\n", 0, position) + 1, position - (raw.rfind(b"\n", 0, position) + 1) + 1


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
