"""The Docker Engine: every call envrepo makes to it, through docker-py. A container is
removed whatever happens, Ctrl-C included; an engine error reaches the caller as one line."""

from __future__ import annotations

import io
import json
import posixpath
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from envrepo.errors import EnvrepoError, signals_deferred

Log = Callable[[str], None]
Mounts = Mapping[str, Mapping[str, str]]
RUN_TIMEOUT = 600
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageInfo:
    """What the daemon says of an image: its ID and its config as `docker inspect` shows it."""

    id: str
    attrs: Mapping[str, Any]

    @property
    def layers(self) -> list[str]:
        return list(self.attrs["RootFS"]["Layers"])

    @property
    def env(self) -> list[str]:
        return list((self.attrs.get("Config") or {}).get("Env") or [])

    @property
    def size(self) -> int | None:
        size = self.attrs.get("Size")
        return int(size) if size is not None else None


class _Chunks(io.RawIOBase):
    """A stream of byte chunks read as a file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.left:
            self.left = next(self.chunks, b"")
            if not self.left:
                return 0
        size = min(len(buffer), len(self.left))
        buffer[:size] = self.left[:size]
        self.left = self.left[size:]
        return size


def _explain(error: docker.errors.DockerException) -> str:
    if isinstance(error, docker.errors.APIError):
        return str(error.explanation or error)
    return str(error)


class Docker:
    """One connection to the daemon."""

    def __init__(self) -> None:
        try:
            self.client = docker.from_env(version="auto", timeout=900)
            self.client.ping()
        except docker.errors.DockerException as error:
            raise EnvrepoError(
                f"Docker does not answer ({error.__class__.__name__}); start the Docker Engine "
                "(dockerd, or `systemctl start docker`) or set DOCKER_HOST to one that answers"
            ) from None

    def image(self, reference: str) -> ImageInfo | None:
        try:
            found = self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            return None
        return ImageInfo(str(found.id), found.attrs)

    def labelled(self, label: str) -> list[str]:
        """The IDs of the images that carry `label`."""
        return [str(found.id) for found in self.client.images.list(filters={"label": label})]

    def tagged(self, name: str, tag: str) -> str | None:
        """A reference of the daemon's for `name:tag` under any registry host, if it has one."""
        wanted = f"/{name}:{tag}"
        for found in self.client.images.list(filters={"reference": f"*{wanted}"}):
            return next((t for t in found.tags if t.endswith(wanted)), str(found.id))
        return None

    def forget(self, image: str) -> None:
        """Remove `image` (and its layers no other image uses) when nothing else needs it."""
        with suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.images.remove(image, noprune=False)

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.client.images.get(image).tag(repository, tag)

    def pull(self, reference: str, auth: Mapping[str, str] | None) -> ImageInfo:
        try:
            found = self.client.images.pull(reference, auth_config=dict(auth) if auth else None)
        except docker.errors.APIError as error:
            raise EnvrepoError(
                f"the image {reference} cannot be pulled: {_explain(error)}"
            ) from None
        return ImageInfo(str(found.id), found.attrs)

    def build(self, folder: Path, dockerfile: str, tag: str, log: Log) -> str:
        """`docker build` of `folder` with the network off; the image ID."""
        image_id = None
        try:
            for chunk in self.client.api.build(
                path=str(folder),
                dockerfile=dockerfile,
                tag=tag,
                rm=True,
                forcerm=True,
                network_mode="none",
                decode=True,
                pull=False,
            ):
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        log(line)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    raise EnvrepoError(f"the build failed: {chunk['error'].strip()}")
        except docker.errors.APIError as error:
            raise EnvrepoError(f"the build failed: {_explain(error)}") from None
        if image_id is None:
            raise EnvrepoError("the build produced no image; see the build log")
        return str(image_id)

    def load(self, archive: Iterable[bytes]) -> None:
        """`docker load` of a tar archive streamed from `archive`."""
        load_image: Callable[..., Iterator[dict[str, Any]]] = self.client.api.load_image
        try:
            for chunk in load_image(archive, quiet=True):
                if "error" in chunk:
                    raise EnvrepoError(f"docker load of the new image failed: {chunk['error']}")
        except docker.errors.APIError as error:
            raise EnvrepoError(f"docker load of the new image failed: {_explain(error)}") from None
        except FileNotFoundError as error:
            raise EnvrepoError(
                f"docker load of the new image failed: {error.filename} went away while it "
                "was read (the layer cache was removed?); build again"
            ) from None

    def save(self, image: str) -> IO[bytes]:
        """`docker save` of `image`: a tar archive to read once, front to back."""
        try:
            chunks = self.client.api.get_image(image, chunk_size=COPY_CHUNK)
        except docker.errors.APIError as error:
            raise EnvrepoError(f"docker save of {image[:19]} failed: {_explain(error)}") from None
        return io.BufferedReader(_Chunks(iter(chunks)), COPY_CHUNK)

    def import_folder(self, folder: Path, tag: str, mtime: int) -> None:
        """`docker import` of a root filesystem in `folder` as `tag`: a tar with its entries
        sorted, owned by root and no newer than `mtime`, so that the same files give the same
        layer."""
        command = [
            "tar",
            "-C",
            str(folder),
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            f"--mtime=@{mtime}",
            "--clamp-mtime",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "-c",
            ".",
        ]
        repository, _, version = tag.rpartition(":")
        with (
            tempfile.TemporaryFile() as said,
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=said) as tar,
        ):
            assert tar.stdout is not None
            chunks = iter(partial(tar.stdout.read, COPY_CHUNK), b"")
            try:
                answer = self.client.api.import_image_from_stream(
                    chunks, repository=repository, tag=version
                )
            except docker.errors.DockerException as error:
                tar.kill()
                raise EnvrepoError(
                    f"docker import of {folder.name} failed: {_explain(error)}"
                ) from None
            except BaseException:
                tar.kill()
                raise
            # The daemon takes whatever tar sent: a tar that failed half way made a root with
            # files missing, which is not kept.
            if tar.wait() != 0:
                self.forget(tag)
                said.seek(0)
                reason = said.read().decode(errors="replace").strip().splitlines()
                raise EnvrepoError(
                    f"tar of {folder} failed ({reason[-1] if reason else f'exit {tar.returncode}'}); "
                    "build again"
                )
        for line in str(answer).splitlines():
            message = json.loads(line) if line.strip().startswith("{") else {}
            if message.get("error"):
                self.forget(tag)
                raise EnvrepoError(f"docker import of {folder.name} failed: {message['error']}")

    @contextmanager
    def _container(self, **options: Any) -> Iterator[Container]:
        container = None
        try:
            # A Ctrl-C while the daemon makes the container waits for its ID: the container
            # is made either way, and is removed below only when its ID is known.
            with signals_deferred():
                container = self.client.containers.create(**options)
            yield container
        except docker.errors.APIError as error:
            if container is None:
                raise EnvrepoError(f"a container cannot be made: {_explain(error)}") from None
            raise
        finally:
            if container is not None:
                with suppress(docker.errors.NotFound):
                    container.remove(force=True)

    def _start(self, image: str, command: list[str], mounts: Mounts, user: str) -> Any:
        return self._container(
            image=image,
            command=command,
            network_disabled=True,
            volumes={host: dict(bind) for host, bind in mounts.items()},
            user=user,
        )

    def run(
        self,
        image: str,
        command: list[str],
        mounts: Mounts | None = None,
        user: str = "",
        timeout: int = RUN_TIMEOUT,
    ) -> tuple[int, str]:
        """Run `command` in `image` with the network off: its exit code and output."""
        code, output = self.run_limited(image, command, mounts or {}, timeout, user)
        if code is None:
            raise EnvrepoError(f"{' '.join(command[:2])} in {image[:19]} ran past {timeout} s")
        return code, output

    def run_limited(
        self, image: str, command: list[str], mounts: Mounts, timeout: float, user: str = ""
    ) -> tuple[int | None, str]:
        """Run `command` in `image` with the network off for at most `timeout` seconds: its
        exit code (None when it was stopped at the timeout) and its output, kept either way."""
        with self._start(image, command, mounts, user) as running:
            running.start()
            try:
                code: int | None = int(running.wait(timeout=timeout)["StatusCode"])
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                # docker-py's wait gives up by timing out the HTTP request.
                running.kill()
                code = None
            return code, running.logs().decode(errors="replace")

    def run_streaming(self, image: str, command: list[str], log: Log, **options: Any) -> int:
        """Run `command` in `image` with docker-py's container `options` (working folder,
        user, environment, mounts), its output streamed line by line to `log` as it comes;
        its exit code. Ctrl-C or SIGTERM removes the container (with what runs in it)."""
        with self._container(image=image, command=command, **options) as running:
            try:
                running.start()
            except docker.errors.APIError as error:
                raise EnvrepoError(
                    f"{command[0]} cannot be started in {image}: {_explain(error)}"
                ) from None
            pending = b""
            for chunk in running.logs(stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log(line.decode(errors="replace"))
            if pending:
                log(pending.decode(errors="replace"))
            return int(running.wait()["StatusCode"])

    def start_service(
        self, image: str, name: str, port: int, inside: int, environment: Mapping[str, str]
    ) -> None:
        """A container of `image` named `name`, in the background, its port `inside` on the
        loopback's `port`; one of the same name is replaced."""
        self.stop_service(name)
        try:
            self.client.containers.run(
                image,
                name=name,
                detach=True,
                ports={f"{inside}/tcp": ("127.0.0.1", port)},
                labels={"dev.envrepo.service": name},
                environment=dict(environment),
            )
        except docker.errors.APIError as error:
            self.stop_service(name)
            raise EnvrepoError(f"the service {name} cannot be started: {_explain(error)}") from None

    def stop_service(self, name: str) -> bool:
        """Stop and remove the service container `name`; whether there was one."""
        try:
            found = self.client.containers.get(name)
        except docker.errors.NotFound:
            return False
        with suppress(docker.errors.NotFound):
            found.remove(force=True)
        return True

    def service_state(self, name: str) -> tuple[str, int, str] | None:
        """The service container's status, how many times it restarted, and its last lines."""
        try:
            found = self.client.containers.get(name)
        except docker.errors.NotFound:
            return None
        return (
            str(found.status),
            int(found.attrs.get("RestartCount", 0)),
            found.logs(tail=20).decode(errors="replace"),
        )

    def follow(self, name: str, log: Log) -> None:
        """The service's output, line by line, until it stops."""
        found = self.client.containers.get(name)
        for line in found.logs(stream=True, follow=True):
            log(line.decode(errors="replace").rstrip("\n"))

    def run_and_commit(
        self, image: str, command: list[str], mounts: Mounts, timeout: int = RUN_TIMEOUT
    ) -> tuple[int, str, ImageInfo | None]:
        """Run `command` in `image`, network off, and keep its result as a new image: the exit
        code, the output, and the new image when it succeeded."""
        with self._start(image, command, mounts, "") as running:
            running.start()
            code = int(running.wait(timeout=timeout)["StatusCode"])
            output = running.logs().decode(errors="replace")
            if code != 0:
                return code, output, None
            committed = running.commit(changes=[])
            return code, output, ImageInfo(str(committed.id), committed.attrs)

    def read_file(self, image: str, path: str) -> bytes:
        """A file of `image` (symlinks followed); empty when it has none there."""
        with self._container(image=image, command=["true"]) as found:
            try:
                stream, _ = found.get_archive(path)
            except docker.errors.NotFound:
                return b""
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                first = archive.getmembers()[0]
                if first.issym():
                    target = str(PurePosixPath(path).parent / first.linkname)
                    return self.read_file(image, posixpath.normpath(target))
                member = archive.extractfile(first)
                return member.read() if member is not None else b""
