"""What the reliability tests share: campaigns the emulator serves, the CLI in a bounded subprocess, and the checks
that say nothing was lost (every record's images exist with their digests, no temporary file is left behind,
no stored request was sent again)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import generator
from generator.emulator import Emulator

#: The checkout under test (not whatever `campaign` on PATH would run).
CHECKOUT = Path(generator.__file__).resolve().parent.parent
MODEL = "imagen-4.0-generate-001"
#: Answers the emulator stores as a result (a 200 with images or without, a refused prompt): the request is done.
STORED_FAULTS = frozenset({None, "empty", "filtered", "partial"})

# Sets resource limits, then runs `python -m generator` with the remaining arguments. Limits are set in the
# child itself (not with preexec_fn, which is unsafe while the emulator's threads run in the test process).
# CPython ignores SIGXFSZ, so a write over RLIMIT_FSIZE raises OSError(EFBIG) as a full disk raises ENOSPC.
# RELIABILITY_KILL_AT_REPLACE=N makes the process SIGKILL itself at its N-th os.replace: a file fully written
# to its temporary name and not yet renamed, the worst moment for a crash.
_BOOT = (
    "import os, resource, runpy, signal, sys, threading\n"
    "for name in ('AS', 'FSIZE'):\n"
    "    value = os.environ.pop('RELIABILITY_RLIMIT_' + name, None)\n"
    "    if value:\n"
    "        limit = getattr(resource, 'RLIMIT_' + name)\n"
    "        resource.setrlimit(limit, (int(value), resource.getrlimit(limit)[1]))\n"
    "kill_at = int(os.environ.pop('RELIABILITY_KILL_AT_REPLACE', '0'))\n"
    "if kill_at:\n"
    "    real_replace, lock, seen = os.replace, threading.Lock(), [0]\n"
    "    def replace(*args, **kwargs):\n"
    "        with lock:\n"
    "            seen[0] += 1\n"
    "            if seen[0] == kill_at:\n"
    "                os.kill(os.getpid(), signal.SIGKILL)\n"
    "        return real_replace(*args, **kwargs)\n"
    "    os.replace = replace\n"
    "sys.argv[0] = 'campaign'\n"
    "runpy.run_module('generator', run_name='__main__', alter_sys=True)\n"
)


@dataclass
class Done:
    code: int
    out: str
    err: str

    def transcript(self) -> str:
        return f"exit {self.code}\n--- stderr\n{self.err}--- stdout\n{self.out}"


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's (already isolated) environment, with this checkout first on the path and no way out."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(CHECKOUT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_GCE_CHECK"] = "True"  # google.auth must not probe a metadata server
    env["GCE_METADATA_HOST"] = "127.0.0.1:9"
    env["GCE_METADATA_IP"] = "127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"  # anything but the emulator fails at once, locally
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def campaign_command(*args: str) -> list[str]:
    """`python -m generator ARGS` for this checkout, through the resource-limit bootstrap."""
    return [sys.executable, "-c", _BOOT, *args]


def run_campaign(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    memory: int | None = None,
    file_size: int | None = None,
) -> Done:
    """Run the CLI to completion in a subprocess; fails the test if it outlives ``timeout`` (a hang)."""
    extra = dict(env or {})
    if memory:
        extra["RELIABILITY_RLIMIT_AS"] = str(memory)
    if file_size:
        extra["RELIABILITY_RLIMIT_FSIZE"] = str(file_size)
    try:
        done = subprocess.run(
            campaign_command(*args),
            cwd=cwd,
            env=cli_env(extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`campaign {' '.join(args)}` hung (> {timeout}s); stderr so far:\n{e.stderr}") from None
    return Done(done.returncode, done.stdout, done.stderr)


def run_in_process(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> int:
    """Run the CLI in this process (no interpreter start-up: for set-up steps); returns the exit code."""
    from generator.cli import main

    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.update(env or {})
    try:
        main(list(args))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return 0


def start_campaign(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the CLI in a subprocess (to kill it, or to run two at once)."""
    return subprocess.Popen(
        campaign_command(*args),
        cwd=cwd,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# -- campaigns ---------------------------------------------------------------------------------------------------


def vertex_campaign(
    folder: Path,
    count: int,
    *,
    campaign_id: str = "c",
    images: int = 1,
    blocked: int = 0,
    pairs: int = 0,
    timeout_s: float = 5.0,
    word: str = "cube",
) -> Path:
    """A campaign of ``count`` Imagen requests with distinct prompts (so the emulator's log tells them apart).

    ``blocked`` more requests carry the word "forbidden" (the emulator's block word in these tests); ``pairs``
    more ask for two images each (so that a partial answer can keep one). A fixed seed without watermark makes
    the emulator's images depend on the request only, so two runs make the same bytes.
    """
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    numbers = ", ".join(str(n) for n in range(1, count + 1))
    text = f"""\
[campaign]
id = "{campaign_id}"

[defaults]
backend = "vertex"
model = "{MODEL}"
images = {images}
seed = 7
add_watermark = false
output_format = "jpeg"

[backend]
timeout_s = {timeout_s}

[limits]
requests_per_minute = {{ "{MODEL}" = 100000 }}

[[jobs]]
id = "ads"
operation = "generate"
prompt = "a small {word}, number {{{{ n }}}}"
[jobs.matrix]
n = [{numbers}]
"""
    if blocked:
        text += f"""
[[jobs]]
id = "taboo"
operation = "generate"
prompt = "a forbidden {word}, number {{{{ n }}}}"
[jobs.matrix]
n = [{", ".join(str(n) for n in range(1, blocked + 1))}]
"""
    if pairs:
        text += f"""
[[jobs]]
id = "pairs"
operation = "generate"
images = 2
prompt = "two {word}s, number {{{{ n }}}}"
[jobs.matrix]
n = [{", ".join(str(n) for n in range(1, pairs + 1))}]
"""
    path = folder / f"{campaign_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- what the emulator received ----------------------------------------------------------------------------------


def settle(emulator: Emulator, quiet: float = 0.15, limit: float = 10.0) -> dict[str, Any]:
    """Stats once no new request has been logged for ``quiet`` seconds (hung requests are logged when they end)."""
    end = time.monotonic() + limit
    stats = emulator.stats()
    while time.monotonic() < end:
        time.sleep(quiet)
        again = emulator.stats()
        if again["total"] == stats["total"]:
            return again
        stats = again
    return stats


def entries_by_prompt(stats: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The logged requests of each prompt, in the order the emulator received them."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in sorted(stats["recent"], key=lambda e: e["n"]):
        body = entry["body"]
        prompt = body["instances"][0]["prompt"] if isinstance(body, dict) and body.get("instances") else None
        out[str(prompt)].append(entry)
    return out


def prompt_counts(stats: Mapping[str, Any]) -> Counter[str]:
    return Counter({prompt: len(entries) for prompt, entries in entries_by_prompt(stats).items()})


def is_stored_answer(entry: Mapping[str, Any]) -> bool:
    """An answer the tool keeps: images (all, some or none after filtering) or a refused prompt."""
    if entry["status"] == "200":
        return entry["fault"] in STORED_FAULTS
    return entry["status"] == "400" and entry["fault"] is None  # the block word: "could not be submitted"


def resent_after_success(stats: Mapping[str, Any]) -> dict[str, list[str]]:
    """Prompts the emulator received again after answering them in a way the tool stores: should be none."""
    out = {}
    for prompt, entries in entries_by_prompt(stats).items():
        firsts = [i for i, e in enumerate(entries) if is_stored_answer(e)]
        if firsts and firsts[0] < len(entries) - 1:
            out[prompt] = [f"#{e['n']} {e['status']} {e['fault']}" for e in entries]
    return out


# -- what the store and the output folder hold --------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def store_records(root: Path) -> dict[str, dict[str, Any]]:
    """Every record of the store, by key."""
    out = {}
    for path in sorted(root.glob("records/*/*.json")):
        data = json.loads(path.read_bytes())
        out[data["key"]] = data
    return out


def store_problems(root: Path) -> list[str]:
    """Records whose images are missing or altered, records in the wrong place, and temporary files."""
    problems = []
    for path in sorted(root.glob("records/*/*.json")):
        try:
            data = json.loads(path.read_bytes())
        except ValueError as e:
            problems.append(f"{path}: unreadable record ({e})")
            continue
        if path.name != f"{data['key']}.json" or path.parent.name != data["key"][:2]:
            problems.append(f"{path}: holds the record of {data['key']}")
        for image in data["images"]:
            blob = root / image["path"]
            if not blob.is_file():
                problems.append(f"{path.name}: image {image['index']} missing: {image['path']}")
            elif sha256_of(blob) != image["digest"]:
                problems.append(f"{path.name}: image {image['index']} altered: {image['path']}")
    problems.extend(f"temporary file left: {p}" for p in temp_files(root))
    return problems


def temp_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.name.endswith(".tmp"))


def output_problems(folder: Path) -> list[str]:
    """Files the manifest names that are missing or differ from the digest it records."""
    manifest = json.loads((folder / "manifest.json").read_bytes())
    problems = []
    for variant in manifest["variants"]:
        for image in variant["images"]:
            if not image.get("file"):
                continue
            path = folder / image["file"]
            if not path.is_file():
                problems.append(f"{variant['id']} image {image['n']}: {image['file']} missing")
            elif sha256_of(path) != image["digest"]:
                problems.append(f"{variant['id']} image {image['n']}: {image['file']} differs from the manifest")
    return problems


def tree_bytes(folder: Path, skip: Iterable[str] = (".lock",)) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), but the run's lock file."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


#: Facts about one run rather than about the images: they differ between any two runs.
RUN_FIELDS = ("started", "finished", "seconds", "requests_sent", "throttled", "cost_usd")


def comparable_manifest(data: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """A manifest without the run's timing and the records' creation times."""
    manifest = json.loads(data) if isinstance(data, bytes) else json.loads(json.dumps(data))
    for name in RUN_FIELDS:
        manifest["run"].pop(name, None)
    for variant in manifest["variants"]:
        for image in variant["images"]:
            image.pop("created", None)
    return manifest


def error_lines(err: str) -> Sequence[str]:
    """stderr without the campaign's notices and warnings (a deprecated model, a fitted photo)."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith(("warning: ", "notice: "))]
