"""A version's SBOM in CycloneDX JSON, exact rather than scanned: its components are what
the image's package managers recorded (pip, conda, dpkg), with purls, the lock's hashes and
the licences the metadata states; the base image is a component of its own. Made with
cyclonedx-python-lib, so the document follows the format's own model and serializer."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from envrepo.index.diff import ECOSYSTEMS, Packages

# An SPDX id or expression as such, any other text as a named licence.
LICENCES = LicenseFactory()


def _hashes(values: list[str]) -> list[HashType]:
    return [
        HashType(alg=HashAlgorithm.SHA_256, content=value.split(":", 1)[1])
        for value in values
        if value.startswith("sha256:")
    ]


def sbom(
    name: str,
    version: int,
    image: str,
    packages: Packages,
    base: Mapping[str, Any],
    published: str,
) -> str:
    """The SBOM of version `version` of environment `name`, whose image is `image`
    (repository@digest)."""
    repository, _, digest = image.partition("@")
    # The same version always gets the same serial number: the SBOM names one image.
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"envrepo:{image}"))
    bom.metadata.timestamp = datetime.datetime.fromisoformat(published)
    root = bom.metadata.component = Component(
        name=name,
        version=str(version),
        type=ComponentType.CONTAINER,
        bom_ref=image,
        purl=PackageURL("oci", None, name, digest, {"repository_url": repository}),
    )
    parts = []
    base_ref = base.get("image") or base.get("text")
    if base_ref:
        parts.append(
            Component(
                name=str(base_ref),
                version=str(base.get("version") or base.get("digest") or ""),
                type=ComponentType.CONTAINER,
                bom_ref=f"base:{base_ref}",
                description="the base image",
            )
        )
    for ecosystem in ECOSYSTEMS:
        for package, entry in packages.get(ecosystem, {}).items():
            licence = entry.get("license")
            parts.append(
                Component(
                    name=package,
                    version=str(entry["version"]),
                    type=ComponentType.LIBRARY,
                    bom_ref=str(entry["purl"]),
                    purl=PackageURL.from_string(str(entry["purl"])),
                    hashes=_hashes(list(entry.get("hashes") or [])),
                    licenses=[LICENCES.make_from_string(str(licence))] if licence else None,
                )
            )
    for part in parts:
        bom.components.add(part)
    bom.register_dependency(root, parts)
    return str(JsonV1Dot6(bom).output_as_string(indent=None))
