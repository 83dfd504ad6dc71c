"""Where the step cache keeps its bytes: a folder, or object storage through fsspec
(`s3://bucket/prefix`, with the endpoint and credentials boto3 reads: AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

Both give the store what it needs to commit an entry correctly with any number of writers on
any number of machines: `create`, a write that succeeds only if nothing is at the path (a
hard link on a local disk; `If-None-Match: *` on S3), and plain `write`, `read`, `delete`
and `list`. Nothing depends on file modification times.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class StorageError(OSError):
    """The storage could not be read or written; the message names it."""


class RefusedRead(StorageError):
    """What is at the path is not a regular file, or is larger than the reader allows."""


@dataclass(frozen=True)
class Stored:
    path: str  # relative to the root, with "/"
    size: int


class LocalStorage:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes. Opened without blocking and checked on the open descriptor: a
        FIFO, a device or a file over `max_bytes` is refused (`RefusedRead`), never waited
        on or read whole."""
        path = self._path(rel)
        try:
            handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error}") from error
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                raise RefusedRead(f"{path} is not a regular file")
            with os.fdopen(os.dup(handle), "rb") as file:
                # past the bound, one byte more than allowed is read: never the whole file
                data = file.read() if max_bytes is None else file.read(max_bytes + 1)
            if max_bytes is not None and len(data) > max_bytes:
                raise RefusedRead(f"{path} is larger than the {max_bytes:,} bytes allowed")
            return data
        except RefusedRead:
            raise
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error}") from error
        finally:
            os.close(handle)

    def exists(self, rel: str) -> bool:
        """Anything at the path (a file, or something a reader will refuse)."""
        return os.path.lexists(self._path(rel))

    def _staged(self, rel: str, data: bytes) -> Path:
        """`data` in a new private file beside `rel` (removed again if it cannot be written
        whole: a full disk leaves nothing behind)."""
        path = self._path(rel)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            return Path(tmp)
        except OSError as error:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write {path}: {error}") from error

    def write(self, rel: str, data: bytes) -> None:
        """Replace the file atomically (a reader sees the old bytes or the new ones)."""
        tmp = self._staged(rel, data)
        try:
            tmp.replace(self._path(rel))
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {self._path(rel)}: {error}") from error

    def create(self, rel: str, data: bytes) -> bool:
        """Write the file only if none is there; False if one was (nothing changed)."""
        tmp = self._staged(rel, data)
        try:
            os.link(tmp, self._path(rel))
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, rel: str) -> None:
        self._path(rel).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[Stored]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                yield Stored(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def delete_all(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


class ObjectStorage:
    """Any fsspec filesystem with exclusive creation (S3 through s3fs)."""

    def __init__(self, url: str):
        import fsspec

        self.url = url.rstrip("/")
        # no listings cache: another machine's writes must be seen at once
        self.fs, self.base = fsspec.core.url_to_fs(self.url, use_listings_cache=False)

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    @property
    def endpoint(self) -> str:
        """The server answering for this URL (what boto3 resolved, or AWS_ENDPOINT_URL)."""
        client = getattr(self.fs, "_s3", None)  # s3fs's client, once it has connected
        found = getattr(getattr(client, "meta", None), "endpoint_url", None)
        return found or os.environ.get("AWS_ENDPOINT_URL") or "the provider's default endpoint"

    def _fail(self, action: str, rel: str, error: Exception) -> StorageError:
        return StorageError(
            f"cannot {action} {self.url}/{rel} at {self.endpoint}: {type(error).__name__}: {error}"
        )

    def read(self, rel: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; past `max_bytes` it is refused (`RefusedRead`) after reading
        one byte more than allowed, never whole."""
        try:
            if max_bytes is None:
                return self.fs.cat_file(self._path(rel))
            data = self.fs.cat_file(self._path(rel), start=0, end=max_bytes + 1)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001 - botocore, aiohttp: named, re-raised
            raise self._fail("read", rel, error) from error
        if len(data) > max_bytes:
            raise RefusedRead(f"{self.url}/{rel} is larger than the {max_bytes:,} bytes allowed")
        return data

    def exists(self, rel: str) -> bool:
        try:
            return self.fs.exists(self._path(rel))
        except Exception as error:  # noqa: BLE001
            raise self._fail("reach", rel, error) from error

    def write(self, rel: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(rel), data)  # one PUT: atomic
        except Exception as error:  # noqa: BLE001
            raise self._fail("write", rel, error) from error

    def create(self, rel: str, data: bytes) -> bool:
        try:
            with self.fs.open(self._path(rel), "xb") as out:  # If-None-Match: *
                out.write(data)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if self.exists(rel):  # the precondition failed: someone created it first
                return False
            raise self._fail("create", rel, error) from error

    def delete(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass
        except Exception as error:  # noqa: BLE001
            raise self._fail("delete", rel, error) from error

    def list(self, prefix: str = "") -> Iterator[Stored]:
        root = self._path(prefix) if prefix else self.base
        try:
            found = self.fs.find(root, detail=True)
        except FileNotFoundError:
            return
        except Exception as error:  # noqa: BLE001
            raise self._fail("list", prefix, error) from error
        for path, info in found.items():
            rel = path[len(self.base) + 1 :]
            if info.get("type") == "file" and not rel.rsplit("/", 1)[-1].startswith("."):
                yield Stored(rel, int(info.get("size") or 0))

    def delete_all(self) -> None:
        for stored in list(self.list()):
            self.delete(stored.path)


def storage_for(root: str | os.PathLike) -> LocalStorage | ObjectStorage:
    """`s3://…` (any URL with a scheme but `file`) is object storage; else a folder."""
    text = str(root)
    if "://" in text and not text.startswith("file://"):
        return ObjectStorage(text)
    return LocalStorage(text.removeprefix("file://"))
