"""The planner: a validated campaign in, the exact minimal list of requests out. Pure.

``plan(campaign, options)`` expands every job's matrix, resolves each variant's settings (tool defaults <
``[defaults]`` < job < matrix values), checks them against the model registry, renders the prompt in the
sandbox, and turns variants into requests. Identical requests are shared; a variant wanting N images takes
ceil(N / max-per-request) requests; variants whose requests differ only in how many images they want share the
largest. Each request's key is a hash of its canonical JSON, so any change to the prompt, a parameter, the model
or the bytes of an input changes it, and nothing else does.

No network, no clock, no randomness, no environment: the same campaign and options give the same plan.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jinja2 import meta

from generator import schema
from generator.campaign import Campaign, Job, Origin, Product, format_key
from generator.errors import PlanError, Problem, UsageError
from generator.images import InputImage
from generator.matrix import Combination, count, expand, value_key
from generator.models import REGISTRY, ModelSpec, default_model, lookup
from generator.prompts import ENV, AxisVar, TemplateError, render

#: Bump when the key material changes shape: every key changes, every image is made again.
KEY_SCHEMA = 1
#: How each backend appears in keys. Bump the preview renderer's version when its drafts change.
BACKEND_KEY_IDS = {"preview": "preview/2", "vertex": "vertex", "gemini": "gemini"}

_REAL = ("vertex", "gemini")
_UINT32 = 2**32

# Settings each (model family, operation) sends or uses; any other setting does not reach the request.
_IMAGEN_COMMON = (
    "seed",
    "person_generation",
    "safety_filter_level",
    "add_watermark",
    "output_format",
    "output_quality",
)
_GEMINI_COMMON = (
    "seed",
    "person_generation",
    "safety_filter_level",
    "output_format",
    "output_quality",
)
REQUEST_SETTINGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("imagen", "generate"): (
        "aspect_ratio",
        "image_size",
        "negative_prompt",
        "language",
        "enhance_prompt",
        "guidance_scale",
        *_IMAGEN_COMMON,
    ),
    ("imagen", "recontext"): ("base_steps", "enhance_prompt", "composite", *_IMAGEN_COMMON),
    ("imagen", "bgswap"): (
        "negative_prompt",
        "language",
        "guidance_scale",
        "base_steps",
        "mask_mode",
        "mask_dilation",
        "mask_classes",
        "composite",
        *_IMAGEN_COMMON,
    ),
    ("imagen", "customize"): (
        "aspect_ratio",
        "negative_prompt",
        "language",
        "guidance_scale",
        *_IMAGEN_COMMON,
    ),
    ("imagen", "edit"): (
        "aspect_ratio",
        "negative_prompt",
        "language",
        "guidance_scale",
        "base_steps",
        "mask_mode",
        "mask_dilation",
        "mask_classes",
        "edit_mode",
        "canvas_scale",
        *_IMAGEN_COMMON,
    ),
    ("imagen", "upscale"): (
        "upscale_factor",
        "safety_filter_level",
        "person_generation",
        "output_format",
        "output_quality",
    ),
    ("gemini", "generate"): ("aspect_ratio", "image_size", *_GEMINI_COMMON),
    ("gemini", "recontext"): ("aspect_ratio", "image_size", "composite", *_GEMINI_COMMON),
    ("gemini", "bgswap"): ("mask_mode", "composite", *_GEMINI_COMMON),
    ("gemini", "customize"): ("aspect_ratio", "image_size", *_GEMINI_COMMON),
    ("gemini", "edit"): ("aspect_ratio", "mask_mode", "edit_mode", "canvas_scale", *_GEMINI_COMMON),
}
#: What the tool uses when nothing sets a value (None: leave it to the API's default).
TOOL_DEFAULTS: dict[str, Any] = {
    "backend": "preview",
    "images": 1,
    "aspect_ratio": "1:1",
    "output_format": "png",
    "composite": True,
    "edit_mode": "inpaint_insert",
    "canvas_scale": 1.5,
    "upscale_factor": "x2",
}
#: Defaults that depend on the operation (Google's advice for product background swaps: dilation 0, 75 steps).
OPERATION_DEFAULTS: dict[str, dict[str, Any]] = {"bgswap": {"mask_dilation": 0.0, "base_steps": 75}}


# --------------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    """An input of a request, identified by content.

    ``digest`` is the digest of a file's bytes as sent, or ``request:<key>#<index>`` for an image another
    request makes (chained jobs). ``reference`` is the customization reference number ([1], [2], …).
    """

    role: str  # raw | mask | product | subject | style | control
    digest: str
    file: InputImage | None = None
    upstream: tuple[str, int] | None = None
    reference: int | None = None

    def material(self) -> list[Any]:
        return [self.role, self.digest, self.reference]


@dataclass(frozen=True, slots=True)
class Request:
    """One API call. ``key`` identifies it by content; ``params`` holds every setting sent or used."""

    key: str
    backend: str
    model: str
    operation: str
    prompt: str | None
    params: Mapping[str, Any]
    inputs: tuple[Input, ...]
    part: int
    location: str | None
    job: str

    @property
    def sample_count(self) -> int:
        return int(self.params["sample_count"])

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "backend": self.backend,
            "model": self.model,
            "operation": self.operation,
            "prompt": self.prompt,
            "params": dict(self.params),
            "inputs": [_input_json(i) for i in self.inputs],
            "part": self.part,
            "location": self.location,
            "job": self.job,
        }


def _input_json(i: Input) -> dict[str, Any]:
    out: dict[str, Any] = {"role": i.role, "digest": i.digest}
    if i.file is not None:
        out["file"] = i.file.display
    if i.reference is not None:
        out["reference"] = i.reference
    return out


@dataclass(frozen=True, slots=True)
class Variant:
    """One combination of a job's matrix, and where each of its images comes from.

    ``images[n]`` is ``(request key, index of the image in that request's response)``.
    """

    id: str
    job: str
    product: str | None
    scene: str | None
    axes: tuple[tuple[str, str], ...]
    images: tuple[tuple[str, int], ...]
    prompt: str | None
    origin: str
    slug: str
    source: tuple[str, int] | None = None  # (upstream variant id, image index) for chained jobs
    selected: bool = True  # False: planned only because a selected variant needs its images

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "product": self.product,
            "scene": self.scene,
            "axes": dict(self.axes),
            "prompt": self.prompt,
            "origin": self.origin,
            "slug": self.slug,
            "images": [{"request": key, "index": index} for key, index in self.images],
            "source": {"variant": self.source[0], "image": self.source[1] + 1} if self.source else None,
            "selected": self.selected,
        }

    def value(self, name: str) -> str | None:
        if name == "job":
            return self.job
        if name == "product":
            return self.product
        if name == "scene":
            return self.scene
        for key, value in self.axes:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Plan:
    """What a run will do: the variants, the unique requests (in first-use order), and warnings."""

    campaign: Campaign
    backend: str
    variants: tuple[Variant, ...]
    requests: Mapping[str, Request]
    warnings: tuple[Problem, ...]
    options: PlanOptions

    @property
    def selected(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.selected)

    def jobs(self) -> tuple[str, ...]:
        return tuple(j.id for j in self.campaign.jobs)


@dataclass(frozen=True)
class PlanOptions:
    """Choices made on the command line rather than in the campaign file."""

    backend: str | None = None
    model_map: Mapping[str, str] = field(default_factory=dict)
    only: tuple[Selector, ...] = ()
    endpoint: str | None = None  # a custom Vertex AI base URL (the emulator): real-backend keys include it


@dataclass(frozen=True)
class Selector:
    """``--only 'job=hero,scene=beach|studio'``: every key must match one of its values."""

    terms: tuple[tuple[str, frozenset[str]], ...]
    text: str

    def matches(self, variant: Variant) -> bool:
        return all(variant.value(k) in values for k, values in self.terms)


def parse_selector(text: str) -> Selector:
    """Parse ``key=value[|value...][,key=value...]``."""
    terms: list[tuple[str, frozenset[str]]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, values = part.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UsageError(f"--only {text!r}: expected key=value[,key=value] (e.g. 'product=trail-shoe,scene=beach')")
        terms.append((key.strip(), frozenset(v.strip() for v in values.split("|"))))
    if not terms:
        raise UsageError(f"--only {text!r}: expected key=value[,key=value]")
    return Selector(tuple(terms), text)


# --------------------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------------------


def plan(campaign: Campaign, options: PlanOptions | None = None) -> Plan:
    """Turn a validated campaign into a plan.

    Raises:
        PlanError: a variant the model cannot serve, a template that fails to render, a matrix too large. Every
            problem is listed; one line covers all the variants a problem affects.
    """
    return _Planner(campaign, options or PlanOptions()).run()


@dataclass
class _Draft:
    """A variant before packing: everything but its request keys."""

    id: str
    job: Job
    product: str | None
    scene: str | None
    axes: tuple[tuple[str, str], ...]
    images: int
    prompt: str | None
    origin: str
    base: tuple[Any, ...]  # what identifies its requests, but for sample_count and part (see pack)
    group: tuple[Any, ...]  # what a request of this variant is made of
    source: tuple[str, int] | None = None
    selected: bool = True
    refs: list[tuple[str, int]] = field(default_factory=list)


class _Problems:
    """Problems grouped by (where, message), so a mistake shared by 10,000 variants is one line."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, int | None, str, str], list[str]] = defaultdict(list)

    def add(self, where: tuple[str, int | None, str], message: str, variant: str | None) -> None:
        self.groups[(*where, message)].append(variant or "")

    def problems(self) -> list[Problem]:
        out = []
        for (file, line, key, message), variants in self.groups.items():
            named = [v for v in variants if v]
            if named:
                more = f" and {len(named) - 1} more" if len(named) > 1 else ""
                message = f"{message} (variant {named[0]}{more})"
            out.append(Problem(file, line, key, message))
        return out


class _Planner:
    def __init__(self, campaign: Campaign, options: PlanOptions) -> None:
        self.c = campaign
        self.o = options
        self.errors = _Problems()
        self.warnings = _Problems()
        self.model_map = {**campaign.defaults.model_map, **options.model_map}
        self.product_vars = {p.id: _product_var(p) for p in campaign.products.values()}
        self.scene_vars = {
            s.id: {"id": s.id, "name": s.name, "prompt": s.prompt, "vars": dict(s.vars)}
            for s in campaign.scenes.values()
        }
        self.campaign_var = {
            "id": campaign.id,
            "name": campaign.name,
            "description": campaign.description,
        }
        self.drafts_by_job: dict[str, list[_Draft]] = {}
        self.requests: dict[str, Request] = {}
        self.parts: dict[tuple[Any, ...], list[str]] = {}  # base -> request keys of its parts
        self.need: dict[tuple[Any, ...], int] = {}  # base -> images needed
        self.base_info: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.canon = _Canon()
        self.variant_images: dict[str, tuple[tuple[str, int], ...]] = {}
        self.needed: set[str] = set()  # variants not selected but whose images selected variants need

    # -- entry ------------------------------------------------------------------------------------------------

    def run(self) -> Plan:
        jobs = {j.id: j for j in self.c.jobs}
        self.check_size(jobs)
        for level in _levels(self.c.jobs):
            for job in level:
                self.drafts_by_job[job.id] = self.expand_job(job, jobs)
            if self.errors.groups:
                break
            self.pack([d for job in level for d in self.drafts_by_job[job.id]])
        if self.errors.groups:
            raise PlanError(self.errors.problems())
        self.select()
        variants = self.finish()
        backend = self.o.backend or self.c.defaults.backend or TOOL_DEFAULTS["backend"]
        return Plan(
            campaign=self.c,
            backend=backend,
            variants=variants,
            requests=MappingProxyType(self.ordered_requests(variants)),
            warnings=tuple(self.warnings.problems()),
            options=self.o,
        )

    def check_size(self, jobs: Mapping[str, Job]) -> None:
        limit = self.c.limits.max_variants
        total = 0
        for job in self.c.jobs:
            n = self.estimate_variants(job, jobs)
            total += n
            if n > limit:
                self.errors.add(
                    self.where(job.origin, "matrix"),
                    f"this matrix expands to {n:,} variants, over the limit of {limit:,} "
                    "([limits].max_variants); split the job or narrow its axes",
                    None,
                )
        if total > limit and not self.errors.groups:
            raise PlanError(
                f"{self.c.display}: the jobs expand to {total:,} variants in all, over the limit of "
                f"{limit:,} ([limits].max_variants)"
            )
        if self.errors.groups:
            raise PlanError(self.errors.problems())

    def estimate_variants(self, job: Job, jobs: Mapping[str, Job]) -> int:
        axes, _, include = self.axes_of(job)
        own = count(axes, include) if axes or include else 1
        source = job.spec.source
        if source and source != "product" and source in jobs:
            upstream = jobs[source]
            images = int(upstream.spec.images or self.c.defaults.images or 1)
            return own * self.estimate_variants(upstream, jobs) * images
        return own

    # -- matrix -----------------------------------------------------------------------------------------------

    def axes_of(self, job: Job) -> tuple[list[tuple[str, list[Any]]], list[dict[str, Any]], list[dict[str, Any]]]:
        m = job.spec.matrix
        if m is None:
            return [], [], []
        axes: list[tuple[str, list[Any]]] = []
        if m.product is not None:
            ids = list(self.c.products) if m.product == ("*",) else list(m.product)
            axes.append(("product", ids))
        if m.scene is not None:
            ids = list(self.c.scenes) if m.scene == ("*",) else list(m.scene)
            axes.append(("scene", ids))
        for name, values in (m.model_extra or {}).items():
            axes.append((name, [AxisVar(v.id, v.model_extra) for v in values]))
        tables = {name: {value_key(v): v for v in values} for name, values in axes}
        include = []
        for entry in m.include:
            resolved: dict[str, Any] = {}
            for k, v in entry.items():
                existing = tables.get(k, {}).get(value_key(v))
                if k in ("product", "scene"):
                    resolved[k] = v
                else:
                    resolved[k] = existing if existing is not None else AxisVar(v)
            include.append(resolved)
        return axes, list(m.exclude), include

    def combinations(self, job: Job) -> Iterable[Combination]:
        axes, exclude, include = self.axes_of(job)
        if not axes and not include:
            return [Combination(())]
        return expand(axes, exclude, include)

    def expand_job(self, job: Job, jobs: Mapping[str, Job]) -> list[_Draft]:
        source = job.spec.source
        builder = _VariantBuilder(self, job)
        drafts: list[_Draft] = []
        if source and source != "product":
            upstream_drafts = self.drafts_by_job.get(source, [])
            own = list(self.combinations(job))
            own_axes = {name for name, _ in self.axes_of(job)[0]}
            for up in upstream_drafts:
                up_values = {"product": up.product, "scene": up.scene, **dict(up.axes)}
                for combo in own:
                    values = dict(combo.values)
                    # Axes the source job has act as filters; the others are new axes of this job.
                    if any(
                        name in up_values and value_key(values[name]) != up_values[name]
                        for name in own_axes
                        if name in values
                    ):
                        continue
                    extra = {k: v for k, v in values.items() if k not in up_values}
                    for n in range(up.images):
                        drafts.extend(builder.build(combo, extra, upstream=(up, n)))
        else:
            for combo in self.combinations(job):
                drafts.extend(builder.build(combo, dict(combo.values)))
        return drafts

    # -- packing ----------------------------------------------------------------------------------------------

    def pack(self, drafts: Sequence[_Draft]) -> None:
        for d in drafts:
            self.need[d.base] = max(self.need.get(d.base, 0), d.images)
            self.base_info.setdefault(d.base, d.group)
        all_images: dict[tuple[Any, ...], tuple[tuple[str, int], ...]] = {}
        for d in drafts:
            images = all_images.get(d.base)
            if images is None:
                keys = self.parts.get(d.base)
                if keys is None:
                    keys = self.parts[d.base] = self.make_requests(d.base, d.job.id)
                images = all_images[d.base] = tuple(
                    (key, i) for key in keys for i in range(self.requests[key].sample_count)
                )
            self.variant_images[d.id] = images if len(images) == d.images else images[: d.images]

    def make_requests(self, base: tuple[Any, ...], job: str) -> list[str]:
        backend, key_backend, spec, op, prompt, params, inputs, location = self.base_info[base]
        params_json, inputs_json = base[4], base[5]
        need = self.need[base]
        per = spec.max_images_per_request
        counts = [per] * (need // per) + ([need % per] if need % per else [])
        seed = params.get("seed")
        keys = []
        for part, n in enumerate(counts):
            # Same seed and prompt would repeat the first images: each further part gets the next seed.
            part_seed = (seed + part) % _UINT32 if part and seed is not None else seed
            part_params, part_json = self.canon.part_params(params_json, params, n, part_seed)
            material = key_material(key_backend, spec.id, op, prompt, part_json, inputs_json, part)
            key = hashlib.sha256(material.encode()).hexdigest()[:32]
            self.requests[key] = Request(key, backend, spec.id, op, prompt, part_params, inputs, part, location, job)
            keys.append(key)
        return keys

    # -- selection --------------------------------------------------------------------------------------------

    def select(self) -> None:
        if not self.o.only:
            return
        known = {"job", "product", "scene"}
        for drafts in self.drafts_by_job.values():
            for d in drafts:
                known.update(k for k, _ in d.axes)
        for selector in self.o.only:
            for key, _ in selector.terms:
                if key not in known:
                    raise UsageError(
                        f"--only {selector.text!r}: no variant has {key!r} (keys: {', '.join(sorted(known))})"
                    )
        by_id = {d.id: d for drafts in self.drafts_by_job.values() for d in drafts}
        for d in by_id.values():
            d.selected = any(s.matches(_view(d)) for s in self.o.only)
        # A selected variant of a chained job needs the images of its source variant.
        needed = self.needed
        for d in by_id.values():
            current = d
            while current.selected or current.id in needed:
                if current.source is None:
                    break
                needed.add(current.source[0])
                current = by_id[current.source[0]]

    def finish(self) -> tuple[Variant, ...]:
        needed = self.needed
        out: list[Variant] = []
        for job in self.c.jobs:
            drafts = self.drafts_by_job.get(job.id, [])
            slugs = _slugs(job.id, drafts)
            for d in drafts:
                if not d.selected and d.id not in needed:
                    continue
                out.append(
                    Variant(
                        id=d.id,
                        job=job.id,
                        product=d.product,
                        scene=d.scene,
                        axes=d.axes,
                        images=self.variant_images[d.id],
                        prompt=d.prompt,
                        origin=d.origin,
                        slug=slugs[d.id],
                        source=d.source,
                        selected=d.selected,
                    )
                )
        return tuple(out)

    def ordered_requests(self, variants: Sequence[Variant]) -> dict[str, Request]:
        out: dict[str, Request] = {}
        for v in variants:
            for key, _ in v.images:
                if key not in out:
                    out[key] = self.requests[key]
        return out

    # -- helpers ----------------------------------------------------------------------------------------------

    def where(self, origin: Origin, *sub: str | int) -> tuple[str, int | None, str]:
        file, line = self.c.locate(origin, *sub)
        return file, line, format_key((*origin.path, *sub))


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a variant's requests are made of, except the prompt (see _VariantBuilder.build)."""

    errors: tuple[tuple[Any, str], ...]
    backend: str = ""
    key_backend: str = ""
    spec: ModelSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)
    params_json: str = ""
    inputs: tuple[Input, ...] = ()
    inputs_json: str = ""
    images: int = 0
    location: str | None = None


_SETTING_SET = frozenset(schema.SETTING_NAMES)


@dataclass(frozen=True, slots=True)
class _Located:
    """A problem location already resolved to (file, line, key)."""

    where: tuple[str, int | None, str]


def _view(d: _Draft) -> Variant:
    return Variant(d.id, d.job.id, d.product, d.scene, d.axes, (), d.prompt, d.origin, "")


class _VariantBuilder:
    """Builds the drafts of one job: settings, checks, prompt, inputs."""

    def __init__(self, planner: _Planner, job: Job) -> None:
        self.p = planner
        self.c = planner.c
        self.job = job
        self.op = job.operation
        spec = job.spec
        # Settings by layer, each with where it was set (for messages) and whether it was explicit.
        self.base: dict[str, tuple[Any, tuple[str | int, ...], bool]] = {}
        relevant = schema.OPERATION_SETTINGS[self.op]
        for name, value in TOOL_DEFAULTS.items():
            if name in relevant:
                self.base[name] = (value, (), False)
        for name, value in OPERATION_DEFAULTS.get(self.op, {}).items():
            self.base[name] = (value, (), False)
        for name in schema.SETTING_NAMES:
            value = getattr(self.c.defaults, name)
            if value is not None and name in relevant:
                self.base[name] = (value, ("defaults", name), False)
        for name in schema.SETTING_NAMES:
            value = getattr(spec, name)
            if value is not None:
                self.base[name] = (value, (*job.origin.path, name), True)
        self.template_vars = {
            "campaign": planner.campaign_var,
            "job": {
                "id": spec.id,
                "name": spec.name or spec.id,
                "operation": self.op,
                "description": spec.description or "",
            },
        }
        self.referenced: tuple[str, ...] | None = None
        if job.template is not None:
            ast = ENV.parse(job.template.text)
            self.referenced = tuple(sorted(meta.find_undeclared_variables(ast)))
        self.prompt_cache: dict[tuple[Any, ...], str] = {}
        self.warned: set[tuple[str, str]] = set()
        self.shapes: dict[tuple[Any, ...], _Shape] = {}

    def build(
        self,
        combo: Combination,
        values: Mapping[str, Any],
        upstream: tuple[_Draft, int] | None = None,
    ) -> list[_Draft]:
        job = self.job
        if upstream is not None:
            up, n = upstream
            product_id, scene_id = up.product, up.scene
            axes = [*up.axes, ("image", str(n + 1))]
            axis_vars: dict[str, Any] = {k: AxisVar(v) for k, v in up.axes}
            axis_vars["image"] = AxisVar(n + 1)
            origin = f"{up.id} image {n + 1}" + ("" if combo.origin == "matrix" else f", {combo.origin}")
        else:
            product_id = values.get("product")
            scene_id = values.get("scene")
            axes, axis_vars = [], {}
            origin = combo.origin
        for name, value in values.items():
            if name in ("product", "scene"):
                continue
            axes.append((name, value_key(value)))
            axis_vars[name] = value
        vid = _variant_id(job.id, product_id, scene_id, axes)
        prompt_errors: list[tuple[Any, str]] = []
        prompt = self.render_prompt(
            product_id, scene_id, axis_vars, values, vid, lambda t, m: prompt_errors.append((t, m)), upstream
        )
        # Everything but the prompt depends only on the product, the setting axes and the source image: planned
        # once per distinct combination of those (tens of shapes for 100,000 variants).
        shape_key = (
            product_id,
            tuple((k, value_key(v)) for k, v in values.items() if k in _SETTING_SET),
            None if upstream is None else (upstream[0].id, upstream[1]),
        )
        shape = self.shapes.get(shape_key)
        if shape is None:
            shape = self.shape(values, product_id, upstream)
            if upstream is None:
                self.shapes[shape_key] = shape
        errors = prompt_errors + list(shape.errors)
        if shape.spec is not None and prompt is not None and shape.spec.max_prompt_tokens:
            limit = shape.spec.max_prompt_tokens
            # Each counted token is at least one character: only prompts longer than the limit need counting.
            if len(prompt) > limit and _token_floor(prompt) > limit:
                errors.append(
                    (
                        self.template_path(),
                        f"the prompt has at least {_token_floor(prompt)} tokens; {shape.spec.id} accepts {limit}",
                    )
                )
        if errors:
            for target, message in errors:
                located = target.where if isinstance(target, _Located) else self.where(target)
                self.p.errors.add(located, message, vid)
            return []
        assert shape.spec is not None
        base = (shape.key_backend, shape.spec.id, self.op, prompt, shape.params_json, shape.inputs_json, shape.location)
        group = (
            shape.backend,
            shape.key_backend,
            shape.spec,
            self.op,
            prompt,
            shape.params,
            shape.inputs,
            shape.location,
        )
        return [
            _Draft(
                id=vid,
                job=job,
                product=product_id,
                scene=scene_id,
                axes=tuple(axes),
                images=shape.images,
                prompt=prompt,
                origin=origin,
                base=base,
                group=group,
                source=(upstream[0].id, upstream[1]) if upstream else None,
            )
        ]

    def shape(self, values: Mapping[str, Any], product_id: str | None, upstream: tuple[_Draft, int] | None) -> _Shape:
        """Settings, model, parameters and inputs of a variant, with their problems."""
        matrix_path = (*self.job.origin.path, "matrix")
        settings = dict(self.base)
        for name, value in values.items():
            if name in _SETTING_SET:
                settings[name] = (value["id"] if isinstance(value, AxisVar) else value, (*matrix_path, name), True)
        product = self.c.products.get(product_id) if product_id else None
        errors: list[tuple[Any, str]] = []

        def fail(target: Any, message: str) -> None:
            errors.append((target, message))

        resolved = self.resolve_model(settings, fail)
        if resolved is None:
            return _Shape(errors=tuple(errors))
        backend, spec, _model_path = resolved
        params = self.request_params(settings, spec, product, fail)
        inputs = tuple(self.inputs(product, params, spec, fail, upstream))
        key_backend = BACKEND_KEY_IDS[backend]
        if backend in _REAL and self.p.o.endpoint:
            key_backend += "@" + self.p.o.endpoint
        canon = self.p.canon
        return _Shape(
            errors=tuple(errors),
            backend=backend,
            key_backend=key_backend,
            spec=spec,
            params=params,
            params_json=canon.params(params),
            inputs=inputs,
            inputs_json=canon.inputs(inputs),
            images=int(settings["images"][0]),
            location=settings.get("location", (None,))[0],
        )

    # -- pieces -----------------------------------------------------------------------------------------------

    def where(self, target: Origin | tuple[str | int, ...] | None) -> tuple[str, int | None, str]:
        """Locate a problem: a key path in the campaign file, an Origin (e.g. in an included file), or None for
        the job itself."""
        if isinstance(target, Origin):
            file, line = self.c.locate(target)
            return file, line, format_key(target.path)
        path = target or self.job.origin.path
        file, line = self.c.locate(Origin(self.job.origin.file, ()), *path)
        return file, line, format_key(path)

    def template_path(self, lineno: int | None = None) -> _Located:
        """Where a template problem is: the template's file and line (inline templates: in the TOML file)."""
        template = self.job.template
        assert template is not None
        line = template.first_line + (lineno or 1) - 1
        return _Located((template.file, line, format_key(template.origin.path)))

    def render_prompt(
        self,
        product_id: str | None,
        scene_id: str | None,
        axis_vars: Mapping[str, Any],
        values: Mapping[str, Any],
        vid: str,
        fail: Callable[..., None],
        upstream: tuple[_Draft, int] | None,
    ) -> str | None:
        template = self.job.template
        if template is None:
            return None
        variables: dict[str, Any] = dict(self.template_vars)
        if product_id is not None:
            variables["product"] = self.p.product_vars[product_id]
        if scene_id is not None:
            variables["scene"] = self.p.scene_vars[scene_id]
        variables.update(axis_vars)
        if upstream is not None:
            variables["source"] = {
                "job": upstream[0].job.id,
                "variant": upstream[0].id,
                "image": upstream[1] + 1,
                "prompt": upstream[0].prompt or "",
            }
        assert self.referenced is not None
        cache_key = tuple(_cache_part(name, variables.get(name)) for name in self.referenced)
        cached = self.prompt_cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            text = render(template.text, variables)
        except TemplateError as e:
            fail(self.template_path(e.lineno), f"template {template.name!r}: {e.message}")
            return None
        self.prompt_cache[cache_key] = text
        return text

    def resolve_model(
        self,
        settings: Mapping[str, tuple[Any, tuple[str | int, ...], bool]],
        fail: Callable[..., None],
    ) -> tuple[str, ModelSpec, tuple[str | int, ...]] | None:
        requested_backend = self.p.o.backend or settings["backend"][0]
        model_id, model_path, _ = settings.get("model", (None, (), False))
        family_hint = "gemini" if requested_backend == "gemini" else "vertex"
        if model_id is None:
            model_id = default_model(family_hint, self.op)  # type: ignore[arg-type]
            model_path = self.job.origin.path
            if model_id is None:
                fail(None, f'no Gemini model can do {self.op!r}; set backend = "vertex" on this job')
                return None
        mapped = self.p.model_map.get(model_id)
        if mapped is not None:
            model_id = mapped
        spec = lookup(model_id)
        if spec is None:  # the loader checks names in the file; this is a --model-map target
            fail(model_path, f"unknown model {model_id!r}")
            return None
        backend = requested_backend
        if backend in _REAL:
            wanted = "gemini" if spec.family == "gemini" else "vertex"
            if wanted != backend:
                if mapped is not None or self.p.o.backend in _REAL:
                    # Re-targeted, or "--backend vertex|gemini" on the command line (meaning: the real services):
                    # the model decides which API serves it.
                    backend = wanted
                else:
                    fail(
                        model_path,
                        f"{spec.id} is {'a Gemini' if spec.family == 'gemini' else 'an Imagen'} "
                        f"model, served by backend {wanted!r}, not {backend!r}; set backend = "
                        f"{wanted!r} or re-target with --model-map {spec.id}=<model>",
                    )
                    return None
        if self.op not in spec.operations:
            able = sorted(m for m, s in REGISTRY.items() if self.op in s.operations)
            fail(
                model_path,
                f"{spec.id} cannot do {self.op!r} (it does: {', '.join(spec.operations)}); models "
                f"for {self.op!r}: {', '.join(able)}",
            )
            return None
        lc = spec.lifecycle
        if lc.status == "deprecated" and (self.job.id, spec.id) not in self.warned:
            self.warned.add((self.job.id, spec.id))
            when = f" (Google recommends migrating before {lc.migrate_by})" if lc.migrate_by else ""
            gone = f"; shut down on {lc.shutdown}" if lc.shutdown else ""
            hint = (
                f"; successor: {lc.successor} (re-target with --model-map {spec.id}={lc.successor})"
                if lc.successor and self.op in (lookup(lc.successor) or spec).operations
                else ""
            )
            self.p.warnings.add(self.where(model_path), f"{spec.id} is deprecated{when}{gone}{hint}", None)
        return backend, spec, model_path

    def request_params(
        self,
        settings: Mapping[str, tuple[Any, tuple[str | int, ...], bool]],
        spec: ModelSpec,
        product: Product | None,
        fail: Callable[..., None],
    ) -> dict[str, Any]:
        used = REQUEST_SETTINGS[(spec.family, self.op)]
        supported = set(used)
        if not spec.supports_seed:
            supported.discard("seed")
        if not spec.supports_negative_prompt:
            supported.discard("negative_prompt")
        if not spec.supports_language:
            supported.discard("language")
        if not spec.supports_enhance_prompt:
            supported.discard("enhance_prompt")
        fmt = settings["output_format"][0]
        if fmt == "png":
            supported.discard("output_quality")
        params: dict[str, Any] = {}
        for name, (value, path, explicit) in settings.items():
            if name in ("backend", "model", "location", "images"):
                continue
            if name not in supported:
                if explicit and name != "output_quality" and (self.job.id, name) not in self.warned:
                    self.warned.add((self.job.id, name))
                    self.p.warnings.add(
                        self.where(path),
                        f"{name!r} is ignored: {spec.id} does not take it for {self.op!r}",
                        None,
                    )
                continue
            params[name] = list(value) if isinstance(value, tuple) else value
        if fmt in ("jpeg", "webp") and "output_quality" not in params:
            params["output_quality"] = 90
        if "mask_mode" in supported and "mask_mode" not in params and self.needs_mask(params):
            params["mask_mode"] = (
                "user"
                if product is not None and product.mask is not None
                else ("background" if self.op == "bgswap" else "foreground")
            )
        if self.op == "edit" and params.get("edit_mode") == "outpaint":
            params.pop("mask_mode", None)  # the outpainting mask is the canvas border, made from the source
            params.pop("mask_dilation", None)
            params.pop("mask_classes", None)
        elif self.op == "edit":
            params.pop("canvas_scale", None)
            params.pop("aspect_ratio", None)
        if self.op == "upscale":
            params.pop("aspect_ratio", None)
        self.check_params(settings, params, spec, product, fail)
        return params

    def needs_mask(self, params: Mapping[str, Any]) -> bool:
        return self.op == "bgswap" or (self.op == "edit" and params.get("edit_mode") != "outpaint")

    def check_params(
        self,
        settings: Mapping[str, tuple[Any, tuple[str | int, ...], bool]],
        params: Mapping[str, Any],
        spec: ModelSpec,
        product: Product | None,
        fail: Callable[..., None],
    ) -> None:
        def path(name: str) -> tuple[str | int, ...] | None:
            return settings[name][1] if name in settings else None

        ratio = settings.get("aspect_ratio", (None,))[0]
        uses_ratio = "aspect_ratio" in params or (spec.family == "imagen" and self.op == "recontext")
        if uses_ratio and ratio is not None and ratio not in spec.aspect_ratios:
            fail(
                path("aspect_ratio"),
                f"aspect ratio {ratio!r} is not offered by {spec.id} (it has: {', '.join(spec.aspect_ratios)})",
            )
        size = params.get("image_size")
        if size is not None and size not in spec.image_sizes:
            fail(
                path("image_size"),
                f"image size {size!r} is not offered by {spec.id} (it has: {', '.join(spec.image_sizes)})",
            )
        if spec.family == "imagen" and params.get("seed") is not None and params.get("add_watermark") is not False:
            fail(
                path("seed"),
                "Imagen refuses a seed while the watermark is on (its default): set "
                "add_watermark = false, or remove the seed",
            )
        factor = params.get("upscale_factor")
        if factor is not None and factor not in spec.upscale_factors:
            fail(
                path("upscale_factor"),
                f"upscale factor {factor!r} is not offered by {spec.id} (it has: {', '.join(spec.upscale_factors)})",
            )
        if params.get("mask_mode") == "semantic" and spec.family == "gemini":
            fail(
                path("mask_mode"),
                f'{spec.id} edits by instruction and cannot use mask_mode = "semantic"; use '
                '"user", "background" or "foreground"',
            )
        elif params.get("mask_mode") == "semantic" and not params.get("mask_classes"):
            fail(
                path("mask_mode"),
                'mask_mode = "semantic" needs mask_classes = [...] (segmentation class ids)',
            )
        if params.get("mask_mode") == "user" and (
            product is None or product.mask is None or self.job.spec.source not in (None, "product")
        ):
            where = (
                "the product has no mask file"
                if product is None or product.mask is None
                else "the source is another job's output, which the product mask does not fit"
            )
            fail(
                path("mask_mode"),
                f'mask_mode = "user" needs the product\'s mask, but {where}; set mask = "..." '
                'on the product or choose mask_mode "background" or "foreground"',
            )

    def inputs(
        self,
        product: Product | None,
        params: Mapping[str, Any],
        spec: ModelSpec,
        fail: Callable[..., None],
        upstream: tuple[_Draft, int] | None,
    ) -> list[Input]:
        op = self.op
        out: list[Input] = []
        needs_product = (
            op == "recontext"
            or (op in ("bgswap", "edit", "upscale") and upstream is None)
            or (op == "customize" and any(r.type == "subject" and not r.images for r in self.job.references))
        )
        if needs_product and product is None:
            fail(
                None,
                f'operation {op!r} needs a product in every variant: add product = [...] (or "*") to the matrix',
            )
            return out
        if op == "recontext":
            assert product is not None
            if len(product.images) > spec.max_input_images:
                fail(
                    Origin(product.origin.file, (*product.origin.path, "images")),
                    f"{spec.id} takes at most {spec.max_input_images} product "
                    f"images, this product has {len(product.images)}",
                )
            out.extend(Input("product", img.digest, img) for img in product.images)
        elif op in ("bgswap", "edit", "upscale"):
            if upstream is not None:
                up, n = upstream
                image = self.p.variant_images[up.id][n]
                out.append(Input("raw", f"request:{image[0]}#{image[1]}", None, image))
            else:
                assert product is not None
                out.append(Input("raw", product.images[0].digest, product.images[0]))
        elif op == "customize":
            total = 0
            for ref in self.job.references:
                files = ref.images or (product.images if product is not None else ())
                total += len(files)
                out.extend(Input(ref.type, img.digest, img, reference=ref.number) for img in files)
            if total > spec.max_input_images:
                fail(
                    None,
                    f"{spec.id} takes at most {spec.max_input_images} reference images, this job gives {total}",
                )
        # The product mask: the user mask for editing, and what the product-preserving composite uses.
        if (
            product is not None
            and product.mask is not None
            and upstream is None
            and (params.get("mask_mode") == "user" or params.get("composite"))
        ):
            out.append(Input("mask", product.mask.digest, product.mask))
        if op == "customize":
            refs = []
            for ref in self.job.references:
                entry: dict[str, Any] = {"id": ref.number, "type": ref.type}
                if ref.type == "subject":
                    entry["subject_type"] = ref.subject_type or (product.subject_type if product else "default")
                    entry["description"] = ref.description or (product.description if product else "")
                elif ref.type == "style":
                    entry["description"] = ref.description or ""
                else:
                    entry["control_type"] = ref.control_type
                    entry["compute"] = ref.compute
                refs.append(entry)
            params["references"] = refs  # type: ignore[index]
        return out


def shard_of(plan: Plan, key: str, shards: int) -> int:
    """The shard (0-based) that makes request ``key``: chosen from the key of the first request of its chain, so a
    chained job's requests run in the same shard as the images they take."""
    seen = set()
    while True:
        request = plan.requests.get(key)
        upstream = next((i.upstream[0] for i in request.inputs if i.upstream), None) if request else None
        if upstream is None or upstream in seen:
            return int(key[:8], 16) % shards
        seen.add(key)
        key = upstream


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/5"`` -> ``(1, 5)`` (0-based index, count)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return i - 1, n


# --------------------------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Counts, cost and minimum duration, for one job or the whole plan."""

    variants: int
    images: int
    requests: int
    cached: int
    to_send: int
    images_to_make: int
    cost_usd: float
    real_cost_usd: float  # what the same requests cost on Vertex AI (for preview plans)
    min_seconds: float
    models: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "variants": self.variants,
            "images": self.images,
            "requests": self.requests,
            "cached": self.cached,
            "to_send": self.to_send,
            "images_to_make": self.images_to_make,
            "cost_usd": round(self.cost_usd, 4),
            "real_cost_usd": round(self.real_cost_usd, 4),
            "min_seconds": round(self.min_seconds, 1),
            "models": list(self.models),
        }


