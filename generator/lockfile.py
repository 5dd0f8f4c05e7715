"""Lockfiles: what a campaign produced, committed beside it, and the diff between a campaign and its lockfile.

``campaigns/summer-launch.lock`` is TOML, one ``[[variant]]`` block per variant sorted by id, so a pull request
shows exactly which variants a change touches and how: prompt text, model, parameters, input images, and the
digests of the images made. Only ``campaign generate`` writes it.

:func:`diff` compares a plan with a lockfile (the current one, or one read from a git ref) and says for every
variant whether it is new, changed (and why) or removed: the review loop's ``plan --diff`` and ``check``.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import CampaignError
from generator.planner import KEY_SCHEMA, Plan, Variant
from generator.store import atomic_write, sweep_temp_files

LOCK_VERSION = 1


def lockfile_path(campaign_file: Path) -> Path:
    """``campaigns/summer-launch.toml`` -> ``campaigns/summer-launch.lock``."""
    return campaign_file.with_suffix(".lock")


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def lock_entries(plan: Plan, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per variant: its requests and what they produced (from the run's manifest)."""
    images_by_variant = {v["id"]: v["images"] for v in manifest["variants"]}
    out = []
    for v in sorted(plan.variants, key=lambda v: v.id):
        first = plan.requests[v.images[0][0]]
        params = {k: val for k, val in first.params.items() if k != "sample_count"}
        images = images_by_variant.get(v.id, [])
        statuses = {i["status"] for i in images}
        status = (
            "complete" if statuses <= {"generated", "cached"} else "/".join(sorted(statuses - {"generated", "cached"}))
        )
        out.append(
            {
                "id": v.id,
                "model": first.model,
                "backend": first.backend,
                "prompt": v.prompt,
                "params": params,
                "inputs": [f"{i.role}:{i.file.display if i.file else i.digest}@{i.digest}" for i in first.inputs],
                "requests": [f"{key}#{index}" for key, index in v.images],
                "images": [i.get("digest", "") for i in images],
                "status": status,
            }
        )
    return out


def render_lockfile(plan: Plan, manifest: Mapping[str, Any]) -> str:
    c = plan.campaign
    lines = [
        f"# Written by `campaign generate` for {c.display}; do not edit.",
        "# One block per variant: review its changes like code. `campaign plan --diff` explains them.",
        "",
        "[lock]",
        f"version = {LOCK_VERSION}",
        f"campaign = {_toml(c.id)}",
        f"key_schema = {KEY_SCHEMA}",
    ]
    for entry in lock_entries(plan, manifest):
        lines.append("")
        lines.append("[[variant]]")
        for key, value in entry.items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def write_lockfile(plan: Plan, manifest: Mapping[str, Any]) -> Path:
    path = lockfile_path(plan.campaign.file)
    sweep_temp_files(path.parent, recursive=False, name=path.name)  # left by a run killed while writing it
    atomic_write(path, render_lockfile(plan, manifest).encode())
    return path


def _toml(value: Any) -> str:
    """TOML for the values a lockfile holds: strings, numbers, booleans, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in sorted(value.items())) + " }" if value else "{}"
    if isinstance(value, Sequence):
        if not value:
            return "[]"
        if len(value) > 1 and all(isinstance(v, str) for v in value):
            return "[\n" + "".join(f"  {_toml(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a lockfile")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    source: str  # where it was read from, for messages
    variants: Mapping[str, Mapping[str, Any]]


def read_lockfile(path: Path) -> Lock | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_lockfile(text, str(path))


def read_lockfile_at(path: Path, ref: str) -> Lock | None:
    """The lockfile as committed at git ``ref`` (None if it did not exist there)."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
        rel = path.resolve().relative_to(Path(top).resolve()).as_posix()
    except (OSError, subprocess.CalledProcessError, ValueError):
        raise CampaignError(f"--against {ref}: {path.parent} is not in a git repository") from None
    shown = subprocess.run(["git", "show", f"{ref}:{rel}"], cwd=top, capture_output=True, text=True)
    if shown.returncode != 0:
        verify = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=top, capture_output=True
        )
        if verify.returncode != 0:
            raise CampaignError(f"--against {ref}: no such git revision (fetch it first, e.g. `git fetch origin main`)")
        return None
    return parse_lockfile(shown.stdout, f"{rel} at {ref}")


