"""The conda locker: rattler solves the conda input for every platform of the target.

The lock lists, per platform, the solved packages as explicit URLs with their sha256, in
conda's explicit format (`# platform:` then `@EXPLICIT` then `url#sha256=...`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import cache
from importlib import metadata

import rattler
import rattler.exceptions
from rattler import BuildString, GenericVirtualPackage, PackageName, Version

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import conda as conda_input
from envrepo.inputs.sources import LockInput
from envrepo.repo.platforms import PLATFORMS
from envrepo.repo.spec import Spec, cutoff

# What the target machine offers the solver, matching the manylinux tag pip locks use.
GLIBC = "2.28"
LINUX = "5.10"

RATTLER_ERRORS = tuple(
    value
    for value in vars(rattler.exceptions).values()
    if isinstance(value, type) and issubclass(value, Exception)
)


@cache
def tool_version() -> str:
    return f"py-rattler {metadata.version('py-rattler')}"


def _virtual(platform: str) -> list[GenericVirtualPackage]:
    packages = {"__unix": "0", "__linux": LINUX, "__glibc": GLIBC, "__archspec": "1"}
    builds = {"__archspec": PLATFORMS[platform].machine}
    return [
        GenericVirtualPackage(
            PackageName(name), Version(version), BuildString(builds.get(name, "0"))
        )
        for name, version in packages.items()
    ]


def resolve(spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: object = None) -> str:
    shown = f"{spec.display}/{spec.conda}"
    parsed, problems = conda_input.read_input(item.source, shown)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise EnvrepoError(*errors)
    sections = [f"# channels: {' '.join(parsed.channels)}\n"]
    for platform in sorted(spec.platforms):
        subdir = PLATFORMS[platform].conda_subdir
        try:
            records = asyncio.run(
                rattler.solve(
                    list(parsed.channels),
                    [conda_input.match_spec(p) for p in parsed.packages],
                    platforms=[subdir, "noarch"],
                    virtual_packages=_virtual(platform),
                    constraints=[f"python {spec.python}.*"],
                    exclude_newer=cutoff(spec),
                )
            )
        except rattler.exceptions.GatewayError as error:
            # Channels are fetched before anything in the file is solved: the file is not at
            # fault (a missing package is the solver's error below).
            raise EnvrepoError(
                Problem(
                    item.lock_display(spec),
                    "",
                    (
                        f"{spec.name} cannot be locked: a channel cannot be reached "
                        f"({' '.join(str(error).split())}); that is the network or the channel's "
                        f"server, not {shown}: check the connection and the channel's URL, "
                        "then lock again"
                    ),
                )
            ) from None
        except RATTLER_ERRORS as error:
            raise EnvrepoError(
                Problem(
                    item.lock_display(spec),
                    "",
                    (
                        f"{spec.name} cannot be locked for {platform}: "
                        f"{conda_input.reason(error)}; fix the package or the channel in {shown}"
                    ),
                )
            ) from None
        lines = sorted(
            f"{record.url}#sha256={record.sha256.hex() if record.sha256 else ''}\n"
            for record in records
        )
        sections.append(f"# platform: {subdir}\n@EXPLICIT\n{''.join(lines)}")
    return "\n".join(sections)