def price_of(plan: Plan, model: str) -> float:
    override = plan.campaign.limits.price_per_image_usd.get(model)
    if override is not None:
        return override
    spec = lookup(model)
    return spec.price_per_image_usd if spec else 0.0


def rpm_of(plan: Plan, model: str) -> int:
    override = plan.campaign.limits.requests_per_minute.get(model)
    if override is not None:
        return override
    spec = lookup(model)
    return spec.requests_per_minute if spec else 60


def estimate(
    plan: Plan, cached: Callable[[str], bool] = lambda key: False, locations: int = 1
) -> tuple[dict[str, Estimate], Estimate]:
    """Estimates per job and in total. ``cached(key)`` says whether the store already holds a request's images.

    A request shared by several jobs counts in the first. The duration is a lower bound: requests to send divided
    by each model's requests-per-minute quota (models have separate quotas and run side by side; each location
    adds its own quota).
    """
    jobs = plan.jobs()
    variants: dict[str, int] = dict.fromkeys(jobs, 0)
    images: dict[str, int] = dict.fromkeys(jobs, 0)
    first_job: dict[str, str] = {}
    for v in plan.variants:
        if not v.selected:
            continue
        variants[v.job] += 1
        images[v.job] += len(v.images)
        for key, _ in v.images:
            if key not in first_job:
                first_job[key] = v.job
    prices = {m: price_of(plan, m) for m in {r.model for r in plan.requests.values()}}
    acc = {job: _Acc() for job in jobs}
    total = _Acc()
    for key, job in first_job.items():
        r = plan.requests[key]
        for a in (acc[job], total):
            a.add(r, cached(key), prices[r.model])
    per_job = {job: acc[job].estimate(plan, variants[job], images[job], locations) for job in jobs}
    return per_job, total.estimate(plan, sum(variants.values()), sum(images.values()), locations)


