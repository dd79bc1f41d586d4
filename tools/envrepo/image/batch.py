"""`envrepo build` of many environments: what the request chooses, parents first; a failure
skips what is built on it, not the others."""

from __future__ import annotations

from dataclasses import dataclass, field

from envrepo.engine.docker import Docker, Log
from envrepo.engine.registry import connect
from envrepo.errors import EnvrepoError, ExitCode, internal_error
from envrepo.hashing import hash_environments
from envrepo.image import naming
from envrepo.image import plan as planning
from envrepo.image.builder import Builder, Settings
from envrepo.image.record import BuildRecord
from envrepo.lock.locked import read_locked
from envrepo.repo import git, graph
from envrepo.repo.config import CONFIG_FILE
from envrepo.repo.spec import Catalog, Spec, get
from envrepo.validate import validate


@dataclass
class Outcome:
    records: list[BuildRecord] = field(default_factory=list)
    failed: list[EnvrepoError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    internal: bool = False  # a failure was a bug in envrepo


@dataclass(frozen=True)
class Request:
    """What `envrepo build` is asked: NAMEs (with what they are built on), or what the plan
    lists (`changed`), or everything; whether to push; the registry given on the command line."""

    names: tuple[str, ...] = ()
    changed: bool = False
    push: bool = False
    registry: str | None = None


def _named(spec: Spec, error: EnvrepoError) -> EnvrepoError:
    """The error with every line naming the environment it is about."""
    lines = [
        line if line.startswith(spec.display) else f"{spec.display}: {line}" for line in error.lines
    ]
    return EnvrepoError(*lines, code=error.code)


def _refuse_invalid(catalog: Catalog, names: set[str] | None) -> None:
    problems = [p for p in validate(catalog, (), names) if p.is_error]
    if problems:
        raise EnvrepoError(*problems, code=ExitCode.PROBLEMS)


def build_environments(catalog: Catalog, request: Request, echo: Log) -> Outcome:
    """Build what `request` chooses. Nothing is built while an environment it takes on (all
    of them, unless NAMEs are given) does not validate: a stale lock, a folder that does not
    load included."""
    host = (
        naming.required_registry(catalog.repo, request.registry)
        if request.push
        else naming.local_or_registry(catalog.repo, request.registry)
    )
    registry = connect(host, host)
    named = None
    if request.names and not request.changed:
        named = graph.with_ancestors([get(catalog, n).name for n in request.names], catalog.specs)
    try:
        hashes = hash_environments(catalog, None if named is None else sorted(named))
    except EnvrepoError:
        # What hashing cannot read, validate names with its rule (and exit code).
        _refuse_invalid(catalog, named)
        raise
    chosen = planning.to_build(catalog, hashes, registry, request.names, request.changed)
    _refuse_invalid(catalog, None if named is None else set(chosen))
    root = catalog.repo.root
    parent_of = graph.parents(catalog.specs)
    config = [root / CONFIG_FILE] if (root / CONFIG_FILE).is_file() else []
    dirty = frozenset(
        name
        for name in chosen
        if git.differs(
            root, [*config, *(catalog.specs[n].folder for n in graph.chain(name, parent_of))]
        )
    )
    settings = Settings(
        registry=registry,
        push=request.push,
        records=root / ".envrepo" / "builds",
        logs=root / ".envrepo" / "logs",
        commit=git.head_commit(root),
        dirty=dirty,
        specs=catalog.specs,
    )
    builder = Builder(Docker(), settings, echo)
    outcome = Outcome()
    broken: set[str] = set()
    for name in graph.ordered(catalog.specs, chosen):
        spec = catalog.specs[name]
        if broken & set(graph.chain(name, parent_of)[1:]):
            outcome.skipped.append(name)
            broken.add(name)
            continue
        if spec.parent is not None and spec.parent not in builder.refs:
            builder.refs[spec.parent] = naming.by_hash(host, spec.parent, hashes[spec.parent])
        try:
            locked = read_locked(spec, hashes[name], catalog.specs.get(spec.parent or ""))
            outcome.records.append(builder.build(locked))
        except EnvrepoError as error:
            outcome.failed.append(_named(spec, error))
            broken.add(name)
        except Exception as error:  # noqa: BLE001 - a bug with one environment spares the rest
            outcome.failed.append(_named(spec, EnvrepoError(internal_error(error))))
            outcome.internal = True
            broken.add(name)
    return outcome