def parse_lockfile(text: str, source: str) -> Lock:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CampaignError(f"{source}: not a valid lockfile ({e}); regenerate it with `campaign generate`") from None
    header = data.get("lock", {})
    if header.get("version") != LOCK_VERSION:
        raise CampaignError(
            f"{source}: lockfile version {header.get('version')!r} is not {LOCK_VERSION}; "
            "regenerate it with `campaign generate`"
        )
    return Lock(source, {v["id"]: v for v in data.get("variant", [])})


# --------------------------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One variant that differs from the lockfile: ``+`` new, ``~`` changed, ``-`` removed."""

    kind: str  # "+", "~", "-"
    variant: str
    job: str
    reasons: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Diff:
    source: str | None  # the lockfile compared with; None when there is none
    changes: tuple[Change, ...]
    unchanged: int
    incomplete: tuple[str, ...] = field(default=())  # variants whose images the lockfile says are missing

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    @property
    def stale(self) -> bool:
        return self.source is None or bool(self.changes) or bool(self.incomplete)


def diff(plan: Plan, lock: Lock | None) -> Diff:
    """Compare a plan with a lockfile, variant by variant, naming why each changed one changed."""
    if lock is None:
        return Diff(None, tuple(Change("+", v.id, v.job, ("new",), keys=_keys(v)) for v in plan.variants), 0)
    changes: list[Change] = []
    unchanged = 0
    incomplete = []
    current = {v.id: v for v in plan.variants}
    for v in sorted(plan.variants, key=lambda v: v.id):
        old = lock.variants.get(v.id)
        if old is None:
            changes.append(Change("+", v.id, v.job, ("new",), keys=_keys(v)))
            continue
        now = [f"{k}#{i}" for k, i in v.images]
        if list(old.get("requests", [])) == now:
            unchanged += 1
            status = str(old.get("status", "complete"))
            if "failed" in status or "pending" in status:
                incomplete.append(v.id)
            continue
        reasons, details = _why(plan, v, old)
        changes.append(Change("~", v.id, v.job, tuple(reasons), tuple(details), _keys(v)))
    for vid in sorted(lock.variants):
        if vid not in current:
            changes.append(Change("-", vid, vid.split("/", 1)[0], ("removed",)))
    return Diff(lock.source, tuple(changes), unchanged, tuple(incomplete))


def _keys(v: Variant) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for k, _ in v.images))


def _why(plan: Plan, v: Variant, old: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    first = plan.requests[v.images[0][0]]
    reasons: list[str] = []
    details: list[str] = []
    if old.get("model") != first.model or old.get("backend") != first.backend:
        reasons.append("model")
        details.append(f"model: {old.get('backend')}/{old.get('model')} -> {first.backend}/{first.model}")
    if old.get("prompt") != v.prompt:
        reasons.append("prompt")
        details.append(f"- {old.get('prompt')}")
        details.append(f"+ {v.prompt}")
    new_inputs = [f"{i.role}:{i.file.display if i.file else i.digest}@{i.digest}" for i in first.inputs]
    if list(old.get("inputs", [])) != new_inputs:
        upstream = any(i.upstream for i in first.inputs)
        reasons.append("source image" if upstream else "input image")
        before = {s.rsplit("@", 1)[0]: s.rsplit("@", 1)[1] for s in old.get("inputs", []) if "@" in s}
        for item in new_inputs:
            name, digest = item.rsplit("@", 1)
            if before.get(name) != digest:
                details.append(f"input {name}: {'changed bytes' if name in before else 'new'}")
    params = {k: val for k, val in first.params.items() if k != "sample_count"}
    old_params = dict(old.get("params", {}))
    changed = sorted(k for k in set(params) | set(old_params) if params.get(k) != old_params.get(k))
    if changed:
        reasons.append("parameter")
        for k in changed:
            details.append(f"{k}: {_show(old_params.get(k))} -> {_show(params.get(k))}")
    if not reasons:
        reasons.append("images wanted" if len(old.get("requests", [])) != len(v.images) else "request")
        details.append(f"images: {len(old.get('requests', []))} -> {len(v.images)}")
    return reasons, details


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)
