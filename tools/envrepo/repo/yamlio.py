"""Reading YAML that a person wrote: strict, bounded, and one clear line when it is wrong.

Every YAML file envrepo reads (specs, the repository config, conda inputs) comes through
`load_yaml`, so the guards against huge, binary, non-UTF-8, duplicate-key and alias-bomb
files hold everywhere.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.paths import special_kind

MAX_BYTES = 1 << 20
# Aliases share nodes, so a small file can stand for an exponentially large document that
# every later stage (schema, hashing, JSON) would walk in full.
MAX_NODES = 100_000


class SourceFloat(float):
    """A YAML float that remembers how it was written: `3.10` reads as 3.1."""

    text: str


class _DocumentError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_STR = "tag:yaml.org,2002:str"


class _Loader(yaml.CSafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _check_keys(self, node)
        return super().construct_mapping(node, deep)


def _check_keys(loader: yaml.CSafeLoader, node: yaml.MappingNode) -> None:
    """Keys are strings, each once (a merge key may override what it merges)."""
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            key = loader.construct_object(key_node, deep=True)
            raise _DocumentError(
                f"line {line}", f"key {key!r} is not a string; quote it or rename it"
            )
        key = key_node.value
        if key in seen:
            raise _DocumentError(
                f"line {line}",
                f"duplicate key {key!r} (first at line {seen[key]}); keep only one",
            )
        seen[key] = line


def _plain(loader: yaml.CSafeLoader, node: yaml.Node) -> Any:
    """What construct_document makes of a document with no anchors, aliases, merge keys or
    explicit tags, built directly: PyYAML's generic constructor is most of the time a
    repository of thousands of specs takes to load."""
    if isinstance(node, yaml.MappingNode):
        _check_keys(loader, node)
        return {key.value: _plain(loader, value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(loader, child) for child in node.value]
    if node.tag == _STR:
        return node.value
    return loader.yaml_constructors[node.tag](loader, node)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> SourceFloat:
    value = SourceFloat(loader.construct_yaml_float(node))
    value.text = node.value
    return value


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

# YAML 1.2 booleans only: `DEBUG: yes` or `country: no` stay the strings the person wrote,
# instead of YAML 1.1's surprise booleans.
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expanded_size(root: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not expanded:
            if key in visiting:
                raise _DocumentError(
                    f"line {node.start_mark.line + 1}",
                    "a YAML alias refers to a value that contains itself; write the value out",
                )
            visiting.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        visiting.discard(key)
        total = 1 + sum(sizes[id(child)] for child in children)
        if total > MAX_NODES:
            raise _DocumentError(
                "",
                f"YAML aliases expand to more than {MAX_NODES} values; "
                "write the values out instead of nesting aliases",
            )
        sizes[key] = total


def read_text(path: Path, display: str, what: str = "file") -> str:
    """The file's text, or an EnvrepoError naming what is wrong with it."""
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError
        kind = special_kind(status.st_mode)
        if kind is not None:
            raise EnvrepoError(
                Problem(display, "", f"is {kind}, expected a {what}; replace it with a file")
            )
        size = status.st_size
        if size > MAX_BYTES:
            raise EnvrepoError(
                Problem(
                    display,
                    "",
                    f"{what} is {size / (1 << 20):.1f} MiB, over the {MAX_BYTES >> 20} MiB limit; "
                    "it cannot be a hand-written spec, check that it is the right file",
                )
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise EnvrepoError(Problem(display, "", f"{what} does not exist; create it")) from None
    except IsADirectoryError:
        raise EnvrepoError(
            Problem(display, "", f"is a directory, expected a {what}; remove or rename it")
        ) from None
    except OSError as error:
        raise EnvrepoError(
            Problem(display, "", f"cannot be read ({error.strerror}); check its permissions")
        ) from None
    if b"\0" in data:
        raise EnvrepoError(
            Problem(display, "", f"is a binary file, expected a YAML text {what}; replace it")
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EnvrepoError(
            Problem(
                display,
                "",
                f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                "save it as UTF-8",
            )
        ) from None


def _yaml_problem(display: str, error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        what = error.problem or "invalid YAML"
        if error.context:
            what = f"{error.context}, {what}"
        return Problem(
            display,
            f"line {mark.line + 1}",
            f"{what} (column {mark.column + 1}); fix the YAML syntax",
        )
    return Problem(display, "", f"invalid YAML ({error}); fix the YAML syntax")


def parse_yaml(text: str, display: str) -> Any:
    """The one document in `text`; None when the text holds no document at all."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:  # only aliases can make a document bigger than its text
            _check_expanded_size(node)
        if not any(mark in text for mark in ("&", "*", "<<", "!")):
            return _plain(loader, node)
        return loader.construct_document(node)
    except _DocumentError as error:
        raise EnvrepoError(Problem(display, error.field, error.message)) from None
    except yaml.YAMLError as error:
        raise EnvrepoError(_yaml_problem(display, error)) from None
    except RecursionError:
        raise EnvrepoError(
            Problem(display, "", "nested too deeply to be a spec; flatten it")
        ) from None
    finally:
        loader.dispose()


def load_yaml(path: Path, display: str, what: str = "file") -> Any:
    document = parse_yaml(read_text(path, display, what), display)
    if document is None:
        raise EnvrepoError(Problem(display, "", "is empty, expected a YAML mapping; fill it in"))
    return document
