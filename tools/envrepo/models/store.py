"""Models in the registry: registered as an OCI artifact (one tar layer, the empty config, the
run's provenance as annotations) under the next `v<N>` tag of `models/<name>`, the same
content twice being one version; listed, shown and downloaded hash-checked."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from envrepo.engine import oci
from envrepo.engine.registry import Registry, Upload
from envrepo.errors import EnvrepoError, Problem
from envrepo.image.shared_layers import empty_config
from envrepo.models import artifact
from envrepo.models.artifact import Reference
from envrepo.repo.files import cache_dir, exclusive

TAKE_TURNS = 3  # a version another registrar took meanwhile is passed over this often


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    digest: str
    new: bool


@dataclass(frozen=True)
class Shown:
    name: str
    version: int
    digest: str
    size: int
    annotations: dict[str, str]


def register(registry: Registry, name: str, source: Path, from_run: bool) -> Registered:
    """`source` (a file or folder, or a run's output folder) as the next version of `name`;
    the version that has this very content when there is one."""
    artifact.checked_name(name)
    record, metrics = artifact.run_record(source) if from_run else (None, {})
    entries = artifact.members(source, from_run)
    repository = artifact.repository(name)
    folder = cache_dir("models")
    with exclusive(folder / f".{name}.lock"), tempfile.TemporaryDirectory(dir=folder) as scratch:
        tar = Path(scratch) / "model.tar"
        try:
            with tar.open("wb") as out:
                artifact.write_tar(entries, out)
        except OSError as error:
            raise EnvrepoError(
                Problem(str(source), "", f"cannot be read ({error.strerror or error}); check it")
            ) from None
        layer = Upload(_sha256(tar), tar.stat().st_size, tar, artifact.LAYER_TYPE)
        notes = artifact.provenance(name, record, metrics)
        config = empty_config(registry, repository)
        body = oci.manifest_body(config, [layer], oci.OCI_MANIFEST, notes, artifact.ARTIFACT_TYPE)
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        known = artifact.versions(registry.tags(repository))
        for version in reversed(known):
            if registry.manifest_digest(repository, artifact.version_tag(version)) == digest:
                return Registered(name, version, digest, False)
        registry.put_blobs(repository, [layer])
        version = (known[-1] if known else 0) + 1
        # Versions are never moved: one taken since the listing (another machine) is passed.
        for _ in range(TAKE_TURNS):
            tag = artifact.version_tag(version)
            if registry.manifest_digest(repository, tag) is None:
                registry.put_manifest(
                    repository,
                    config,
                    [layer],
                    oci.OCI_MANIFEST,
                    [tag],
                    notes,
                    artifact.ARTIFACT_TYPE,
                )
                return Registered(name, version, digest, True)
            version += 1
        raise EnvrepoError(
            f"model {name}: other registrations keep taking its next version; try again"
        )


def versions(registry: Registry, name: str) -> list[int]:
    return artifact.versions(registry.tags(artifact.repository(artifact.checked_name(name))))


def names(registry: Registry) -> list[str]:
    """Every model the registry holds."""
    prefix = artifact.repository("")
    return [repo[len(prefix) :] for repo in registry.repositories() if repo.startswith(prefix)]


def show(registry: Registry, reference: Reference) -> Shown:
    """The model `reference` names (its latest version without one), from its manifest."""
    return _found(registry, reference)[0]


def download(registry: Registry, reference: Reference, target: Path) -> tuple[Shown, list[str]]:
    """The model's files in `target` (made now; it must not exist or be empty), checked
    against their digest before any is written there; what was written."""
    found, layer = _found(registry, reference)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise EnvrepoError(Problem(str(target), "-d", "is not an empty folder; give a new one"))
    try:
        return found, _unpacked(registry, found, layer, target)
    except OSError as error:
        raise EnvrepoError(
            Problem(
                str(target), "-d", f"cannot be written ({error.strerror or error}); give another"
            )
        ) from None


def _unpacked(registry: Registry, found: Shown, layer: str, target: Path) -> list[str]:
    """The tar `layer` streamed beside `target` and hashed on the way, then unpacked and put
    in place whole."""
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{target.name}-") as scratch:
        tar = Path(scratch) / "model.tar"
        came = hashlib.sha256()
        with tar.open("wb") as out:
            for chunk in registry.blob(artifact.repository(found.name), layer):
                came.update(chunk)
                out.write(chunk)
        if f"sha256:{came.hexdigest()}" != layer:
            raise EnvrepoError(
                f"model {found.name}@{found.version}: what the registry sent does not match "
                f"{layer}; nothing was written"
            )
        unpacked = Path(scratch) / "files"
        unpacked.mkdir()
        with tar.open("rb") as handle:
            written = artifact.unpack(handle, unpacked)
        if target.exists():
            target.rmdir()
        unpacked.replace(target)
    return written


def fetch(registry: Registry, reference: Reference) -> tuple[Shown, Path]:
    """The model's files in envrepo's cache, downloaded once per manifest digest."""
    found = show(registry, reference)
    folder = cache_dir("models") / found.digest.removeprefix("sha256:")
    if not folder.is_dir():
        # A download lands whole or not at all: the folder's presence means it is complete.
        download(registry, reference, folder)
    return found, folder


def _version(registry: Registry, reference: Reference) -> int:
    known = versions(registry, reference.name)
    if not known:
        raise EnvrepoError(
            Problem(
                reference.name, "", "is no model in the registry; envrepo model register it first"
            )
        )
    if reference.version is None:
        return known[-1]
    if reference.version not in known:
        raise EnvrepoError(
            Problem(
                f"{reference.name}@{reference.version}",
                "",
                f"is no version of the model; it has {', '.join(map(str, known))}",
            )
        )
    return reference.version


def _found(registry: Registry, reference: Reference) -> tuple[Shown, str]:
    """The version `reference` names, from its manifest, and the digest of its tar."""
    name = reference.name
    version = _version(registry, reference)
    repository, tag = artifact.repository(name), artifact.version_tag(version)
    manifest = registry.manifest(repository, tag)
    digest = registry.manifest_digest(repository, tag)
    if (
        manifest is None
        or digest is None
        or manifest.get("artifactType") != artifact.ARTIFACT_TYPE
        or len(manifest.get("layers") or []) != 1
    ):
        raise EnvrepoError(
            Problem(f"{name}@{version}", "", "is not a model envrepo registered; it cannot be read")
        )
    [layer] = manifest["layers"]
    notes = dict(manifest.get("annotations") or {})
    return Shown(name, version, digest, int(layer["size"]), notes), str(layer["digest"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
