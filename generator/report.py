"""The contact sheet: ``report.html`` and ``summary.md`` of a campaign's output folder, from its manifest alone.

Gather, then write: :func:`build_context` is pure (the manifest, the thumbnails made and a few facts from outside
in, a JSON-ready dict out); :func:`render_report` and :func:`render_summary_md` turn it into strings; only
:func:`write_report` touches the disk (thumbnails first, the two files last, each atomically).

Everything shown comes from pull requests (campaign names, prompts, axis values, ids), so:

* the HTML template is rendered with autoescaping, and the data the page's script needs is embedded as JSON in a
  ``<script type="application/json">`` with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, so that no value can
  close the tag or open a comment (:func:`script_json`);
* the script inserts text with ``textContent`` only, and the page's Content-Security-Policy allows just its own
  inline script and style (by hash): were something to slip through, the browser would still not run it;
* links and image sources are relative paths that :func:`_href` has checked and percent-encoded;
* in Markdown, text from the campaign goes into code spans (no formatting, links, HTML or @mentions).

The page renders one page of the grid at a time from the embedded JSON (see ``templates/report.js``), so a
campaign of 10,000 images opens as fast as one of 100.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from PIL import Image, ImageOps, features

import generator
from generator.models import lookup
from generator.planview import format_duration, format_usd
from generator.ratelimit import Clock, SystemClock
from generator.store import atomic_write

#: Longest side of a thumbnail, in pixels: sharp at 160 CSS pixels on a 2x screen.
THUMB_SIZE = 320
THUMBS_DIR = "thumbs"
#: The badges, in the order the report lists them. Made images show how they compare with the previous run;
#: the others show why there is no image.
BADGES = ("new", "changed", "unchanged", "filtered", "blocked", "failed", "pending")
#: A column axis with more values than this makes the grid too wide; another axis is chosen if one fits.
MAX_COLUMNS = 8
#: Rows of problems and changes listed in summary.md (a PR comment must stay short; the report has them all).
SUMMARY_ROWS = 20

_HEX = re.compile(r"^sha256:([0-9a-f]{64})$")
_SAFE_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\x00-\x1f\\]+$")
_KNOWN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "4:5", "5:4", "21:9", "9:21")


def templates_dir() -> Path:
    """The repository's ``templates/`` folder (beside the ``generator`` package)."""
    return Path(generator.__file__).resolve().parent.parent / "templates"


