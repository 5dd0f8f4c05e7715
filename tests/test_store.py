"""The content store: trimming by age and size keeps what campaigns use and counts what it frees."""

from __future__ import annotations

import os
import time
from pathlib import Path

from generator.images import digest_bytes
from generator.store import Record, Store


def put(store: Store, key: str, blobs: list[bytes], age_days: float, now: float) -> None:
    images = tuple(store.image_ref(i, digest_bytes(b), "image/png", 1, 1) for i, b in enumerate(blobs))
    record = Record(key, "generated", images, None, "preview", "m", "2026-01-01T00:00:00+00:00", 0.0)
    store.put(record, blobs)
    stamp = now - age_days * 86400
    os.utime(store.record_path(key), (stamp, stamp))


def blob_bytes(store: Store) -> int:
    return sum(p.stat().st_size for p in (store.root / "blobs").glob("*/*"))


def test_trim_by_age_keeps_what_is_used(tmp_path: Path) -> None:
    now = time.time()
    store = Store(tmp_path)
    put(store, "a" * 32, [b"old" * 100], 40, now)
    put(store, "b" * 32, [b"kept" * 100], 40, now)
    put(store, "c" * 32, [b"new" * 100], 1, now)
    removed, freed = store.trim(max_age_days=30, keep=frozenset({"b" * 32}), now=now)
    assert (removed, freed) == (1, 300)
    assert (store.has("a" * 32), store.has("b" * 32), store.has("c" * 32)) == (False, True, True)


def test_trim_by_size_removes_the_oldest_and_counts_every_byte(tmp_path: Path) -> None:
    now = time.time()
    store = Store(tmp_path)
    shared = b"shared" * 100  # 600 bytes, used by the oldest and the newest record
    put(store, "a" * 32, [shared, b"x" * 500], 30, now)
    put(store, "b" * 32, [b"y" * 400], 20, now)
    put(store, "c" * 32, [shared], 10, now)
    before = blob_bytes(store)
    removed, freed = store.trim(max_bytes=700, now=now)
    # The oldest goes first (its own 500 bytes; the shared blob stays for c), then b (400 bytes): 600 bytes left.
    assert removed == 2
    assert freed == before - blob_bytes(store) == 900
    assert store.has("c" * 32)
    assert store.get("c" * 32) is not None


def test_trim_removes_blobs_no_record_uses(tmp_path: Path) -> None:
    store = Store(tmp_path)
    stray = store.blob_path(digest_bytes(b"stray"), "image/png")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"stray")
    assert store.trim() == (0, 5)
    assert not stray.exists()


def test_clean_command(repo: Path, run_cli) -> None:
    from tests.builders import write_campaign

    write_campaign(repo, '[[jobs]]\nid = "a"\noperation = "generate"\nprompt = "x"\n')
    assert run_cli("generate", "c.toml", "-q").code == 0
    result = run_cli("clean", "--max-age", "0")
    assert result.code == 0
    assert result.out.startswith(f"{repo / '.campaign-cache'}: removed 1 results and ")
