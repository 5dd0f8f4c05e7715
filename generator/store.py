"""The content store: every request's result, by request key, shared by campaigns and CI runs.

Layout (default ``.campaign-cache/`` at the repository root)::

    blobs/<aa>/<sha256>.<ext>     image bytes, named by their digest (written once, never changed)
    records/<aa>/<key>.json       what a request produced: status, images (by digest), reason, provenance

A record is the commit point: blobs are written first, each to a temporary file in the same folder and then
renamed into place (``os.replace``), and the record last, the same way. A crash at any moment leaves either no
record (the request is sent again) or a complete one; at worst an unreferenced blob, which ``campaign clean``
removes, and a temporary file, which the next run removes (:meth:`Store.sweep`). Nothing is ever half-written.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from generator.errors import StoreError

Status = Literal["generated", "filtered", "blocked"]
#: Bump when the record layout changes incompatibly; older records are then ignored (and regenerated).
RECORD_SCHEMA = 1
STORE_ENV = "CAMPAIGN_STORE"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def default_store_dir(root: Path) -> Path:
    """``$CAMPAIGN_STORE``, else ``.campaign-cache/`` in the repository root."""
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else root / ".campaign-cache"


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One image of a record: its digest and where its bytes are, relative to the store."""

    index: int
    digest: str
    path: str
    mime_type: str
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "digest": self.digest,
            "path": self.path,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class Record:
    """What one request produced.

    ``status`` is ``generated`` (images, possibly fewer than asked when some were filtered), ``filtered`` (the
    safety filter returned no image) or ``blocked`` (the prompt was refused). Failed requests leave no record, so
    they are sent again by the next run.
    """

    key: str
    status: Status
    images: tuple[StoredImage, ...]
    reason: str | None
    backend: str
    model: str
    created: str
    seconds: float
    request: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "key": self.key,
            "status": self.status,
            "images": [i.to_json() for i in self.images],
            "reason": self.reason,
            "backend": self.backend,
            "model": self.model,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "request": dict(self.request),
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            key=data["key"],
            status=data["status"],
            images=tuple(StoredImage(**i) for i in data["images"]),
            reason=data.get("reason"),
            backend=data["backend"],
            model=data["model"],
            created=data["created"],
            seconds=float(data.get("seconds", 0.0)),
            request=data.get("request", {}),
            details=data.get("details", {}),
        )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file (``.<name>.~<pid>~<random>.tmp``, in the same folder) names its writer, so that one left
    by a killed process can be told from one still being written: :func:`sweep_temp_files`.

    Raises:
        StoreError: the disk is full or the folder is not writable; the message says which and where.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.~{os.getpid()}~", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; outputs are shared (CI artifacts, static sites)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise


def temp_path(path: Path) -> Path:
    """A temporary name for ``path`` owned by this process (for writers that do not use :func:`atomic_write`)."""
    return path.with_name(f".{path.name}.~{os.getpid()}~.tmp")


#: ``.<name>.~<pid>~<random>.tmp``: a temporary file of :func:`atomic_write` or :func:`temp_path`.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.~(?P<pid>\d+)~[a-z0-9_]*\.tmp$")
#: Temporary files that name no writer (written by older versions) are removed once this old.
_UNOWNED_TEMP_SECONDS = 24 * 3600.0


def sweep_temp_files(folder: Path, *, recursive: bool = True, name: str | None = None) -> int:
    """Remove the temporary files under ``folder`` whose writer is gone (a run killed while writing).

    A file whose writer is still running is kept, whoever it is (another campaign's run sharing the store).
    ``name`` limits the sweep to the temporary files of that file name. Returns how many were removed.
    """
    if not folder.is_dir():
        return 0
    removed = 0
    pattern = f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"
    for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
        match = _TEMP_NAME.match(path.name)
        try:
            if match is not None:
                if _alive(int(match["pid"])):
                    continue
            elif name is not None or time.time() - path.stat().st_mtime < _UNOWNED_TEMP_SECONDS:
                continue
            path.unlink()
            removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


def write_error(e: OSError, path: Path) -> StoreError:
    """What to tell the user when writing ``path`` failed: which folder, what is wrong, what to do."""
    folder = path.parent
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"{folder}: the disk is full; free some space (`campaign clean --max-size ...`) "
            "and run again: finished work is saved"
        )
    if e.errno == errno.EFBIG:
        return StoreError(
            f"{folder}: a file could not be written ({e.strerror}); free some space or raise the file size limit, "
            "then run again: finished work is saved"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"{folder}: not writable ({e.strerror}); fix the permissions or choose another "
            "folder, then run again: finished work is saved"
        )
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        return StoreError(
            f"{blocker}: is a file where a folder should be; move it away or choose another folder, "
            "then run again: finished work is saved"
        )
    return StoreError(f"{path}: cannot write ({e.strerror or e}); check the folder, then run again")


