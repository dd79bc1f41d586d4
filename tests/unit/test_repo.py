"""Pure stages on their own: YAML reading, requirements, the base graph, lock staleness."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from envrepo.errors import EnvrepoError
from envrepo.inputs import requirements
from envrepo.lock import files as lock
from envrepo.repo import graph, schema, schemas
from envrepo.repo.config import open_repository
from envrepo.repo.spec import load_catalog
from envrepo.repo.yamlio import parse_yaml
from support import PROJECT, RepoMaker, git, write_files, write_fresh_lock


def test_merge_keys_may_override_without_being_duplicates() -> None:
    text = "defaults: &d {a: '1', b: '2'}\nvariables:\n  <<: *d\n  b: '3'\n"
    assert parse_yaml(text, "x.yaml")["variables"] == {"a": "1", "b": "3"}


def test_yaml_12_booleans() -> None:
    assert parse_yaml("a: yes\nb: no\nc: on\nd: true\ne: False\n", "x.yaml") == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": True,
        "e": False,
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- " * 5000 + "x\n", "exceeded maximum nesting depth"),
        ("a: 1\na: 2\n", "line 2: duplicate key 'a' (first at line 1); keep only one"),
        ("? [1, 2]\n: x\n", "line 1: key [1, 2] is not a string"),
    ],
)
def test_hostile_yaml_is_one_line(text: str, line: str) -> None:
    with pytest.raises(EnvrepoError) as raised:
        parse_yaml(text, "x.yaml")
    assert len(raised.value.lines) == 1
    assert line in raised.value.lines[0]


def test_requirements_lines_markers_and_continuations(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "r.txt": "a==1 ; python_version < '3.12'  # why\nb[x,y]==2 \\\n  --hash=sha256:00\n-c c.txt\n",
            "c.txt": "a==1\n",
        },
    )
    parsed = requirements.parse(tmp_path / "r.txt", tmp_path, Path("env"))
    # What a -c file holds limits versions and asks for nothing.
    assert [str(r) for r in parsed.requirements] == [
        'a==1; python_version < "3.12"',
        "b[x,y]==2",
    ]
    assert [line.text for line in parsed.lines if line.constraint] == ["a==1"]
    assert parsed.lines[0].comment == "# why"
    assert [f.name for f in parsed.files] == ["r.txt", "c.txt"]
    assert parsed.problems == ()


def test_requirements_include_loop_is_reported(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.txt": "-r b.txt\n", "b.txt": "-r a.txt\n"})
    parsed = requirements.parse(tmp_path / "a.txt", tmp_path, Path("env"))
    assert [p.line() for p in parsed.problems] == [
        "env/b.txt: line 1: -r a.txt includes a file already included; remove the loop"
    ]


def test_waves_put_parents_first(make_repo: RepoMaker) -> None:
    root = make_repo("")
    env = "name: {n}\nbase:\n  environment: {p}\n"
    write_files(
        root,
        {
            "environments/root/environment.yaml": "name: root\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\n",
            "environments/mid/environment.yaml": env.format(n="mid", p="root"),
            "environments/leaf/environment.yaml": env.format(n="leaf", p="mid"),
            "environments/side/environment.yaml": env.format(n="side", p="root"),
            "environments/other/environment.yaml": "name: other\nbase: {image: y@sha256:abababababababababababababababababababababababababababababababab}\n",
        },
    )
    repo, _ = open_repository(root, explicit=True)
    specs = load_catalog(repo).specs
    assert graph.waves(specs) == [["other", "root"], ["mid", "side"], ["leaf"]]
    assert graph.descendants(["mid"], specs) == {"leaf"}
    assert graph.with_ancestors(["leaf"], specs) == {"leaf", "mid", "root"}


def test_lock_goes_stale_when_input_or_target_changes(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": "name: app\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\npip: r.txt\n",
            "environments/app/r.txt": "-r more.txt\n",
            "environments/app/more.txt": "a==1\n",
        },
    )
    spec = write_fresh_lock(root, "app", "a==1\n")
    repo, _ = open_repository(root, explicit=True)
    assert lock.stale_locks(spec, []) == []
    (root / "environments/app/more.txt").write_text("a==2\n")
    assert [p.message.split(":")[0] for p in lock.stale_locks(spec, [])] == ["is stale"]
    (root / "environments/app/more.txt").write_text("a==1\n")
    (root / "environments/app/environment.yaml").write_text(
        'name: app\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\npip: r.txt\npython: "3.12"\n'
    )
    spec = load_catalog(repo).specs["app"]
    assert [p.message.split(":")[0] for p in lock.stale_locks(spec, [])] == ["is stale"]


def spec_documents() -> list[Path]:
    return sorted((PROJECT / "tests/corpus").rglob("environment.yaml")) + sorted(
        (PROJECT / "environments").rglob("environment.yaml")
    )


def test_fast_validator_agrees_with_jsonschema() -> None:
    import fastjsonschema

    from envrepo.repo import schema, schemas

    checked = 0
    for path in spec_documents():
        try:
            document = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        except (EnvrepoError, UnicodeDecodeError):
            continue
        try:
            schema._fast(schemas.ENVIRONMENT)(document)
            fast_valid = True
        except fastjsonschema.JsonSchemaValueException:
            fast_valid = False
        slow_valid = not list(schema._validator(schemas.ENVIRONMENT).iter_errors(document))
        assert fast_valid == slow_valid, path
        checked += 1
    assert checked >= 30


def test_git_names_the_commit_and_which_folders_differ(make_repo: RepoMaker) -> None:
    from envrepo.repo.git import differs, head_commit

    root = make_repo()
    write_files(root, {"environments/a/x.txt": "1\n", "environments/b/x.txt": "1\n"})
    folders = [root / "environments/a", root / "environments/b"]
    assert head_commit(root) is None
    assert differs(root, folders[:1])  # new files count until committed
    git("add", "-A", cwd=root)
    git("commit", "-qm", "start", cwd=root)
    assert head_commit(root) == git("rev-parse", "HEAD", cwd=root)
    assert not differs(root, folders)
    (root / "environments/b/x.txt").write_text("2\n")
    assert (differs(root, folders[:1]), differs(root, folders[1:])) == (False, True)
    (root / "environments/a/new.txt").write_text("new\n")
    assert differs(root, folders[:1])
    assert head_commit(root.parent) is None  # not a git work tree


def _documents() -> list[tuple[str, object]]:
    """Every spec and config of the corpus and the curated tree that envrepo's own YAML reader
    takes (an alias bomb, say, it refuses before any schema sees it)."""
    found: list[tuple[str, object]] = []
    for path in sorted(
        [*PROJECT.glob("tests/corpus/*/repo/**/*.yaml"), *PROJECT.glob("environments/*/*.yaml")]
    ):
        schema_name = {"environment.yaml": schemas.ENVIRONMENT, "envrepo.yaml": schemas.CONFIG}.get(
            path.name
        )
        if schema_name is None or path.is_symlink() or not path.is_file():
            continue
        try:
            found.append((schema_name, parse_yaml(path.read_text(), str(path))))
        except (EnvrepoError, UnicodeDecodeError):
            continue
    return found


def _mutations(document: object) -> list[object]:
    """Documents a field away from `document`: each top-level field of another type, or gone."""
    if not isinstance(document, dict):
        return []
    wrong: list[object] = [7, "x", [], {}, None, [{"a": 1}], True]
    found: list[object] = []
    for key in document:
        found.append({k: v for k, v in document.items() if k != key})
        found += [{**document, key: value} for value in wrong]
    return found


def test_the_fast_schema_path_and_jsonschema_agree_on_the_corpus_and_its_mutations() -> None:
    import fastjsonschema

    checked = 0
    for schema_name, document in _documents():
        for candidate in [document, *_mutations(document)]:
            try:
                schema._fast(schema_name)(candidate)
                fast = True
            except fastjsonschema.JsonSchemaValueException:
                fast = False
            assert fast == (not list(schema._validator(schema_name).iter_errors(candidate))), (
                schema_name,
                candidate,
            )
            checked += 1
    assert checked > 1000


def test_a_malformed_package_row_of_a_build_record_is_refused_by_both_paths() -> None:
    import fastjsonschema

    rows = {"numpy": ["2.0", None], "bad": [3, "MIT"], "short": ["1.0"]}
    installed = schemas.load(schemas.BUILD_RECORD)["$defs"]["installed"]
    draft7 = {**schema._draft7(installed), "$schema": "http://json-schema.org/draft-07/schema#"}
    for name, row in rows.items():
        fast = fastjsonschema.compile(draft7)
        try:
            fast({name: row})
            accepted = True
        except fastjsonschema.JsonSchemaValueException:
            accepted = False
        errors = list(Draft202012Validator(installed).iter_errors({name: row}))
        assert accepted == (name == "numpy") == (not errors), (name, row)


def test_a_damaged_validator_in_the_cache_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bad = {"name": 7, "base": {"image": "python:3.11-slim"}}
    schema._fast.cache_clear()
    first = schema.violations(bad, schemas.ENVIRONMENT, "environment.yaml")
    [kept] = (tmp_path / "envrepo/schemas").glob("validator_*.py")
    kept.write_text("def validate(data:\n")
    schema._fast.cache_clear()
    assert schema.violations(bad, schemas.ENVIRONMENT, "environment.yaml") == first
    assert first, "the document is a field away from the schema"
    assert kept.read_text().startswith('VERSION = "'), "the damaged copy was made again"
    schema._fast.cache_clear()
