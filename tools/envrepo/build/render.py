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
from dataclasses import dataclass

from envrepo.hashing import RENDER_SCHEME
from envrepo.repo.spec import Spec

ENV_PREFIX = "/opt/env"


@dataclass(frozen=True)
class Layout:
    """What the staged build context holds: folders under env/ to copy into the prefix."""

    folders: tuple[str, ...] = ()


def python_dir(spec: Spec) -> str:
    major_minor = ".".join(spec.python.split(".")[:2])
    return f"{ENV_PREFIX}/lib/python{major_minor}/site-packages"


def needs_venv(spec: Spec, parent: Spec | None) -> bool:
    """A virtual environment is made once, by the first environment of a chain that has one."""
    if spec.user_managed or spec.conda is not None:
        return False
    return parent is None or parent.user_managed


def render(spec: Spec, base_ref: str, parent: Spec | None, layout: Layout) -> str:
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
        lines.append(f"COPY conda-prefix/ {ENV_PREFIX}/  # the packages of conda.lock, linked")
    if needs_venv(spec, parent):
        creator = parent.interpreter if parent is not None else "python3"
        lines.append(f"RUN {json.dumps([creator, '-m', 'venv', '--without-pip', ENV_PREFIX])}")
    targets = {
        "site-packages": python_dir(spec),
        "bin": f"{ENV_PREFIX}/bin",
        "share": f"{ENV_PREFIX}/share",
    }
    for folder in layout.folders:
        lines.append(f"COPY env/{folder}/ {targets[folder]}/")
    if "site-packages" in layout.folders and spec.conda is None:
        # Bytecode as the build writes it; packages' own test suites stay sources.
        compiled = [spec.interpreter, "-m", "compileall", "-q", "-x", "/tests/", python_dir(spec)]
        lines.append(f"RUN {json.dumps(compiled)}")
    if not spec.user_managed:
        lines.append(f"ENV VIRTUAL_ENV={ENV_PREFIX} PATH={ENV_PREFIX}/bin:$PATH")
    for key, value in sorted(spec.variables.items()):
        lines.append(f"ENV {key}={json.dumps(value)}")
    return "\n".join(lines) + "\n"