class Store:
    """A content-addressed store of request results on the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def record_path(self, key: str) -> Path:
        return self.root / "records" / key[:2] / f"{key}.json"

    def blob_path(self, digest: str, mime_type: str) -> Path:
        hexdigest = digest.split(":", 1)[-1]
        return self.root / "blobs" / hexdigest[:2] / f"{hexdigest}.{_EXTENSIONS.get(mime_type, 'bin')}"

    def sweep(self) -> int:
        """Remove temporary files left by runs killed while writing (at the start of a run)."""
        return sweep_temp_files(self.root / "blobs") + sweep_temp_files(self.root / "records")

    def has(self, key: str) -> bool:
        """Whether the store holds a finished result for ``key`` (so the request need not be sent)."""
        return self.record_path(key).is_file()

    def get(self, key: str) -> Record | None:
        path = self.record_path(key)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: treated as absent, so the request is made again and the record rewritten
        if data.get("schema") != RECORD_SCHEMA:
            return None
        record = Record.from_json(data)
        if any(not (self.root / i.path).is_file() for i in record.images):
            return None  # a blob went missing (manual deletion): make the request again
        return record

    def put(self, record: Record, blobs: Sequence[bytes]) -> Record:
        """Store a result: each image's bytes (by digest), then the record that refers to them."""
        for image, data in zip(record.images, blobs, strict=True):
            path = self.root / image.path
            if not path.exists():
                atomic_write(path, data)
        atomic_write(
            self.record_path(record.key),
            json.dumps(record.to_json(), indent=1, sort_keys=True).encode(),
        )
        return record

    def image_ref(self, index: int, digest: str, mime_type: str, width: int, height: int) -> StoredImage:
        path = self.blob_path(digest, mime_type).relative_to(self.root).as_posix()
        return StoredImage(index, digest, path, mime_type, width, height)

    def read(self, image: StoredImage) -> bytes:
        return (self.root / image.path).read_bytes()

    def records(self) -> Iterator[Path]:
        base = self.root / "records"
        if base.is_dir():
            yield from base.glob("*/*.json")

    def trim(
        self,
        *,
        max_age_days: float | None = None,
        max_bytes: int | None = None,
        keep: frozenset[str] = frozenset(),
        now: float | None = None,
    ) -> tuple[int, int]:
        """Remove records older than ``max_age_days``, then the oldest until blobs fit in ``max_bytes``, then
        blobs no record refers to. Keys in ``keep`` are never removed. Returns (records, bytes) removed."""
        now = time.time() if now is None else now
        entries = []
        for path in self.records():
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(path.read_bytes())
                entries.append((path.stat().st_mtime, path, data))
        entries.sort(key=lambda e: e[0])
        sizes = self._blob_sizes()
        uses: dict[str, int] = {}
        for _, _, data in entries:
            for image in data["images"]:
                uses[image["path"]] = uses.get(image["path"], 0) + 1
        kept = sum(sizes.values())
        removed = freed = 0

        def drop(path: Path, data: dict[str, Any]) -> None:
            nonlocal removed, freed, kept
            path.unlink(missing_ok=True)
            removed += 1
            for image in data["images"]:
                uses[image["path"]] -= 1
                if uses[image["path"]] == 0 and image["path"] in sizes:  # no record uses it any more
                    size = sizes.pop(image["path"])
                    (self.root / image["path"]).unlink(missing_ok=True)
                    freed += size
                    kept -= size

        alive = []
        for mtime, path, data in entries:
            if max_age_days is not None and data["key"] not in keep and now - mtime > max_age_days * 86400:
                drop(path, data)
            else:
                alive.append((path, data))
        if max_bytes is not None:
            for path, data in alive:  # oldest first
                if kept <= max_bytes:
                    break
                if data["key"] not in keep:
                    drop(path, data)
        for rel, size in sizes.items():  # blobs no record refers to (left by an interrupted write)
            if not uses.get(rel):
                (self.root / rel).unlink(missing_ok=True)
                freed += size
        return removed, freed

    def _blob_sizes(self) -> dict[str, int]:
        base = self.root / "blobs"
        out: dict[str, int] = {}
        if base.is_dir():
            for path in base.glob("*/*"):
                if path.name.startswith("."):
                    continue
                with contextlib.suppress(OSError):
                    out[path.relative_to(self.root).as_posix()] = path.stat().st_size
        return out