# --------------------------------------------------------------------------------------------------------------
# Context (pure)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Which commit of the campaign file the run used.

    Attributes:
        commit: the last commit that touched the file, or None when it is not in git.
        modified: the file has changes not committed yet (the commit alone does not describe the run).
    """

    commit: str | None = None
    modified: bool = False


def badge_of(image: Mapping[str, Any]) -> str:
    """The badge of one image of the manifest: how a made image compares with the last run, else its status."""
    if image.get("file") and image.get("status") in ("generated", "cached"):
        change = image.get("change")
        return change if change in ("new", "changed", "unchanged") else "new"
    status = image.get("status")
    return status if isinstance(status, str) and status in BADGES else "pending"


def build_context(
    manifest: Mapping[str, Any],
    thumbs: Mapping[str, str],
    *,
    source: Source | None = None,
    written: str | None = None,
) -> dict[str, Any]:
    """Everything the report and the summary show, from the manifest alone.

    Args:
        manifest: a ``campaign-manifest/1`` document (see :mod:`generator.outputs`).
        thumbs: the thumbnail of each image digest, as a path relative to the output folder. An image without
            one is shown from its full file.
        source: the commit of the campaign file (None: not looked up, shown as "not in git").
        written: when the report was written (ISO 8601), shown in the footer.

    Returns:
        A JSON-ready dict: header facts for the templates, and under ``data`` what the page's script renders.
    """
    source = source or Source()
    campaign = manifest.get("campaign", {})
    run = manifest.get("run", {})
    requests: Mapping[str, Mapping[str, Any]] = manifest.get("requests", {})
    variants: list[Mapping[str, Any]] = list(manifest.get("variants", []))
    job_specs: list[Mapping[str, Any]] = list(manifest.get("jobs", []))

    counts: Counter[str] = Counter()
    data_variants = []
    changed = []
    problems = []
    aspects: dict[str, None] = {}
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    # When a request's result was made: the same for all its images, so kept once per request (a 10,000-image
    # page is mostly this data).
    created: dict[str, str] = {}
    for v in variants:
        for image in v.get("images", []):
            if image.get("created") and image.get("request"):
                created.setdefault(image["request"], str(image["created"]))
    for v in variants:
        by_job.setdefault(v["job"], []).append(v)
        axes = {str(k): _text(x) for k, x in (v.get("axes") or {}).items()}
        images = []
        for image in v.get("images", []):
            badge = badge_of(image)
            counts[badge] += 1
            request = requests.get(image.get("request", ""), {})
            aspect = _aspect(request.get("params", {}), image)
            if aspect:
                aspects[aspect] = None
            entry = _image_entry(image, badge, thumbs)
            if aspect and aspect != request.get("params", {}).get("aspect_ratio"):
                entry["aspect"] = aspect  # else the page reads it from the request's parameters
            for key, value in (("model", request.get("model")), ("backend", request.get("backend"))):
                if image.get(key) and image.get(key) != value:
                    entry[key] = image[key]  # made by another model than planned (kept from an earlier run)
            if image.get("created") and image["created"] != created.get(image.get("request", "")):
                entry["created"] = _when(image["created"])
            images.append(entry)
            if badge == "changed" and "prev" in entry:
                changed.append({"variant": v["id"], "n": image["n"], "image": entry})
            elif badge in ("filtered", "blocked", "failed"):
                problems.append(
                    {"variant": v["id"], "n": image["n"], "badge": badge, "reason": image.get("reason") or ""}
                )
        data_variants.append(
            {
                "id": v["id"],
                "job": v["job"],
                "product": v.get("product"),
                "scene": v.get("scene"),
                "axes": axes,
                "prompt": v.get("prompt") or "",
                "source": v.get("source"),
                "images": images,
            }
        )

    jobs = []
    for spec in job_specs or [{"id": j, "name": j} for j in by_job]:
        members = by_job.get(spec["id"], [])
        axes_order, column = _layout(members)
        jobs.append(
            {
                "id": spec["id"],
                "name": spec.get("name") or spec["id"],
                "operation": spec.get("operation", ""),
                "description": spec.get("description") or "",
                "axes": axes_order,
                "column": column,
            }
        )

    filters = _filters(data_variants, jobs, list(aspects), counts)
    prompts = {v["prompt"] for v in data_variants}
    models = _models(requests)
    total_images = sum(counts.values())
    return {
        "tool": manifest.get("tool", "campaign-generator"),
        "campaign": {
            "id": campaign.get("id", ""),
            "name": campaign.get("name") or campaign.get("id", ""),
            "description": campaign.get("description") or "",
            "file": campaign.get("file", ""),
        },
        "source": {
            "commit": source.commit,
            "short": source.commit[:10] if source.commit else None,
            "modified": source.modified,
        },
        "run": {
            "finished": _when(run.get("finished")),
            "started": _when(run.get("started")),
            "duration": _duration(run.get("seconds")),
            "backend": run.get("backend") or "",
            "requests_sent": int(run.get("requests_sent") or 0),
            "throttled": int(run.get("throttled") or 0),
            "cost": format_usd(float(run.get("cost_usd") or 0.0)),
            "stopped": run.get("stopped"),
            "only": [str(s) for s in run.get("only") or []],
        },
        "totals": {"variants": len(variants), "images": total_images},
        "counts": [(b, counts[b]) for b in BADGES if counts[b]],
        "models": models,
        "jobs": jobs,
        "filters": filters,
        "changed": changed,
        "problems": problems,
        "written": _when(written),
        "data": {
            "jobs": jobs,
            "models": {m["id"]: m["warning"] for m in models if m["warning"]},
            "variants": data_variants,
            "requests": {key: _request_entry(r, created.get(key), prompts) for key, r in requests.items()},
        },
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _href(path: Any) -> str | None:
    """A relative path inside the output folder, percent-encoded for a ``src`` or ``href``; None for an absolute
    path or one with ``..``. Anything that looks like a URL scheme (``javascript:``) is encoded into a harmless
    relative name."""
    if not isinstance(path, str) or not _SAFE_PATH.match(path):
        return None
    return quote(path, safe="/")


def _thumb(digest: Any, thumbs: Mapping[str, str], fallback: str | None) -> str | None:
    made = thumbs.get(digest) if isinstance(digest, str) else None
    return _href(made) if made else fallback


def _image_entry(image: Mapping[str, Any], badge: str, thumbs: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"n": image.get("n"), "badge": badge, "request": image.get("request", "")}
    src = _href(image.get("file"))
    if src:
        entry.update(
            {
                "src": src,
                "thumb": _thumb(image.get("digest"), thumbs, src),
                "w": image.get("width"),
                "h": image.get("height"),
                "digest": image.get("digest", ""),
            }
        )
    previous = image.get("previous")
    prev_src = _href(previous.get("file")) if isinstance(previous, Mapping) else None
    if isinstance(previous, Mapping) and prev_src:
        entry["prev"] = {
            "src": prev_src,
            "thumb": _thumb(previous.get("digest"), thumbs, prev_src),
            "digest": previous.get("digest", ""),
        }
    for key in ("reason", "note"):
        if image.get(key):
            entry[key] = str(image[key])
    return entry


def _request_entry(request: Mapping[str, Any], created: str | None, prompts: set[str]) -> dict[str, Any]:
    entry = {
        "model": request.get("model", ""),
        "backend": request.get("backend", ""),
        "created": _when(created),
        "operation": request.get("operation", ""),
        "params": dict(request.get("params") or {}),
        "inputs": [
            {"role": i.get("role", ""), "file": i.get("file") or i.get("digest", "")} for i in request.get("inputs", [])
        ],
    }
    prompt = request.get("prompt") or ""
    if prompt not in prompts:  # the variant's prompt is shown; the request's only when it differs
        entry["prompt"] = prompt
    return entry


def _aspect(params: Mapping[str, Any], image: Mapping[str, Any]) -> str:
    """The aspect ratio asked for, else the nearest common ratio of the image's pixels (within 2%)."""
    asked = params.get("aspect_ratio")
    if isinstance(asked, str) and asked:
        return asked
    w, h = image.get("width"), image.get("height")
    if not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
        return ""
    for ratio in _KNOWN_RATIOS:
        a, b = (int(x) for x in ratio.split(":"))
        if abs(w / h - a / b) <= 0.02 * (a / b):
            return ratio
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def _layout(variants: Iterable[Mapping[str, Any]]) -> tuple[list[str], str | None]:
    """A job's axes (besides product and scene) in order of appearance, and the one shown as columns: the axis
    with the most values that still fits the width (ties: the first declared). None when no axis fits: every
    axis then labels rows, so that a row never holds more than one variant's images."""
    values: dict[str, dict[str, None]] = {}
    for v in variants:
        for name, value in (v.get("axes") or {}).items():
            values.setdefault(str(name), {})[_text(value)] = None
    names = list(values)
    fits = [n for n in names if len(values[n]) <= MAX_COLUMNS]
    return names, max(fits, key=lambda n: len(values[n])) if fits else None


