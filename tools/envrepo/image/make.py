"""Making an environment's image now: its base, apt packages, the venv's skeleton, conda
packages and one layer per pip distribution (only those not made before are installed and
compiled), loaded into the daemon untagged."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from envrepo.engine.docker import Docker, ImageInfo
from envrepo.engine.registry import Registry
from envrepo.errors import EnvrepoError, Problem
from envrepo.image import bases, shared_layers
from envrepo.image.assemble import environment, image_config, load_image, present_chains
from envrepo.image.attempt import Attempt
from envrepo.image.bytecode import compile_staged
from envrepo.image.checks import Python, installed_in, probe_python
from envrepo.image.find import Found
from envrepo.image.layers import Layer, conda_layers, is_cached, package_layers, venv_layer
from envrepo.image.stage import bytecode_jobs, packages, stage
from envrepo.image.stage_conda import stage_conda
from envrepo.lock.locked import Locked
from envrepo.repo.spec import ENV_PREFIX, needs_venv, python_agrees, site_packages

Auth = Callable[[str], "dict[str, str] | None"]
NAME_LABEL = "dev.envrepo.name"


def labels(locked: Locked) -> dict[str, str]:
    """What the image itself says of where it comes from: only what its spec hash covers, so
    that one hash is one image; the commit, the build time and the description belong to the
    tags, the build record and the index."""
    return {NAME_LABEL: locked.spec.name, "dev.envrepo.hash": locked.spec_hash.value}


def make(
    engine: Docker,
    registry: Registry,
    shared: bool,
    refs: Mapping[str, str],
    auth: Auth,
    locked: Locked,
    attempt: Attempt,
) -> Found:
    """The image, made and loaded; `shared` says whether layers other builds pushed to the
    registry's shared repository may be fetched instead of made."""
    spec, log = locked.spec, attempt.log
    with (
        tempfile.TemporaryDirectory(prefix=f"envrepo-build-{spec.name}-") as scratch,
        ExitStack() as stack,
    ):
        context = Path(scratch)
        base_ref = bases.reference(engine, locked, refs, log)
        base = bases.ensure(engine, base_ref, auth(base_ref), log)
        if spec.apt:
            from envrepo.image import apt

            with attempt.timed("apt"):
                base = stack.enter_context(apt.installed(engine, base, spec.apt, log))
        with attempt.timed("stage"):
            layers = _layers(engine, registry if shared else None, locked, base, context, attempt)
        for layer in layers:
            log(
                f"layer {layer.diff_id[7:19]} {layer.size / 1e6:7.1f} MB  "
                f"{'made ' if layer.made else 'cached'}  {layer.created_by}"
            )
        variables = dict(spec.variables)
        if not spec.user_managed:
            variables = {"VIRTUAL_ENV": ENV_PREFIX, **variables}
        env = environment(base.env, None if spec.user_managed else f"{ENV_PREFIX}/bin", variables)
        config = image_config(base.attrs, layers, env, labels(locked))
        with attempt.timed("build"):
            # Earlier versions of the environment share most layers with this one, and other
            # environments the lower ones (every image envrepo made carries its name label):
            # what the daemon has is not sent to it again.
            present = present_chains(engine, [base.id, *engine.labelled(NAME_LABEL)])
            image_id = load_image(engine, config, layers, present)
            attempt.untagged = image_id
        log(f"assembled {image_id[:19]} on {base_ref}")
    return Found("built", local=image_id, tars={layer.diff_id: layer.path for layer in layers})


def _layers(
    engine: Docker,
    shared: Registry | None,
    locked: Locked,
    base: ImageInfo,
    context: Path,
    attempt: Attempt,
) -> list[Layer]:
    """The layers the environment adds to its base: the venv's skeleton, the conda
    packages, one per pip distribution."""
    spec = locked.spec
    site = PurePosixPath(site_packages(spec))
    venv = needs_venv(spec, locked.parent)
    python = _python(engine, locked, base, venv)
    layers = []
    if venv and python is not None:
        layers.append(venv_layer(python.path, python.version, site, attempt.log))
    conda_prefix = stage_conda(locked, context / "prefix")
    if conda_prefix is not None:
        layers += conda_layers(conda_prefix, attempt.log)
    return layers + _pip_layers(engine, shared, locked, base, python, site, context, attempt)


def _pip_layers(
    engine: Docker,
    shared: Registry | None,
    locked: Locked,
    base: ImageInfo,
    python: Python | None,
    site: PurePosixPath,
    context: Path,
    attempt: Attempt,
) -> list[Layer]:
    """A layer per locked pip distribution; only those not made before are installed and
    compiled."""
    log = attempt.log
    cache_tag = python.cache_tag if python is not None else None
    base_has = installed_in(engine, base.id, python, str(site)) if python and locked.pip else {}
    wanted = packages(locked, site, cache_tag, base_has)
    missing = [package for package in wanted if not is_cached(package.key, log)]
    if missing and shared is not None:
        fetched = shared_layers.fetch(shared, [p.key for p in missing], log)
        missing = [package for package in missing if package.key not in fetched]
    target = stage(locked, context, missing) if missing else None
    if target is not None and python is not None and cache_tag is not None:
        with attempt.timed("compile"):
            jobs = bytecode_jobs(target, context, site)
            compile_staged(engine, base.id, python, context, jobs)
        log(f"compiled {len(jobs)} files to bytecode for {python.path}")
    return package_layers(wanted, target, site, locked.direct, cache_tag, log=log)


def _python(engine: Docker, locked: Locked, base: ImageInfo, venv: bool) -> Python | None:
    """The interpreter the environment's packages are for: the one its venv is made from,
    or the environment's own. None when it installs no packages or has none yet (a conda
    environment's python comes with its packages)."""
    spec, parent = locked.spec, locked.parent
    if not venv and not locked.installs_pip:
        return None
    command = (
        (parent.interpreter if parent is not None else "python3") if venv else spec.interpreter
    )
    found = probe_python(engine, base.id, command)
    if found is None:
        if not venv:
            return None
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "base",
                (
                    f"the base image has no working {command} to make the environment's venv; "
                    "use a base with python3, or user_managed: true"
                ),
            )
        )
    if not python_agrees(found.version, spec.python):
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "python",
                (
                    f"is {spec.python!r} but the base image's python is {found.version}; "
                    "make them agree"
                ),
            )
        )
    return found
