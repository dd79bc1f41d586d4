"""Private wheels: checked against their own metadata, and served to the resolver as an index
of their own, so that a private name can never resolve to a same-named public package."""

from __future__ import annotations

import hashlib
import html
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from envrepo.errors import EnvrepoError, Problem


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def inspect(path: Path, display: str) -> Wheel:
    """The wheel at `path`, refused when it is corrupt or its name disagrees with its metadata."""
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        raise EnvrepoError(
            Problem(
                display,
                "",
                (
                    "is not a valid wheel file name (name-version-python-abi-platform.whl); "
                    "rename it as the wheel's metadata says"
                ),
            )
        ) from None
    try:
        with zipfile.ZipFile(path) as archive:
            metadata_names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            if len(metadata_names) != 1:
                raise EnvrepoError(
                    Problem(
                        display,
                        "",
                        ("holds no single .dist-info/METADATA, so it is not a wheel; rebuild it"),
                    )
                )
            broken = archive.testzip()
            if broken is not None:
                raise EnvrepoError(
                    Problem(
                        display,
                        "",
                        (f"is corrupt ({broken} fails its checksum); rebuild or download it again"),
                    )
                )
            metadata = HeaderParser().parsestr(archive.read(metadata_names[0]).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as error:
        raise EnvrepoError(
            Problem(display, "", (f"is corrupt ({error}); rebuild or download it again"))
        ) from None
    meta_name, meta_version = metadata.get("Name", ""), metadata.get("Version", "")
    if canonicalize_name(meta_name) != name or Version(meta_version or "0") != version:
        raise EnvrepoError(
            Problem(
                display,
                "",
                (
                    f"is named {name} {version} but its metadata says {meta_name} {meta_version}; "
                    "rename the file as its metadata says or rebuild it"
                ),
            )
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Wheel(path, str(name), str(version), digest)


def write_index(wheels: list[Wheel], root: Path) -> str:
    """A PEP 503 simple index of `wheels` under `root`; its file:// URL."""
    for name in sorted({w.name for w in wheels}):
        links = "".join(
            f'<a href="{html.escape(w.path.resolve().as_uri())}#sha256={w.sha256}">'
            f"{html.escape(w.path.name)}</a>\n"
            for w in wheels
            if w.name == name
        )
        page = root / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return root.resolve().as_uri()


def placeholder(name: str, version: str, folder: Path) -> Wheel:
    """A wheel of metadata only, standing for a published base's private wheel while an
    environment built on it is resolved: the base image holds the file, and its name must
    resolve without asking a package index. It never reaches a lock (the base pins it)."""
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/RECORD": "",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return inspect(path, path.name)
