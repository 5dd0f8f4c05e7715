"""Section ``incremental``: a rerun sends only what changed, and an unchanged rerun sends nothing.

A campaign of products x scenes x styles (1,000 variants in full mode) of one recontext job on
gemini-3.1-flash-image-preview, one image per variant, against the emulator (no latency, no quota pressure, flat
stand-in scenes). Recontext is used because it sends the product photos, so replacing one must re-make exactly
its variants; the campaign format allows ``image_size`` for ``generate`` only, so the images are 1024 px, made
cheap instead by JPEG output and ``composite = false``. Every step is the real command, ``campaign generate``, in a
fresh process (the wall time includes Python's start, loading and planning, the manifest, the lockfile and the
report), with ``CAMPAIGN_VERTEX_ENDPOINT`` pointing at the emulator:

1. first run: every request (timed, reported separately);
2. no-op rerun: must send 0 requests;
3. one scene's prompt changed: must send exactly the requests of that scene's variants (products x styles);
4. one product photo replaced: must send exactly the requests of that product's variants (scenes x styles).

Requests are counted twice: by the emulator (what arrived) and by the tool (``requests_sent`` of ``--json``).
Both must equal the expected number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.campaigns import Shape, product_photo, scene_prompt, write_campaign
from bench.clock import ScaledClock
from bench.emulated import emulator_counts, flat_images, scaled_emulator
from bench.results import Row, Section, Settings, summary

MODEL = "gemini-3.1-flash-image-preview"
REPO = Path(__file__).resolve().parent.parent


def sizes(settings: Settings) -> tuple[int, int, int]:
    return (3, 4, 3) if settings.quick else (10, 20, 5)


def cli_env(endpoint: str) -> dict[str, str]:
    """The environment of ``campaign`` runs: this checkout first, the emulator, no Google or campaign settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CAMPAIGN_", "CLOUDSDK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["CAMPAIGN_VERTEX_ENDPOINT"] = endpoint
    env["NO_COLOR"] = "1"
    return env


def campaign_generate(path: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run ``campaign generate PATH --json -q`` in a new process: (wall seconds, its JSON summary)."""
    command = [sys.executable, "-m", "generator", "generate", str(path), "--json", "-q", "--store", ".store"]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=path.parent, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"campaign generate exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def change_scene(path: Path, scene: int, edit: int) -> None:
    text = path.read_text(encoding="utf-8")
    old = next(scene_prompt(scene, e) for e in range(edit) if scene_prompt(scene, e) in text)
    path.write_text(text.replace(old, scene_prompt(scene, edit)), encoding="utf-8")


def run(settings: Settings) -> Section:
    products, scenes, styles = sizes(settings)
    variants = products * scenes * styles
    expected = {"noop": 0, "scene": products * styles, "product": scenes * styles}
    steps: dict[str, list[dict[str, Any]]] = {"first": [], "noop": [], "scene": [], "product": []}
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp, flat_images("RGB"):
        folder = Path(tmp)
        spec = Shape(
            products,
            scenes,
            styles,
            operation="recontext",
            model=MODEL,
            backend="gemini",
            location="global",
            settings={"composite": False, "output_format": "jpeg"},
            rpm=100_000,
            concurrency=8,
        )
        path = write_campaign(folder, spec)
        with scaled_emulator(ScaledClock(1.0), {"*": 100_000}) as emulator:
            env = cli_env(emulator.url)

            def step(name: str) -> None:
                emulator.reset()
                seconds, out = campaign_generate(path, env)
                steps[name].append(
                    {
                        "seconds": seconds,
                        "received": emulator_counts(emulator)["total"],
                        "sent": out["requests_sent"],
                        "complete": out["complete"],
                        "tool_seconds": out["seconds"],
                    }
                )

            step("first")
            for i in range(1, settings.runs + 1):
                step("noop")
                change_scene(path, 3 % scenes, i)
                step("scene")
                product_photo(folder, 2 % products, version=i)
                step("product")
    command = settings.command("incremental")
    first = steps["first"][0]
    rows = [
        Row(
            f"incremental: first run, {variants:,} variants",
            f"{first['seconds']:.1f} real s for {first['received']:,} requests (executor "
            f"{first['tool_seconds']:.1f} s)",
            "baseline of the reruns",
            None,
            command,
            first["received"] == variants and first["sent"] == variants,
        )
    ]
    labels = {
        "noop": "no-op rerun",
        "scene": "one scene prompt changed",
        "product": "one product photo replaced",
    }
    exact = True
    for name, label in labels.items():
        runs = steps[name]
        ok = all(r["received"] == expected[name] and r["sent"] == expected[name] and r["complete"] for r in runs)
        exact = exact and ok
        seconds = summary([r["seconds"] for r in runs])
        received = sorted({r["received"] for r in runs})
        rows.append(
            Row(
                f"incremental: {label}",
                f"{'/'.join(str(n) for n in received)} requests sent (tool says "
                f"{'/'.join(str(n) for n in sorted({r['sent'] for r in runs}))}); {seconds['median']:.2f} real s "
                "for the whole `campaign generate`",
                f"exactly {expected[name]} requests; time vs first run",
                seconds["median"] / first["seconds"],
                command,
                ok,
            )
        )
    notes = [
        f"{variants:,} variants = {products} products × {scenes} scenes × {styles} styles, one recontext request "
        f"each ({MODEL}, 1024 px JPEG, composite off, backend gemini) against the emulator without latency, which "
        "answers with the product photo on a one-colour scene. Each step is "
        "`campaign generate bench.toml --json -q --store .store` in a new process with CAMPAIGN_VERTEX_ENDPOINT "
        f"set; median of {settings.runs} runs of each rerun (a new edit each run), one first run.",
        "Requests are counted by the emulator (received) and by the tool (`requests_sent`); the ratio is the "
        "rerun's wall time ÷ the first run's. The wall time includes the process start (~1 s of imports), "
        "loading and planning, the manifest, lockfile and report.html of all the variants.",
    ]
    shortfalls = []
    failed = [row.benchmark for row in rows if row.met is False]
    if failed:
        shortfalls.append(
            f"incremental: {', '.join(failed)}: the run sent a different number of requests than the variants it "
            "changed, or did not finish. This is a bug in content keys or the store, not a performance issue: see "
            "the JSON output (--json FILE) for the counts."
        )
    return Section(
        "incremental",
        "Incremental work",
        rows,
        notes,
        shortfalls,
        {"variants": variants, "expected": expected, "steps": steps, "exact": exact},
        failed_checks=failed,
    )
