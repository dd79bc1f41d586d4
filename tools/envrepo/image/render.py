"""The Dockerfile of an environment: a pure function of the spec, for people to read.

`envrepo build` makes the same filesystem without a Dockerfile build: it assembles the layers
on the host (the virtual environment's skeleton, then one layer per locked distribution,
installed by uv for the image's target, hash-checked, with their bytecode) and loads them onto
the base image, so no wheel file enters a layer, and a changed pin makes one new layer. This
text is what a Docker build would need to do the same, as Azure ML prints the Dockerfile of
an environment for debugging. Labels are left to the build, so that the commit
they name does not change the rendered text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import RENDER_SCHEME, SpecHash, hash_environments
from envrepo.image import bootstrap, naming
from envrepo.inputs.sources import pip_lock
from envrepo.lock.locked import base_image
from envrepo.repo.spec import ENV_PREFIX, Catalog, Spec, get, needs_venv, site_packages


@dataclass(frozen=True)
class Layout:
    """What the staged build context holds: folders under env/ to copy into the prefix."""

    folders: tuple[str, ...] = ()


def dockerfile(spec: Spec, base_ref: str, parent: Spec | None, layout: Layout) -> str:
    lines = [
        f"# envrepo render scheme {RENDER_SCHEME}: {spec.name}",
        "# envrepo build assembles these layers on the host; this builds the same filesystem.",
        f"FROM {base_ref}",
    ]
    if spec.apt:
        packages = " ".join(sorted(set(spec.apt)))
        lines.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            f"{packages} && rm -rf /var/lib/apt/lists/*"
        )
    if spec.conda is not None:
        # A Dockerfile has no comments after an instruction: this one stands above it.
        lines.append("# the packages of conda.lock, linked as the prefix")
        lines.append(f"COPY conda-prefix/ {ENV_PREFIX}/")
    if needs_venv(spec, parent):
        creator = parent.interpreter if parent is not None else "python3"
        lines.append(f"RUN {json.dumps([creator, '-m', 'venv', '--without-pip', ENV_PREFIX])}")
    targets = {
        "site-packages": site_packages(spec),
        "bin": f"{ENV_PREFIX}/bin",
        "share": f"{ENV_PREFIX}/share",
    }
    for folder in layout.folders:
        lines.append(f"COPY env/{folder}/ {targets[folder]}/")
    if "site-packages" in layout.folders and spec.conda is None:
        # Bytecode as the build writes it; packages' own test suites stay sources.
        compiled = [
            spec.interpreter,
            "-m",
            "compileall",
            "-q",
            "-x",
            "/tests/",
            site_packages(spec),
        ]
        lines.append(f"RUN {json.dumps(compiled)}")
    if not spec.user_managed and (parent is None or parent.user_managed):
        # A parent with an environment of its own has set both already.
        lines.append(f"ENV VIRTUAL_ENV={ENV_PREFIX} PATH={ENV_PREFIX}/bin:$PATH")
    for key, value in sorted(spec.variables.items()):
        lines.append(f"ENV {key}={_quoted(spec, key, value)}")
    return "\n".join(lines) + "\n"


def _quoted(spec: Spec, key: str, value: str) -> str:
    """`value` as a Dockerfile reads it back exactly: in double quotes, where a backslash
    escapes a backslash, a quote and a dollar (which would expand a variable otherwise)."""
    if "\n" in value or "\r" in value:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                f"variables.{key}",
                "holds a line break, which a Dockerfile cannot write; envrepo build sets it as "
                "it is, but render cannot print it",
            )
        )
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def base_reference(spec: Spec, hashes: Mapping[str, SpecHash], host: str) -> str:
    """What `FROM` names for `spec` in the Dockerfile `render` prints; `hashes` holds the
    environment's and its parent's."""
    if spec.parent is not None:
        return naming.by_hash(host, spec.parent, hashes[spec.parent])
    if spec.base.bootstrap is not None:
        return bootstrap.image_tag(spec.base.bootstrap)
    if spec.base.kind == "dockerfile":
        return naming.dockerfile_base(spec.name, hashes[spec.name])
    return base_image(spec) or spec.base.value


def for_environment(
    catalog: Catalog, name: str, registry: str | None, layout: Layout | None = None
) -> str:
    """The Dockerfile of environment `name`, its parent's image named in `registry`; what
    it copies is `layout` (a staged context), else what its inputs would stage."""
    spec = get(catalog, name)
    hashes = hash_environments(catalog, [name, *filter(None, [spec.parent])])
    base = base_reference(spec, hashes, registry or "localhost")
    if layout is None:
        has_pip = not spec.user_managed and pip_lock(spec) is not None
        layout = Layout(("site-packages", "bin") if has_pip else ())
    return dockerfile(spec, base, catalog.specs.get(spec.parent or ""), layout)