def _filters(
    variants: list[dict[str, Any]], jobs: list[dict[str, Any]], aspects: list[str], counts: Counter[str]
) -> list[dict[str, Any]]:
    """The page's filters: each with the values present, in order of appearance."""

    def distinct(items: Iterable[Any]) -> list[str]:
        return list(dict.fromkeys(str(i) for i in items if i is not None))

    out: list[dict[str, Any]] = []
    if len(jobs) > 1:
        out.append({"key": "job", "label": "job", "values": [j["id"] for j in jobs]})
    for key in ("product", "scene"):
        found = distinct(v[key] for v in variants)
        if found:
            out.append({"key": key, "label": key, "values": found})
    axes: dict[str, dict[str, None]] = {}
    for v in variants:
        for name, value in v["axes"].items():
            axes.setdefault(name, {})[value] = None
    for name, found_values in axes.items():
        if name != "aspect_ratio":  # the aspect ratio filter below covers it, for every job
            out.append({"key": "axis:" + name, "label": name, "values": list(found_values)})
    if aspects:
        out.append({"key": "aspect", "label": "aspect ratio", "values": aspects})
    out.append({"key": "badge", "label": "status", "values": [b for b in BADGES if counts[b]]})
    return out


def _models(requests: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    used = Counter(str(r.get("model", "")) for r in requests.values() if r.get("model"))
    out = []
    for model in sorted(used):
        spec = lookup(model)
        life = spec.lifecycle if spec else None
        warning = None
        if spec is None:
            warning = "not in this tool's model registry"
        elif life is not None and life.status == "deprecated":
            warning = "deprecated"
            if life.successor:
                warning += f": migrate to {life.successor}"
            if life.migrate_by:
                warning += f" by {life.migrate_by}"
            if life.shutdown:
                warning += f" (shuts down {life.shutdown})"
        out.append(
            {
                "id": model,
                "title": spec.title if spec else model,
                "requests": used[model],
                "status": life.status if life else "unknown",
                "warning": warning,
            }
        )
    return out


def _when(value: Any) -> str:
    """``2026-01-01T09:30:00+00:00`` -> ``2026-01-01 09:30 UTC``; anything else as it is."""
    if not isinstance(value, str) or not value:
        return ""
    m = re.match(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|\+00:00)$", value)
    return f"{m.group(1)} {m.group(2)} UTC" if m else value


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "-"
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(seconds)


# --------------------------------------------------------------------------------------------------------------
# Rendering (pure)
# --------------------------------------------------------------------------------------------------------------


def script_json(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: nothing in it can end the element or start a
    comment, and it is still valid JSON (``JSON.parse`` reads ``\\u003c`` as ``<``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    for raw, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return Markup(text)


class _Md(str):
    """Markdown that a filter already made safe; :func:`_md_finalize` passes it through."""


def md_code(value: Any) -> _Md:
    """Text from the campaign as a Markdown code span: no formatting, link, HTML or @mention in it is active.

    The fence is longer than any run of backticks inside (CommonMark), pipes are escaped for tables (GFM
    splits cells before reading code spans) and line breaks become spaces.
    """
    text = " ".join(str(value).split()).replace("|", "\\|")
    if not text:
        return _Md("")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _Md(f"{fence}{pad}{text}{pad}{fence}")


def md_link(text: Any, href: Any) -> _Md:
    """``[text](href)`` for a path checked by :func:`_href` (already percent-encoded); text escaped."""
    target = str(href or "")
    if not target or not re.fullmatch(r"[A-Za-z0-9._~%/-]+", target):
        return _Md(_md_escape(text))
    return _Md(f"[{_md_escape(text)}]({target})")


def _md_escape(value: Any) -> str:
    text = re.sub(r"\s*\n\s*", " ", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+!|~@])", r"\\\1", text)


def _md_finalize(value: Any) -> Any:
    # Every {{ }} in the Markdown template is escaped unless a filter marked it safe: safe by default.
    if isinstance(value, _Md) or value is None:
        return "" if value is None else str(value)
    return _md_escape(value)


@cache
def _environments(folder: Path) -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.FileSystemLoader(folder)
    html = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    html.filters["script_json"] = script_json
    markdown = jinja2.Environment(
        loader=loader,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_md_finalize,
    )
    markdown.filters["code"] = md_code
    markdown.filters["link"] = md_link
    return html, markdown


def _asset(env: jinja2.Environment, name: str) -> str:
    assert env.loader is not None
    text = env.loader.get_source(env, name)[0]
    # The asset is inlined verbatim in a <script> or <style> element; it must not be able to close it.
    if re.search(r"</(script|style)|<!--", text, re.IGNORECASE):
        raise ValueError(f"templates/{name} must not contain </script, </style or <!--")
    return text


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_report(context: Mapping[str, Any]) -> str:
    """The contact sheet as one self-contained HTML page (inline CSS and script, relative links only)."""
    env = _environments(templates_dir())[0]
    script, style = _asset(env, "report.js"), _asset(env, "report.css")
    # Only this page's own script and style may run: defence in depth should an escape ever be missed.
    csp = (
        "default-src 'none'; img-src 'self' data:; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return env.get_template("report.html.j2").render(
        **context, script=Markup(script), style=Markup(style), csp=csp, badges=BADGES
    )


def render_summary_md(context: Mapping[str, Any]) -> str:
    """A Markdown summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY`` (links relative to the output
    folder)."""
    env = _environments(templates_dir())[1]
    return env.get_template("summary.md.j2").render(**context, limit=SUMMARY_ROWS)


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def thumbnail_format() -> tuple[str, str]:
    """(Pillow format, extension) of thumbnails: WebP when this Pillow has it, else JPEG."""
    return ("WEBP", "webp") if features.check("webp") else ("JPEG", "jpg")


def write_thumbnails(folder: Path, manifest: Mapping[str, Any], workers: int | None = None) -> dict[str, str]:
    """Make the missing thumbnails of ``folder`` (one per image digest, kept across runs) and remove those no
    image refers to any more.

    Returns:
        The thumbnail of each digest, relative to ``folder``. Images whose file is missing or cannot be
        decoded have none (the report then shows the full file, or nothing).
    """
    fmt, ext = thumbnail_format()
    sources: dict[str, str] = {}
    for v in manifest.get("variants", []):
        for image in v.get("images", []):
            for item in (image, image.get("previous") or {}):
                digest, file = item.get("digest"), item.get("file")
                if isinstance(digest, str) and _HEX.match(digest) and isinstance(file, str) and _href(file):
                    sources.setdefault(digest, file)
    base = folder / THUMBS_DIR
    made: dict[str, str] = {}
    todo: list[tuple[str, str, Path]] = []
    for digest, file in sources.items():
        name = f"{THUMBS_DIR}/{digest.removeprefix('sha256:')}.{ext}"
        if (folder / name).is_file():
            made[digest] = name
        elif (folder / file).is_file():
            todo.append((digest, name, folder / file))
    if todo:
        # Pillow releases the GIL while decoding, resizing and encoding: threads use every core.
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
            done = pool.map(lambda t: _make_thumbnail(t[2], folder / t[1], fmt), todo)
            for (digest, name, _), ok in zip(todo, done, strict=True):
                if ok:
                    made[digest] = name
    _prune_thumbnails(base, {Path(p).name for p in made.values()})
    return dict(sorted(made.items()))


def _make_thumbnail(source: Path, target: Path, fmt: str) -> bool:
    try:
        with Image.open(source) as im:
            im.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))  # JPEG: decode at a reduced scale, much faster
            # Bilinear in Pillow is a proper (antialiased) downscaling filter, and three times faster than
            # Lanczos at these sizes; a 320 px preview cannot tell them apart.
            im.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
            image = ImageOps.exif_transpose(im)
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        if has_alpha and fmt == "WEBP":
            image = image.convert("RGBA") if image.mode != "RGBA" else image
        elif has_alpha:  # JPEG has no alpha: flatten on white, as the page shows transparent images
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        elif image.mode != "RGB":
            image = image.convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format=fmt, quality=80, **({"method": 2} if fmt == "WEBP" else {"optimize": True}))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return False
    _publish(target, buf.getvalue())
    return True


