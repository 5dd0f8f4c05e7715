"""The model registry: what each Google image model can do, its limits, price and lifecycle.

One table, read by the planner (validation, packing, estimates), the executor (default rate limits), the
backends (which API to call) and the emulator (what to accept). Figures come from ../shared/API-NOTES.md §5-§6;
where Google did not publish a figure we could cite, ``assumed`` says so and the plan output marks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Operation = Literal["generate", "recontext", "bgswap", "customize", "edit", "upscale"]
BackendName = Literal["preview", "vertex", "gemini"]
Family = Literal["imagen", "gemini"]

IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")

# Output pixel sizes at "1K"; "2K" and "4K" double and quadruple them, "512" halves them.
# Imagen: documented sizes of imagen-3.0-generate-002 / imagen-4.0 (e.g. 1408x768 for 16:9).
_IMAGEN_1K = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}
# Gemini image models: the sizes the API returns for each ratio at 1K.
_GEMINI_1K = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
_SIZE_FACTOR = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a model stands: ``ga``, ``preview`` or ``deprecated``, with what replaces it and by when."""

    status: Literal["ga", "preview", "deprecated"]
    successor: str | None = None
    migrate_by: str | None = None  # ISO date Google gave for migrating away, if any
    shutdown: str | None = None  # ISO date the endpoint stops answering, if published
    source: str = ""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything the tool knows about one model."""

    id: str
    family: Family
    title: str
    operations: tuple[Operation, ...]
    max_images_per_request: int
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str, ...]
    default_image_size: str
    price_per_image_usd: float
    requests_per_minute: int
    lifecycle: Lifecycle
    max_input_images: int = 1
    max_upload_bytes: int = 10 * 1024 * 1024
    max_prompt_tokens: int | None = 480
    upscale_factors: tuple[str, ...] = ()
    supports_seed: bool = True
    supports_negative_prompt: bool = True
    supports_language: bool = True
    supports_enhance_prompt: bool = False
    default_location: str = "us-central1"
    #: Figures we could not cite from a published source; shown as "assumed" in plans.
    assumed: tuple[str, ...] = ()
    notes: str = ""

    def pixel_size(self, aspect_ratio: str, image_size: str | None = None) -> tuple[int, int]:
        """Width and height of an output image for this ratio and size."""
        table = _GEMINI_1K if self.family == "gemini" else _IMAGEN_1K
        base = table.get(aspect_ratio) or _ratio_box(aspect_ratio, 1024)
        factor = _SIZE_FACTOR.get(image_size or self.default_image_size, 1.0)
        return int(base[0] * factor), int(base[1] * factor)


def _ratio_box(aspect_ratio: str, side: int) -> tuple[int, int]:
    w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return side, max(1, round(side * h / w))
    return max(1, round(side * w / h)), side


_IMAGEN_DEPRECATION = Lifecycle(
    status="deprecated",
    successor="gemini-2.5-flash-image",
    migrate_by="2026-06-30",
    source="docs.cloud.google.com/vertex-ai/generative-ai/docs/models/imagen/4-0-generate",
)

_REGISTRY: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        ModelSpec(
            id="imagen-4.0-generate-001",
            family="imagen",
            title="Imagen 4",
            operations=("generate",),
            max_images_per_request=4,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K", "2K"),
            default_image_size="1K",
            price_per_image_usd=0.04,
            requests_per_minute=20,
            lifecycle=_IMAGEN_DEPRECATION,
            supports_enhance_prompt=True,
            assumed=("requests_per_minute",),
        ),
        ModelSpec(
            id="imagen-4.0-fast-generate-001",
            family="imagen",
            title="Imagen 4 Fast",
            operations=("generate",),
            max_images_per_request=4,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.02,
            requests_per_minute=20,
            lifecycle=_IMAGEN_DEPRECATION,
            supports_enhance_prompt=True,
            notes="enhance_prompt can give poor results with complex prompts on this model.",
        ),
        ModelSpec(
            id="imagen-4.0-ultra-generate-001",
            family="imagen",
            title="Imagen 4 Ultra",
            operations=("generate",),
            max_images_per_request=4,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K", "2K"),
            default_image_size="1K",
            price_per_image_usd=0.06,
            requests_per_minute=20,
            lifecycle=_IMAGEN_DEPRECATION,
            supports_enhance_prompt=True,
        ),
        ModelSpec(
            id="imagen-3.0-generate-002",
            family="imagen",
            title="Imagen 3",
            operations=("generate",),
            max_images_per_request=4,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.03,
            requests_per_minute=20,
            lifecycle=_IMAGEN_DEPRECATION,
            supports_enhance_prompt=True,
        ),
        ModelSpec(
            id="imagen-3.0-capability-001",
            family="imagen",
            title="Imagen 3 editing and customization",
            operations=("bgswap", "customize", "edit"),
            max_images_per_request=4,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.03,
            requests_per_minute=100,
            lifecycle=_IMAGEN_DEPRECATION,
            max_input_images=4,
            assumed=("price_per_image_usd",),
        ),
        ModelSpec(
            id="imagen-product-recontext-preview-06-30",
            family="imagen",
            title="Imagen product recontext (preview)",
            operations=("recontext",),
            max_images_per_request=4,
            aspect_ratios=("1:1",),
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.04,
            requests_per_minute=50,
            lifecycle=Lifecycle(status="preview", source="seeds/000 (Imagen product recontext)"),
            max_input_images=3,
            supports_negative_prompt=False,
            supports_language=False,
            supports_enhance_prompt=True,
            assumed=("price_per_image_usd",),
            notes="Access by allowlist only; English prompts (others are translated).",
        ),
        ModelSpec(
            id="imagen-4.0-upscale-preview",
            family="imagen",
            title="Imagen 4 upscale (preview)",
            operations=("upscale",),
            max_images_per_request=1,
            aspect_ratios=IMAGEN_RATIOS,
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.06,
            requests_per_minute=20,
            lifecycle=Lifecycle(status="preview", source="API-NOTES §5"),
            upscale_factors=("x2", "x3", "x4"),
            supports_seed=False,
            supports_negative_prompt=False,
            supports_language=False,
            max_prompt_tokens=None,
            assumed=("price_per_image_usd", "requests_per_minute"),
        ),
        ModelSpec(
            id="gemini-2.5-flash-image",
            family="gemini",
            title="Gemini 2.5 Flash Image",
            operations=("generate", "recontext", "bgswap", "customize", "edit"),
            max_images_per_request=1,
            aspect_ratios=GEMINI_RATIOS,
            image_sizes=("1K",),
            default_image_size="1K",
            price_per_image_usd=0.039,
            requests_per_minute=60,
            lifecycle=Lifecycle(status="ga", source="API-NOTES §6"),
            max_input_images=3,
            max_upload_bytes=7 * 1024 * 1024,
            max_prompt_tokens=None,
            supports_negative_prompt=False,
            supports_language=False,
            default_location="global",
            assumed=("requests_per_minute",),
        ),
        ModelSpec(
            id="gemini-3-pro-image-preview",
            family="gemini",
            title="Gemini 3 Pro Image (preview)",
            operations=("generate", "recontext", "bgswap", "customize", "edit"),
            max_images_per_request=1,
            aspect_ratios=GEMINI_RATIOS,
            image_sizes=("1K", "2K", "4K"),
            default_image_size="1K",
            price_per_image_usd=0.134,
            requests_per_minute=20,
            lifecycle=Lifecycle(status="preview", source="API-NOTES §6"),
            max_input_images=14,
            max_upload_bytes=7 * 1024 * 1024,
            max_prompt_tokens=None,
            supports_negative_prompt=False,
            supports_language=False,
            default_location="global",
            assumed=("requests_per_minute",),
            notes="About $0.24 per image at 4K (third-party figure); $0.134 at 1K/2K.",
        ),
        ModelSpec(
            id="gemini-3.1-flash-image-preview",
            family="gemini",
            title="Gemini 3.1 Flash Image (preview)",
            operations=("generate", "recontext", "bgswap", "customize", "edit"),
            max_images_per_request=1,
            aspect_ratios=GEMINI_RATIOS,
            image_sizes=("512", "1K", "2K", "4K"),
            default_image_size="1K",
            price_per_image_usd=0.039,
            requests_per_minute=20,
            lifecycle=Lifecycle(status="preview", source="API-NOTES §6"),
            max_input_images=3,
            max_upload_bytes=7 * 1024 * 1024,
            max_prompt_tokens=None,
            supports_negative_prompt=False,
            supports_language=False,
            default_location="global",
            assumed=("price_per_image_usd", "requests_per_minute"),
            notes="Used with location 'global' on Vertex; one report says it ignores imageSize.",
        ),
    )
}

REGISTRY: MappingProxyType[str, ModelSpec] = MappingProxyType(_REGISTRY)

#: The model used when neither the job nor [defaults] names one, by backend family and operation.
DEFAULT_MODELS: MappingProxyType[tuple[Family, Operation], str] = MappingProxyType(
    {
        ("imagen", "generate"): "imagen-4.0-generate-001",
        ("imagen", "recontext"): "imagen-product-recontext-preview-06-30",
        ("imagen", "bgswap"): "imagen-3.0-capability-001",
        ("imagen", "customize"): "imagen-3.0-capability-001",
        ("imagen", "edit"): "imagen-3.0-capability-001",
        ("imagen", "upscale"): "imagen-4.0-upscale-preview",
        ("gemini", "generate"): "gemini-2.5-flash-image",
        ("gemini", "recontext"): "gemini-2.5-flash-image",
        ("gemini", "bgswap"): "gemini-2.5-flash-image",
        ("gemini", "customize"): "gemini-2.5-flash-image",
        ("gemini", "edit"): "gemini-2.5-flash-image",
    }
)


def default_model(backend: BackendName, operation: Operation) -> str | None:
    """The model used for ``operation`` on ``backend`` when the campaign names none."""
    family: Family = "gemini" if backend == "gemini" else "imagen"
    return DEFAULT_MODELS.get((family, operation))


def lookup(model_id: str) -> ModelSpec | None:
    """The registry entry of ``model_id``, accepting a ``publishers/google/models/`` prefix."""
    return REGISTRY.get(model_id.rsplit("/", 1)[-1])
