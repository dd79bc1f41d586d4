"""Schema checks, with every jsonschema error turned into `path: field: what, what to do`.

A spec is first checked by a validator that fastjsonschema compiles from the schema: it
answers "valid" for hundreds of specs in a few milliseconds. Only a spec it refuses goes to
jsonschema, whose errors carry what the messages need. Both read the same schema file.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

import fastjsonschema

from envrepo.errors import Problem
from envrepo.repo import schemas
from envrepo.repo.files import cache_dir, write_text
from envrepo.repo.yamlio import SourceFloat

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

HINT = "x-envrepo-hint"
# A field whose wrong value may hold a secret (a password in a URL): its message never
# repeats the value, since messages reach CI logs.
UNSHOWN = "x-envrepo-unshown"


def _inline(node: Any, home: str) -> Any:
    """`node` with every $ref replaced by what it points at (the schemas have no recursion).

    jsonschema resolves a $ref on every visit; inlining them once makes validating hundreds
    of specs in one run several times faster.
    """
    if isinstance(node, list):
        return [_inline(item, home) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" not in node:
        return {key: _inline(value, home) for key, value in node.items()}
    document, _, pointer = str(node["$ref"]).partition("#")
    document = document or home
    target: Any = schemas.load(document)
    for part in pointer.strip("/").split("/"):
        target = target[part]
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return _inline({**target, **siblings}, document)


@cache
def _inlined(name: str) -> dict[str, Any]:
    inlined: dict[str, Any] = _inline(schemas.load(name), name)
    inlined.pop("$defs", None)
    return inlined


def _draft7(node: Any) -> Any:
    """The schema in draft 7's words: 2020-12's `prefixItems` (and `items` after it) is
    draft 7's array `items` (and `additionalItems`); every other keyword the schemas use
    means the same in both."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: _draft7(value) for key, value in node.items()}
    if "prefixItems" in found:
        found["additionalItems"] = found.pop("items", True)
        found["items"] = found.pop("prefixItems")
    return found


@cache
def _fast(name: str) -> Callable[[object], object]:
    # After inlining and in draft 7's words, the fast validator checks what jsonschema does.
    draft7 = {**_draft7(_inlined(name)), "$schema": "http://json-schema.org/draft-07/schema#"}
    try:
        return _kept_validator(draft7)
    except (OSError, ImportError):
        # No cache to keep it in: compiled here, as it always can be.
        validate: Callable[[object], object] = fastjsonschema.compile(draft7, use_formats=False)
        return validate


def _kept_validator(draft7: dict[str, Any]) -> Callable[[object], object]:
    """fastjsonschema's code for `draft7`, generated once per schema and fastjsonschema version
    and kept in envrepo's cache as a module, so that Python's own bytecode cache spares every
    start the compiling (about 30 ms of each command's start-up). A damaged copy is made again."""
    text = json.dumps(draft7, sort_keys=True)
    key = hashlib.sha256(f"{fastjsonschema.VERSION}\n{text}".encode()).hexdigest()[:32]
    path = cache_dir("schemas") / f"validator_{key}.py"
    for _ in range(2):
        if not path.is_file():
            write_text(path, fastjsonschema.compile_to_code(draft7, use_formats=False))
        spec = importlib.util.spec_from_file_location(f"envrepo_validator_{key}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            validate: Callable[[object], object] = module.validate
            return validate
        except (SyntaxError, ValueError, NameError, AttributeError):
            # Cut short or overwritten (a NUL byte is a ValueError before Python 3.12).
            path.unlink(missing_ok=True)
    raise ImportError(f"{path} cannot be loaded")


@cache
def _validator(name: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_inlined(name))


def field_name(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    return f"a {type(value).__name__}"


def _written(value: object) -> str:
    if isinstance(value, SourceFloat):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_message(error: ValidationError) -> str:
    expected = error.validator_value
    value = error.instance
    wanted = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "boolean": "true or false",
    }
    want = wanted.get(expected, expected) if isinstance(expected, str) else expected
    if expected == "string" and isinstance(value, int | float | bool):
        written = _written(value)
        if isinstance(value, float) and str(float(value)) != written:
            return f'{written} is read by YAML as the number {float(value)}; quote it: "{written}"'
        return f'{written} is read by YAML as {_type_name(value)}; quote it: "{written}"'
    if expected == "string" and isinstance(value, datetime.date):
        return f'{value.isoformat()} is read by YAML as a date; quote it: "{value.isoformat()}"'
    if expected == "object" and isinstance(value, list):
        return "is a list, expected a mapping of key: value lines; write it as a mapping"
    if expected == "array" and isinstance(value, str):
        return f"is a string, expected a list; write it as [{value}]"
    return f"is {_type_name(value)}, expected {want}; fix its type"


def _base_kinds() -> str:
    """The kinds of base, as the environment schema lists them."""
    return ", ".join(schemas.load(schemas.ENVIRONMENT)["$defs"]["base"]["properties"])


def _message(error: ValidationError) -> tuple[str, str]:
    """The (field, message) pair for one error."""
    field = field_name(error.absolute_path)
    kind = error.validator
    subschema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    hint = subschema.get(HINT)
    instance: Any = error.instance
    if kind == "type":
        return field, _type_message(error)
    if kind == "required":
        missing = str(error.message).removesuffix(" is a required property").strip("'\"")
        return field_name([*error.absolute_path, missing]), "is missing; add it"
    if kind == "additionalProperties":
        known = sorted(subschema.get("properties", {}))
        extra = sorted(set(instance) - set(known))
        if field == "base" or field.endswith(".base"):
            return field, f"unknown base {extra[0]!r}; use one of {', '.join(known)}"
        name = extra[0]
        close = difflib.get_close_matches(name, known, n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
        return field_name([*error.absolute_path, name]), f"unknown field; remove it ({fix})"
    if kind == "maxProperties" and field.endswith("base"):
        keys = " and ".join(sorted(instance))
        return field, f"sets {keys}; keep exactly one of {_base_kinds()}"
    if kind == "minProperties" and field.endswith("base"):
        return field, f"is empty; set exactly one of {_base_kinds()}"
    if kind == "uniqueItems":
        return field, "lists the same item twice; remove the duplicate"
    if kind == "minItems":
        return field, "is empty; list at least one item or remove the field"
    if kind == "minLength":
        return field, "is empty; fill it in or remove the field"
    if kind == "maxLength":
        return field, f"is longer than {error.validator_value} characters; shorten it"
    if kind in ("pattern", "enum") and subschema.get(UNSHOWN):
        return field, f"is not valid (the value is not repeated here); {hint or 'fix it'}"
    if kind in ("pattern", "enum"):
        return field, f"{_written(error.instance)!r} is not valid; {hint or 'fix the value'}"
    return field, f"{error.message}; fix the value"


def violations(document: object, schema_name: str, display: str) -> list[Problem]:
    """Every schema problem of `document`, sorted by field."""
    try:
        _fast(schema_name)(document)
        return []
    except fastjsonschema.JsonSchemaValueException:
        pass
    problems: list[Problem] = []
    for error in _validator(schema_name).iter_errors(document):
        field, message = _message(error)
        problems.append(Problem(display, field, message))
    return sorted(set(problems))
