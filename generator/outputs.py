"""The output folder of a campaign: readable image tree and manifest, written last and atomically.

``output/<campaign-id>/``::

    images/<job>/<product>/<scene>/<axis values>-<n>.<ext>   every image of every variant, copied from the store
    previous/<same path>                                      the image a changed variant had before this run
    manifest.json                                             every variant and image: status, key, provenance

:func:`build_manifest` is pure: the plan, the store's records and the previous manifest in, a JSON-ready
document out. :func:`write_outputs` then copies images (each to a temporary file renamed into place), replaces
``manifest.json``, and only then prunes files of variants no longer in the campaign. If a run dies in between,
the old manifest still describes complete files, and the next run rewrites both; it also removes the temporary
files the dead run left (:func:`locked`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from generator import __version__
from generator.errors import StoreError
from generator.planner import Plan
from generator.store import Record, Store, atomic_write, sweep_temp_files, temp_path, write_error

MANIFEST_SCHEMA = "campaign-manifest/1"
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def output_dir(root: Path, campaign_id: str, base: Path | None = None) -> Path:
    return (base or root / "output") / campaign_id


def load_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def build_manifest(
    plan: Plan,
    records: Mapping[str, Record | None],
    made_now: Mapping[str, str],
    previous: Mapping[str, Any] | None,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """Describe every variant of ``plan`` and its images.

    Args:
        records: the store's record for each request key (None: not made yet).
        made_now: status of the requests this run attempted (generated, filtered, blocked, failed, skipped), with
            failure reasons kept in ``run["failures"]``.
        previous: the manifest of the previous run, to tell new, changed and unchanged images apart.
        run: facts about the run (times, backend, requests sent, cost…), stored as they are.
    """
    before: dict[tuple[str, int], Mapping[str, Any]] = {}
    for v in (previous or {}).get("variants", []):
        for image in v.get("images", []):
            if image.get("digest"):
                before[(v["id"], image["n"])] = image
    failures: Mapping[str, str] = run.get("failures", {})
    variants = []
    totals: dict[str, int] = dict.fromkeys(
        (
            "variants",
            "images",
            "generated",
            "cached",
            "filtered",
            "blocked",
            "failed",
            "pending",
            "new",
            "changed",
            "unchanged",
        ),
        0,
    )
    for v in plan.variants:
        entries = []
        for n, (key, index) in enumerate(v.images, start=1):
            record = records.get(key)
            stored = {i.index: i for i in record.images} if record else {}
            image = stored.get(index)
            attempted = made_now.get(key)
            if image is not None:
                status = "generated" if attempted == "generated" else "cached"
            elif record is not None:
                status = record.status if record.status != "generated" else "filtered"
            elif attempted == "failed":
                status = "failed"
            else:
                status = "pending"
            entry: dict[str, Any] = {"n": n, "status": status, "request": key, "index": index}
            if image is not None:
                assert record is not None
                entry.update(
                    {
                        "file": f"images/{v.slug}-{n}.{_EXT.get(image.mime_type, 'bin')}",
                        "digest": image.digest,
                        "store": image.path,
                        "mime_type": image.mime_type,
                        "width": image.width,
                        "height": image.height,
                        "model": record.model,
                        "backend": record.backend,
                        "created": record.created,
                    }
                )
                old = before.get((v.id, n))
                if old is None:
                    entry["change"] = "new"
                elif old["digest"] == image.digest:
                    entry["change"] = "unchanged"
                else:
                    entry["change"] = "changed"
                    entry["previous"] = {
                        "digest": old["digest"],
                        "file": "previous/" + old["file"].removeprefix("images/"),
                    }
                totals[entry["change"]] += 1
            reason = (record.reason if record else None) or failures.get(key)
            if reason and status != "generated" and status != "cached":
                entry["reason"] = reason
            elif record is not None and record.reason:
                entry["note"] = record.reason
            totals[status] += 1
            entries.append(entry)
        totals["variants"] += 1
        totals["images"] += len(entries)
        variants.append({**v.to_json(), "images": entries})
    requests = {}
    for key, request in plan.requests.items():
        record = records.get(key)
        requests[key] = {
            "backend": request.backend,
            "model": request.model,
            "operation": request.operation,
            "prompt": request.prompt,
            "params": dict(request.params),
            "inputs": [
                {"role": i.role, "digest": i.digest, **({"file": i.file.display} if i.file else {})}
                for i in request.inputs
            ],
            "status": record.status if record else made_now.get(key, "pending"),
            "details": dict(record.details) if record else {},
        }
    c = plan.campaign
    return {
        "schema": MANIFEST_SCHEMA,
        "tool": f"campaign-generator {__version__}",
        "campaign": {"id": c.id, "name": c.name, "description": c.description, "file": c.display},
        "run": {k: v for k, v in run.items() if k != "failures"},
        "totals": totals,
        "jobs": [
            {"id": j.id, "name": j.spec.name or j.id, "operation": j.operation, "description": j.spec.description or ""}
            for j in c.jobs
        ],
        "variants": variants,
        "requests": requests,
    }


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the campaign's output folder for one run; a second run at once gets a clear error."""
    path = folder / ".lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.EEXIST):
            raise write_error(e, path) from None
        raise StoreError(
            f"{folder}: cannot write the output folder ({e.strerror}); fix its permissions or use "
            "--output to choose another"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StoreError(
                f"{folder} is in use by another `campaign generate` (pid {owner}); wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        sweep_temp_files(folder)  # what a run killed while writing here left behind
        yield
    finally:
        os.close(fd)


def write_outputs(
    folder: Path,
    manifest: Mapping[str, Any],
    store: Store,
    previous: Mapping[str, Any] | None,
    name: str = "manifest.json",
    prune: bool = True,
) -> None:
    """Bring the image tree in line with ``manifest``, write the manifest, then remove what it no longer names.

    Until the new manifest replaces the old one, every file the old one names is still there (possibly already
    with its new bytes), so a crash or a full disk never leaves a manifest naming a missing file.

    Raises:
        StoreError: a file could not be written (disk full, not writable, a file where a folder should be).
    """
    had: dict[str, str] = {}
    for v in (previous or {}).get("variants", []):
        for image in v.get("images", []):
            if image.get("file"):
                had[image["file"]] = image["digest"]
    wanted: set[str] = set()
    for v in manifest["variants"]:
        for image in v["images"]:
            file = image.get("file")
            if not file:
                continue
            wanted.add(file)
            target = folder / file
            prior = image.get("previous")
            if prior:
                wanted.add(prior["file"])
                old = folder / file
                keep = folder / prior["file"]
                if old.is_file() and had.get(file) == prior["digest"]:
                    # A copy, not a move: until the new manifest is written, the old one names this file.
                    _copy(old, keep)
            if had.get(file) == image["digest"] and target.is_file():
                continue
            _copy(store.root / image["store"], target)
    write_manifest(folder, manifest, name, drop_shards=prune)
    if prune:  # only now: the files of removed variants are named by the old manifest until it is replaced
        try:
            _prune(folder, wanted)
        except OSError as e:
            raise write_error(e, Path(e.filename) if e.filename else folder / "images" / "x") from None


def write_manifest(
    folder: Path, manifest: Mapping[str, Any], name: str = "manifest.json", drop_shards: bool = False
) -> None:
    """Replace the manifest atomically; with ``drop_shards``, remove shard manifests it supersedes."""
    atomic_write(folder / name, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    if drop_shards:
        for stale in folder.glob("manifest.shard-*-of-*.json"):
            stale.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    tmp = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(e, target) from None


def _prune(folder: Path, wanted: set[str]) -> None:
    for top in ("images", "previous"):
        base = folder / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


_PREFERENCE = {"generated": 0, "cached": 0, "failed": 1, "filtered": 2, "blocked": 3, "pending": 4}


def merge_shards(folder: Path) -> dict[str, Any] | None:
    """Merge ``manifest.shard-I-of-N.json`` files (downloaded from N CI runners into one folder) into one manifest:
    each image taken from the shard that made it. Returns None when there are no shard manifests.

    Raises:
        StoreError: the shard manifests disagree (different campaigns, counts or variants) or one is missing.
    """
    paths = sorted(folder.glob("manifest.shard-*-of-*.json"))
    if not paths:
        return None
    manifests = []
    for path in paths:
        try:
            manifests.append(json.loads(path.read_bytes()))
        except (OSError, ValueError) as e:
            raise StoreError(f"{path}: unreadable shard manifest ({e})") from None
    counts = {m["run"].get("shard", {}).get("count") for m in manifests}
    ids = {m["campaign"]["id"] for m in manifests}
    if len(counts) != 1 or len(ids) != 1:
        raise StoreError(
            f"{folder}: the shard manifests come from different runs (campaigns {sorted(ids)}, shard "
            f"counts {sorted(str(c) for c in counts)}); remove the stale ones"
        )
    count = counts.pop()
    have = sorted(m["run"]["shard"]["index"] for m in manifests)
    if have != list(range(1, count + 1)):
        raise StoreError(f"{folder}: shards {have} of {count} present; download every shard's output first")
    base = manifests[0]
    ids_per = [[v["id"] for v in m["variants"]] for m in manifests]
    if any(ids != ids_per[0] for ids in ids_per):
        raise StoreError(f"{folder}: the shards planned different variants (was the campaign changed between them?)")
    merged: dict[str, Any] = json.loads(json.dumps(base))
    totals = dict.fromkeys(base["totals"], 0)
    for i, variant in enumerate(merged["variants"]):
        for n in range(len(variant["images"])):
            candidates = [m["variants"][i]["images"][n] for m in manifests]
            best = min(candidates, key=lambda c: _PREFERENCE.get(c["status"], 9))
            variant["images"][n] = best
            totals[best["status"]] = totals.get(best["status"], 0) + 1
            if "change" in best:
                totals[best["change"]] += 1
        totals["variants"] += 1
        totals["images"] += len(variant["images"])
    for key, request in merged["requests"].items():
        statuses = [m["requests"][key]["status"] for m in manifests]
        request["status"] = min(statuses, key=lambda s: _PREFERENCE.get(s, 9))
        request["details"] = next(
            (m["requests"][key]["details"] for m in manifests if m["requests"][key]["details"]), {}
        )
    merged["totals"] = totals
    runs = [m["run"] for m in manifests]
    merged["run"] = {
        "started": min(r["started"] for r in runs),
        "finished": max(r["finished"] for r in runs),
        "seconds": max(r["seconds"] for r in runs),
        "backend": base["run"]["backend"],
        "requests_sent": sum(r["requests_sent"] for r in runs),
        "throttled": sum(r["throttled"] for r in runs),
        "cost_usd": round(sum(r["cost_usd"] for r in runs), 4),
        "stopped": "; ".join(r["stopped"] for r in runs if r.get("stopped")) or None,
        "only": base["run"].get("only", []),
        "shards": count,
    }
    return merged
