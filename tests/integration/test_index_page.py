"""The HTML index in a real browser: Debian's Chromium, headless, renders the pages without
JavaScript, shows every environment and version, and runs nothing that a description, a
label, a package name or a commit message carries."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from envrepo.index.store import IndexFolder
from envrepo.publish import publisher
from envrepo.publish.index import Release
from support import NOW, release

SCRIPT = '<script>document.title="pwned";document.body.innerHTML="pwned"</script>'
HANDLER = "<img src=x onerror=\"document.title='pwned'\"><b onmouseover=alert(1)>x</b>"


class Elements(HTMLParser):
    """Every element of a rendered page with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(url: str, profile: Path) -> Elements:
    """The page's DOM after Chromium loaded it and ran whatever it would run."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("Debian's chromium is not installed; scripts/test.sh installs it")
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = Elements()
    page.feed(done.stdout)
    return page


def hostile(number: int) -> Release:
    """A version whose every text carries the payloads."""
    return replace(
        release("hostile", number),
        subject=f"{SCRIPT} {HANDLER}",
        description=f"{SCRIPT} {HANDLER}",
        labels={HANDLER: SCRIPT},
        packages={
            "apt": {},
            "conda": {},
            "pip": {
                f"{SCRIPT}{HANDLER}": {"version": f"1.{number}", "purl": "pkg:pypi/x@1"},
                "numpy": {"version": f"2.{number}.0", "purl": f"pkg:pypi/numpy@2.{number}.0"},
            },
        },
    )


def test_the_pages_show_every_version_and_run_no_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVREPO_SOURCE_URL", "javascript:alert(1)")
    index = IndexFolder(tmp_path / "index")
    plain = replace(release("plain", 1), description="ok")
    publisher.apply(index, [hostile(1), plain], (), NOW)
    publisher.apply(index, [hostile(2)], (), NOW)
    overview = rendered((tmp_path / "index/index.html").as_uri(), tmp_path / "profile")
    rows = [attrs.get("id") for tag, attrs in overview.elements if tag == "tr" and attrs.get("id")]
    assert rows == ["hostile", "plain"]
    text = "".join(overview.text)
    assert "Environments" in text and "pwned" not in text.split("Environments")[0]

    page = rendered((tmp_path / "index/environments/hostile.html").as_uri(), tmp_path / "profile")
    text = "".join(page.text)
    title = next(t for t in page.text if t.strip())
    assert title == "hostile"
    versions = [attrs["id"] for tag, attrs in page.elements if tag == "section"]
    assert versions == ["v2", "v1"]
    assert "Version 2 (latest)" in text
    assert "numpy 2.1.0 → 2.2.0" in text
    # The payloads are on the page as text; none of them became an element or a handler.
    assert SCRIPT in text and HANDLER in text
    tags = {tag for tag, _ in page.elements}
    assert "script" not in tags and "img" not in tags
    assert not [a for _, attrs in page.elements for a in attrs if a.startswith("on")]
    links = [attrs.get("href") or "" for tag, attrs in page.elements if tag == "a"]
    assert links and not [link for link in links if ":" in link and not link.startswith("http")]
