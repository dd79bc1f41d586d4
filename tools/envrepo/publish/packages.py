"""What a version has installed, as the index tells it: per ecosystem (apt, conda, pip) name →
version, purl, licence and the lock's hashes; checked against the locks before it is
published."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packageurl import PackageURL
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envrepo.errors import EnvrepoError, Problem
from envrepo.index.diff import ECOSYSTEMS, Packages
from envrepo.lock.locked import Locked


def purl(
    ecosystem: str, name: str, version: str, distro: str | None = None, private: str | None = None
) -> str:
    """The package URL of an installed package; a private wheel (`private`: its file's
    sha256) is a generic package of that file, never the PyPI project that may share its name."""
    if private is not None:
        checksum = {"checksum": f"sha256:{private}"}
        return PackageURL("generic", None, canonicalize_name(name), version, checksum).to_string()
    if ecosystem == "apt":
        package, _, arch = name.partition(":")
        qualifiers = {"arch": arch} if arch else {}
        if distro:
            qualifiers["distro"] = distro
        return PackageURL("deb", "debian", package, version, qualifiers or None).to_string()
    if ecosystem == "conda":
        return PackageURL("conda", None, name, version).to_string()
    return PackageURL("pypi", None, canonicalize_name(name), version).to_string()


def from_listing(
    listing: Mapping[str, Mapping[str, list[str | None]]],
    locked: Locked,
    distro: str | None = None,
    private: Mapping[str, str] | None = None,
) -> Packages:
    """The index's package list of one image from what its tests read (`listing`) and its
    locks: every pip and conda package the locks name must be installed at the locked
    version, or publishing stops with a line naming it (apt has no lock: taken as read).
    `private` maps the canonical names of the private wheels it is built with to their
    sha256."""
    private = private or {}
    hashes = _locked_hashes(listing, locked)
    packages: Packages = {}
    for ecosystem in ECOSYSTEMS:
        found: dict[str, dict[str, Any]] = {}
        for name, (version, licence) in sorted((listing.get(ecosystem) or {}).items()):
            key = (ecosystem, _key(ecosystem, name))
            own = private.get(key[1]) if ecosystem == "pip" else None
            entry: dict[str, Any] = {
                "version": version,
                "purl": purl(ecosystem, name, str(version), distro, own),
            }
            if licence:
                entry["license"] = licence
            if key in hashes:
                entry["hashes"] = hashes[key]
            elif own is not None:
                entry["hashes"] = [f"sha256:{own}"]
            found[name] = entry
        packages[ecosystem] = found
    return packages


def _key(ecosystem: str, name: str) -> str:
    return str(canonicalize_name(name)) if ecosystem == "pip" else name


def _same(ecosystem: str, installed: str | None, locked: str) -> bool:
    if installed is None:
        return False
    if ecosystem == "pip":
        try:
            return Version(installed) == Version(locked)
        except InvalidVersion:
            pass
    return installed == locked


def _conda_name_version(url: str) -> tuple[str, str]:
    """A conda package file's name and version, from `name-version-build.conda`."""
    stem = url.rsplit("/", 1)[-1].removesuffix(".conda").removesuffix(".tar.bz2")
    name, version, _build = stem.rsplit("-", 2)
    return name, version


def _locked_hashes(
    listing: Mapping[str, Mapping[str, list[str | None]]], locked: Locked
) -> dict[tuple[str, str], list[str]]:
    spec = locked.spec
    installed = {
        (ecosystem, _key(ecosystem, name)): entry[0]
        for ecosystem in ("pip", "conda")
        for name, entry in (listing.get(ecosystem) or {}).items()
    }
    wanted: list[tuple[str, str, str, list[str], str]] = [
        ("pip", str(canonicalize_name(e.name)), e.version, list(e.hashes), locked.pip_lock or "")
        for e in locked.pip
    ]
    for file in locked.conda:
        name, version = _conda_name_version(file.url)
        wanted.append(("conda", name, version, [f"sha256:{file.sha256}"], locked.conda_lock or ""))
    problems = []
    for ecosystem, name, version, _, lock in wanted:
        has = installed.get((ecosystem, name))
        if not _same(ecosystem, has, version):
            what = "is not installed" if has is None else f"is {has} in the image"
            problems.append(
                Problem(
                    lock or spec.display,
                    name,
                    f"locked at {version} but {what}; build the environment again from its lock",
                )
            )
    if problems:
        raise EnvrepoError(*problems)
    return {(ecosystem, name): hashes for ecosystem, name, _, hashes, _ in wanted}