class _Acc:
    """Running totals for one estimate."""

    def __init__(self) -> None:
        self.requests = self.cached = self.to_send = self.images_to_make = 0
        self.cost = self.real = 0.0
        self.by_model: dict[str, int] = defaultdict(int)
        self.models: set[str] = set()

    def add(self, r: Request, is_cached: bool, price: float) -> None:
        self.requests += 1
        self.models.add(r.model)
        if is_cached:
            self.cached += 1
            return
        self.to_send += 1
        n = r.params["sample_count"]
        self.images_to_make += n
        self.real += price * n
        if r.backend in _REAL:
            self.cost += price * n
            self.by_model[r.model] += 1

    def estimate(self, plan: Plan, variants: int, images: int, locations: int) -> Estimate:
        seconds = max((60.0 * n / (rpm_of(plan, m) * max(1, locations)) for m, n in self.by_model.items()), default=0.0)
        return Estimate(
            variants=variants,
            images=images,
            requests=self.requests,
            cached=self.cached,
            to_send=self.to_send,
            images_to_make=self.images_to_make,
            cost_usd=self.cost,
            real_cost_usd=self.real,
            min_seconds=seconds,
            models=tuple(sorted(self.models)),
        )


# --------------------------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def key_material(
    key_backend: str, model: str, operation: str, prompt: str | None, params_json: str, inputs_json: str, part: int
) -> str:
    """The canonical JSON a request key hashes: exactly ``_canonical`` of the material dict, assembled from
    pre-serialised parts because 100,000 variants make 200,000 keys (tests check the two agree)."""
    return (
        f'{{"backend":{_str_json(key_backend)},"inputs":{inputs_json},"model":{_str_json(model)},'
        f'"operation":{_str_json(operation)},"params":{params_json},"part":{part},'
        f'"prompt":{"null" if prompt is None else _str_json(prompt)},"v":{KEY_SCHEMA}}}'
    )