def _prune_thumbnails(base: Path, keep: set[str]) -> None:
    if not base.is_dir():
        return
    for path in base.iterdir():
        if path.is_file() and path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def campaign_source(file: Path | None) -> Source:
    """The last commit of ``file`` and whether it has uncommitted changes; ``Source()`` when git is missing or
    the file is not in a repository."""
    if file is None or not file.is_file():
        return Source()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args, "--", file.name],
                cwd=file.parent,
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("log", "-1", "--format=%H")
    if not commit or not re.fullmatch(r"[0-9a-f]{40,64}", commit):
        return Source()
    return Source(commit, modified=bool(git("status", "--porcelain")))


def write_report(
    folder: Path, manifest: Mapping[str, Any], clock: Clock | None = None, campaign_file: Path | None = None
) -> Path:
    """Make the thumbnails, then write ``report.html`` and ``summary.md`` into ``folder`` (each atomically).

    Args:
        folder: the campaign's output folder, holding ``manifest.json`` and the images it lists.
        manifest: the manifest of the run (the report's only input besides the image files).
        clock: for the time the report was written (default: the system clock).
        campaign_file: the campaign file, to name the commit the run used (default: the manifest's
            ``campaign.file``, relative to the working directory).

    Returns:
        The path of ``report.html``.
    """
    clock = clock or SystemClock()
    if campaign_file is None and manifest.get("campaign", {}).get("file"):
        campaign_file = Path(manifest["campaign"]["file"])
    thumbs = write_thumbnails(folder, manifest)
    context = build_context(manifest, thumbs, source=campaign_source(campaign_file), written=clock.wall())
    html, markdown = render_report(context), render_summary_md(context)
    _publish(folder / "summary.md", markdown.encode())
    path = folder / "report.html"
    _publish(path, html.encode())
    return path


def _publish(path: Path, data: bytes) -> None:
    """Write atomically, readable by all: the folder is served as a static site or kept as a CI artifact
    (``atomic_write``'s temporary files are private, mode 0600)."""
    atomic_write(path, data)
    with contextlib.suppress(OSError):
        path.chmod(0o644)
