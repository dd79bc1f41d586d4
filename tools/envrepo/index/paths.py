"""Where an index keeps its documents, spelled once for every reader and writer:

index.json                               every environment: latest, description, deprecation
environments/<name>.json                 every version of one environment (Renovate reads it)
environments/<name>/<v>/version.json     its packages and the diff against version v-1
environments/<name>/<v>/sbom.cdx.json    CycloneDX
environments/<name>/<v>/folder.tar.gz    the environment's folder as it was
"""

from __future__ import annotations

from typing import Any

FORMAT = 1
INDEX = "index.json"
INDEX_PAGE = "index.html"

Document = dict[str, Any]


def environment_path(name: str) -> str:
    return f"environments/{name}.json"


def environment_page(name: str) -> str:
    return f"environments/{name}.html"


def version_folder(name: str, number: int) -> str:
    return f"environments/{name}/{number}"


def version_path(name: str, number: int) -> str:
    return f"{version_folder(name, number)}/version.json"


def sbom_path(name: str, number: int) -> str:
    return f"{version_folder(name, number)}/sbom.cdx.json"


def folder_path(name: str, number: int) -> str:
    return f"{version_folder(name, number)}/folder.tar.gz"