_str_json: Callable[[str], str] = json.encoder.encode_basestring


class _Canon:
    """Canonical JSON of parameter sets and input lists, computed once per distinct value."""

    def __init__(self) -> None:
        self.params_cache: dict[Any, str] = {}
        self.part_cache: dict[tuple[str, int, int | None], tuple[Mapping[str, Any], str]] = {}
        self.inputs_cache: dict[tuple[Any, ...], str] = {}

    def params(self, params: Mapping[str, Any]) -> str:
        frozen = tuple(
            (k, v.__class__, v) if v.__class__ in _SCALARS else (k, list, _canonical(v))
            for k, v in sorted(params.items())
        )
        text = self.params_cache.get(frozen)
        if text is None:
            text = self.params_cache[frozen] = _canonical(dict(params))
        return text

    def part_params(
        self, params_json: str, params: Mapping[str, Any], count: int, seed: int | None
    ) -> tuple[Mapping[str, Any], str]:
        """The params of one part of a request (its sample count and seed set), shared by every request that has
        the same, and their JSON."""
        cache_key = (params_json, count, seed)
        found = self.part_cache.get(cache_key)
        if found is None:
            p = dict(params)
            p["sample_count"] = count
            if seed is not None:
                p["seed"] = seed
            found = self.part_cache[cache_key] = (MappingProxyType(p), _canonical(p))
        return found

    def inputs(self, inputs: Sequence[Input]) -> str:
        frozen = tuple((i.role, i.digest, i.reference) for i in inputs)
        text = self.inputs_cache.get(frozen)
        if text is None:
            text = self.inputs_cache[frozen] = _canonical([list(m) for m in frozen])
        return text


