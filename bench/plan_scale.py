"""Planning at scale: time and peak memory to load and plan 1k / 10k / 100k variants.

    python -m bench.plan_scale                 # all sizes, 5 runs each, a fresh process per run
    python -m bench.plan_scale --one 100000    # one run (used internally), prints JSON

Each run is a separate process so that peak memory (VmHWM) belongs to that run alone. The campaign is a
realistic shape: 20 products x 25 scenes x styles x aspect ratios, one recontext job, rendered prompts.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from generator import samples

SIZES = {1_000: (10, 10, 5, 2), 10_000: (20, 25, 10, 2), 100_000: (40, 50, 25, 2)}


def write_campaign(folder: Path, products: int, scenes: int, styles: int, ratios: int) -> Path:
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    assets = folder / "assets"
    assets.mkdir(exist_ok=True)
    lines = ['[campaign]\nid = "scale"\n', '[defaults]\nimages = 2\nmodel = "gemini-2.5-flash-image"\n']
    for p in range(products):
        path = assets / f"p{p}.png"
        samples.shoe(64, upper=(p * 37 % 256, p * 91 % 256, 120)).save(path)
        lines.append(
            f'[[products]]\nid = "p{p}"\ndescription = "product number {p}, a running shoe"\n'
            f'images = ["assets/p{p}.png"]\n'
        )
    for s in range(scenes):
        lines.append(f'[[scenes]]\nid = "s{s}"\nprompt = "scene {s}: a sunlit place with detail {s * 7}"\n')
    style_list = ", ".join(f'{{ id = "st{i}", prompt = "style {i} look" }}' for i in range(styles))
    ratio_list = ", ".join(f'"{r}"' for r in ["1:1", "16:9", "9:16", "4:5", "3:2"][:ratios])
    lines.append(
        '[[jobs]]\nid = "hero"\noperation = "recontext"\n'
        'prompt = "{{ product.description }} {{ scene.prompt }}, {{ style.prompt }}, {{ aspect_ratio }} frame"\n'
        f'[jobs.matrix]\nproduct = "*"\nscene = "*"\nstyle = [{style_list}]\naspect_ratio = [{ratio_list}]\n'
    )
    path = folder / "scale.toml"
    path.write_text("\n".join(lines))
    return path


def peak_memory_mb() -> float:
    """This process's peak resident memory: VmHWM, which belongs to the current program only.

    ``ru_maxrss`` is not used: Linux carries it over exec from the forked copy of the parent, so a child of a
    large process (the benchmark harness) reported the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(n: int) -> dict[str, float]:
    from generator.campaign import load_campaign
    from generator.planner import estimate, plan

    with tempfile.TemporaryDirectory() as tmp:
        path = write_campaign(Path(tmp), *SIZES[n])
        t0 = time.perf_counter()
        campaign = load_campaign(path)
        planned = plan(campaign)
        estimate(planned)
        seconds = time.perf_counter() - t0
        assert len(planned.variants) == n, len(planned.variants)
        peak_mb = peak_memory_mb()
        return {"variants": n, "requests": len(planned.requests), "seconds": seconds, "peak_mb": peak_mb}


def measure(sizes: Sequence[int], runs: int) -> list[dict[str, float]]:
    """Median time and peak memory of ``runs`` runs of each size, a fresh process per run."""
    rows = []
    for n in sizes:
        results = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-m", "bench.plan_scale", "--one", str(n)],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            ).stdout
            results.append(json.loads(out))
        rows.append(
            {
                "variants": n,
                "requests": results[0]["requests"],
                "seconds_median": statistics.median(r["seconds"] for r in results),
                "peak_mb_median": statistics.median(r["peak_mb"] for r in results),
                "seconds": [r["seconds"] for r in results],
                "peak_mb": [r["peak_mb"] for r in results],
                "runs": runs,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", type=int, help="run one size in this process and print JSON")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    for row in measure([int(x) for x in args.sizes.split(",")], args.runs):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
