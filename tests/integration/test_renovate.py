"""An environment's document is what Renovate's custom datasource reads without transforms:
checked with Renovate's own schema (its `ReleaseResultZod`, from the renovate package on npm,
with the zod and luxon versions its package.json pins) run by node."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from envrepo.index.store import IndexFolder
from envrepo.publish import publisher
from envrepo.publish.index import Deprecation
from support import NOW, release

RENOVATE = "44.121.2"
# Renovate's timestamp schema imports only isString from it; 7.x is the line that runs on
# the node of Debian 12 (>= 18), where Renovate's own pin (8.x) asks for node 22.
IS = "7.2.0"
CHECK = """
import { readFileSync } from "node:fs";
import { ReleaseResultZod } from "./dist/modules/datasource/custom/schema.js";
const parsed = ReleaseResultZod.safeParse(JSON.parse(readFileSync(process.argv[2], "utf8")));
console.log(JSON.stringify(parsed.success ? { data: parsed.data } : { error: parsed.error.issues }));
"""


def _npm(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["npm", "--no-audit", "--no-fund", "--loglevel=error", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def renovate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Renovate's package as npm publishes it, with the modules its datasource schema
    imports installed beside it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are not installed; scripts/test.sh installs them")
    folder = tmp_path_factory.mktemp("renovate")
    _npm("pack", f"renovate@{RENOVATE}", cwd=folder)
    with tarfile.open(folder / f"renovate-{RENOVATE}.tgz") as archive:
        archive.extractall(folder)
    pins = json.loads((folder / "package/package.json").read_text())["dependencies"]
    _npm(
        "install",
        "--ignore-scripts",
        f"zod@{pins['zod']}",
        f"luxon@{pins['luxon']}",
        f"@sindresorhus/is@{IS}",
        cwd=folder,
    )
    (folder / "package/check.mjs").write_text(CHECK)
    return folder / "package"


def test_renovate_reads_an_environment_document_as_it_is(renovate: Path, tmp_path: Path) -> None:
    store = IndexFolder(tmp_path / "index")

    index_url = "https://index.example/ml"
    publisher.apply(store, [release("team-env", 1)], (), NOW, index_url)
    publisher.apply(
        store,
        [release("team-env", 2)],
        (Deprecation("team-env", 1, "has a CVE", "team-env@2", "2026-11-30"),),
        NOW,
        index_url,
    )
    document = tmp_path / "index/environments/team-env.json"
    done = subprocess.run(
        ["node", "check.mjs", str(document)],
        cwd=renovate,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert "error" not in result, result
    releases = result["data"]["releases"]
    assert [r["version"] for r in releases] == ["1", "2"]
    assert [r["newDigest"] for r in releases] == [f"sha256:{n:064x}" for n in (1, 2)]
    assert [r["isDeprecated"] for r in releases] == [True, False]
    # Renovate drops a timestamp it cannot read (to null) rather than fail: ours it reads.
    assert all(r["releaseTimestamp"] == "2026-11-30T04:00:00.000Z" for r in releases)
    assert releases[1]["changelogUrl"] == f"{index_url}/environments/team-env.html#v2"
    assert result["data"]["homepage"] == f"{index_url}/environments/team-env.html"


def test_the_readme_configuration_is_renovate_s_and_finds_the_pins(renovate: Path) -> None:
    """The README's Renovate configuration passes Renovate's configuration schema, and its
    pattern finds every pin of a real envrepo.lock with its version."""
    import re

    import jsonschema

    from envrepo.consume import lockfile
    from envrepo.consume.lockfile import Pin, Pins
    from support import PROJECT

    readme = (PROJECT / "README.md").read_text()
    block = readme.split("A configuration for a consumer's")[1].split("```json\n")[1]
    config = json.loads(block.split("```")[0])
    schema = json.loads((renovate / "renovate-schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(config)

    digest = "sha256:" + "a" * 64
    pins = {
        name: Pin(
            name,
            version,
            "b" * 64,
            f"registry.example/{name}@{digest}",
            digest,
            {"linux/amd64": digest},
            "c" * 40,
            "2026-11-30T04:00:00+00:00",
            "https://x",
        )
        for name, version in (("envrepo-tutorial", 3), ("team.env_2", 12))
    }
    lockfile.write(renovate.parent, Pins(pins))
    text = (renovate.parent / lockfile.LOCK_FILE).read_text()
    [manager] = config["customManagers"]
    pattern = manager["matchStrings"][0].replace("(?<", "(?P<")
    found = {m["depName"]: int(m["currentValue"]) for m in re.finditer(pattern, text)}
    assert found == {"envrepo-tutorial": 3, "team.env_2": 12}
