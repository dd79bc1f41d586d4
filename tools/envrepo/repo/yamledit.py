"""Round-trip YAML edits that keep a person's comments, order and quoting."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def parse(text: str) -> Any:
    return _yaml().load(text)


def dump(document: Any) -> str:
    stream = io.StringIO()
    _yaml().dump(document, stream)
    return stream.getvalue()


def set_after(document: Any, key: str, value: Any, after: tuple[str, ...]) -> None:
    """Set `key`, placing a new key after the last of `after` that the mapping has."""
    if key in document:
        document[key] = value
        return
    keys = list(document)
    position = max((keys.index(k) + 1 for k in after if k in keys), default=len(keys))
    document.insert(position, key, value)
