"""The index for people: static pages (an overview, one page per environment) readable
without JavaScript. Rendered by Jinja2 with autoescaping on, so every text from a spec, a
commit or a package reaches the page escaped; the only links out are http(s) ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2

from envrepo.index.paths import Document


@cache
def _templates() -> jinja2.Environment:
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("envrepo.publish", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Links between the index's own files: from environments/<name>.html.
    templates.filters["relative"] = lambda path: str(path).removeprefix("environments/")
    return templates


def web_link(url: str | None) -> str | None:
    """`url` when it is an http(s) URL, else None: no javascript:, data: or relative links
    from a setting."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def overview(index: Mapping[str, Any]) -> str:
    environments = sorted(index["environments"].items())
    template = _templates().get_template("overview.html.j2")
    return template.render(environments=environments, updated=index.get("updated"))


def _change(item: Mapping[str, str]) -> str:
    return " ".join((item["name"], " → ".join(v for v in (item.get("from"), item.get("to")) if v)))


def _view(version: Document | None) -> dict[str, Any] | None:
    """What a page shows of one version document, as plain texts (escaped as they are put
    on the page): the diff and the package list per ecosystem. Joined here rather than
    looped over in the template, since a page may list thousands of packages."""
    if version is None:
        return None
    packages = {k: v for k, v in (version.get("packages") or {}).items() if v}
    return {
        "diff": [
            (
                ecosystem,
                "; ".join(
                    f"{kind}: " + ", ".join(_change(item) for item in items)
                    for kind, items in kinds.items()
                ),
            )
            for ecosystem, kinds in (version.get("diff") or {}).items()
        ],
        "packages": [
            (ecosystem, ", ".join(f"{name} {p['version']}" for name, p in found.items()))
            for ecosystem, found in packages.items()
        ],
        "counts": ", ".join(f"{ecosystem} {len(found)}" for ecosystem, found in packages.items()),
    }


def environment(document: Document, versions: Sequence[Document | None]) -> str:
    """The page of one environment, newest version first; `versions` are the version
    documents in the order of the document's releases (None where one cannot be read)."""
    source = web_link(document.get("sourceUrl"))
    views = [_view(version) for version in versions]
    pairs = list(zip(document["releases"], views, strict=True))[::-1]
    return (
        _templates()
        .get_template("environment.html.j2")
        .render(
            doc=document,
            versions=pairs,
            commit_url=f"{source.rstrip('/')}/commit/" if source else None,
            updated=None,
        )
    )