_SCALARS = (str, int, float, bool, type(None))


def _json_default(value: Any) -> Any:
    if isinstance(value, AxisVar):
        return dict(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _product_var(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "subject_type": p.subject_type,
        "vars": dict(p.vars),
        "images": len(p.images),
    }


def _cache_part(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("product", "scene"):
        return value["id"]
    if isinstance(value, AxisVar):
        return value  # hashable by id, equal by content
    if isinstance(value, dict):
        return _canonical(value)
    return value


def _token_floor(prompt: str) -> int:
    """A lower bound on the prompt's token count: every word and punctuation mark is at least one token."""
    return len(re.findall(r"\w+|[^\w\s]", prompt))


def _variant_id(job: str, product: str | None, scene: str | None, axes: Sequence[tuple[str, str]]) -> str:
    parts = [job]
    if product is not None:
        parts.append(f"product={product}")
    if scene is not None:
        parts.append(f"scene={scene}")
    parts.extend(f"{k}={v}" for k, v in axes)
    return "/".join(parts)


_SLUG_CHARS = re.compile(r"[^a-z0-9._-]+")


@functools.lru_cache(maxsize=65536)
def _slug_part(value: str) -> str:
    text = value.lower().replace(":", "x")
    text = _SLUG_CHARS.sub("-", text).strip("-.")
    return text[:48] or "x"


def _slugs(job: str, drafts: Sequence[_Draft]) -> dict[str, str]:
    """Output path stems: ``<job>/<product>/<scene>/<axis values>``; made unique with a short hash if needed."""
    out: dict[str, str] = {}
    seen: dict[str, int] = defaultdict(int)
    for d in drafts:
        rest = "-".join(_slug_part(v) for _, v in d.axes) or "default"
        slug = f"{job}/{_slug_part(d.product) if d.product else '_'}/{_slug_part(d.scene) if d.scene else '_'}/{rest}"
        out[d.id] = slug
        seen[slug] += 1
    for d in drafts:
        if seen[out[d.id]] > 1:
            out[d.id] += "-" + hashlib.sha256(d.id.encode()).hexdigest()[:6]
    return out


def _levels(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs grouped so that each job comes after the job whose outputs it takes (sources are acyclic)."""
    by_id = {j.id: j for j in jobs}
    depth: dict[str, int] = {}

    def level(job: Job) -> int:
        if job.id not in depth:
            source = job.spec.source
            depth[job.id] = 0 if source in (None, "product") or source not in by_id else level(by_id[source]) + 1
        return depth[job.id]

    levels: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        levels[level(job)].append(job)
    return [levels[k] for k in sorted(levels)]


__all__ = [
    "KEY_SCHEMA",
    "Estimate",
    "Input",
    "Plan",
    "PlanOptions",
    "Request",
    "Selector",
    "Variant",
    "estimate",
    "parse_selector",
    "plan",
]
