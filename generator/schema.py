"""The campaign file format, as Pydantic models.

These models describe what a user may write, and nothing else: strict (a misspelt key is an error), frozen, and
with a docstring under every field that becomes the JSON Schema editors use for completion (``campaign schema``).
Cross-references, files and operation fit are checked afterwards by :mod:`generator.campaign`, which turns these
models into the plain frozen objects the rest of the program uses.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
AXIS_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
RATIO_PATTERN = re.compile(r"^[1-9][0-9]?:[1-9][0-9]?$")


def _check_id(value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ValueError(
            "must be a lowercase slug: letters a-z, digits and '-', 1-64 characters, not starting or ending "
            "with '-' (e.g. 'trail-shoe')"
        )
    return value


Id = Annotated[
    str,
    Field(max_length=64),
    BeforeValidator(_check_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ID_PATTERN.pattern,
            "description": "A lowercase slug: a-z, 0-9 and '-'.",
        }
    ),
]
Text = Annotated[str, Field(max_length=20_000)]
Ratio = Annotated[str, Field(pattern=RATIO_PATTERN.pattern, description="Width:height, e.g. '1:1' or '16:9'.")]

Backend = Literal["preview", "vertex", "gemini"]
OperationName = Literal["generate", "recontext", "bgswap", "customize", "edit", "upscale"]
Language = Literal["auto", "en", "es", "hi", "ja", "ko", "pt", "zh", "zh-CN", "zh-TW"]
PersonGeneration = Literal["dont_allow", "allow_adult", "allow_all"]
SafetyLevel = Literal["block_low_and_above", "block_medium_and_above", "block_only_high", "block_none"]
OutputFormat = Literal["png", "jpeg", "webp"]
ImageSize = Literal["512", "1K", "2K", "4K"]
MaskMode = Literal["background", "foreground", "semantic", "user"]
EditMode = Literal["inpaint_insert", "inpaint_remove", "outpaint"]
UpscaleFactor = Literal["x2", "x3", "x4"]
SubjectType = Literal["product", "person", "animal", "default"]
ControlType = Literal["canny", "scribble", "face_mesh"]
Scalar = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        strict=True,
        populate_by_name=True,
    )


class Settings(Strict):
    """Request settings. `[defaults]` sets them for every job; a job, then a matrix axis of the same name,
    overrides them. Settings that an operation does not use are ignored when they come from `[defaults]`, and an
    error when a job or an axis sets them."""

    backend: Backend | None = None
    """Where images come from: `preview` (offline drafts, the default), `vertex` (Imagen on Vertex AI) or `gemini`
    (Gemini image models on Vertex AI)."""
    model: str | None = Field(default=None, max_length=200)
    """Model id, e.g. `imagen-4.0-generate-001`. Omit it to use the registry's default for the operation
    (`campaign models` lists them)."""
    location: str | None = Field(default=None, pattern=r"^[a-z0-9-]{2,40}$")
    """Vertex AI location (region), e.g. `us-central1`. Default: `[backend].locations`, then the model's own."""
    aspect_ratio: Ratio | None = None
    """Output aspect ratio, e.g. `1:1`, `3:4`, `4:3`, `9:16`, `16:9` (Gemini models also take 2:3, 3:2, 4:5,
    5:4, 21:9). Default `1:1`."""
    image_size: ImageSize | None = None
    """Output resolution where the model offers a choice: `1K` (default) or `2K` (Imagen 4, Imagen 4 Ultra);
    Gemini 3 models also `4K`, Gemini 3.1 Flash also `512`."""
    images: int | None = Field(default=None, ge=1, le=100)
    """Images wanted per variant (default 1). Packed into as few requests as the model allows."""
    seed: int | None = Field(default=None, ge=0, le=4_294_967_295)
    """Random seed for reproducible results. Imagen refuses a seed while the watermark is on: set
    `add_watermark = false` with it."""
    negative_prompt: Text | None = None
    """What the images should not show, e.g. `text, watermark, blurry`."""
    language: Language | None = None
    """Language of the prompt (Imagen): `en` (default), `auto`, `es`, `hi`, `ja`, `ko`, `pt`, `zh`, `zh-CN`,
    `zh-TW`."""
    person_generation: PersonGeneration | None = None
    """Whether people may appear: `dont_allow`, `allow_adult` (the API's default) or `allow_all` (needs an
    allowlisted project)."""
    safety_filter_level: SafetyLevel | None = None
    """Safety filter threshold: `block_low_and_above`, `block_medium_and_above`, `block_only_high`,
    `block_none`."""
    add_watermark: bool | None = None
    """Add Google's invisible SynthID watermark. The API's default is on; a seed needs it off."""
    output_format: OutputFormat | None = None
    """File format of the images written: `png` (default), `jpeg` or `webp` (requested as PNG, converted
    locally)."""
    output_quality: int | None = Field(default=None, ge=0, le=100)
    """JPEG/WebP quality, 0-100 (default 90)."""
    enhance_prompt: bool | None = None
    """Let the model rewrite the prompt with an LLM before generating (Imagen generate and recontext)."""
    guidance_scale: float | None = Field(default=None, ge=0, le=500)
    """How closely the image follows the prompt (Imagen generate and editing)."""
    base_steps: int | None = Field(default=None, ge=1, le=200)
    """Sampling steps (recontext, bgswap, edit). Google suggests 75 for product background swaps."""
    mask_mode: MaskMode | None = None
    """How the edit mask is made (bgswap, edit): `background` or `foreground` (automatic segmentation),
    `semantic` (by class, with `mask_classes`), `user` (the product's `mask` file). Default: `user` when the
    product has a mask, else `background`."""
    mask_classes: tuple[Annotated[int, Field(ge=0, le=255)], ...] | None = None
    """Segmentation class ids for `mask_mode = "semantic"` (Imagen's semantic classes)."""
    mask_dilation: float | None = Field(default=None, ge=0, le=1)
    """Grow the mask by this fraction of the image width (bgswap, edit). Default 0.0 for product background
    swaps, as Google recommends, so the product is not extended."""
    edit_mode: EditMode | None = None
    """Mask editing mode (edit): `inpaint_insert` (add what the prompt says in the masked area),
    `inpaint_remove` (remove it) or `outpaint` (extend the image beyond its borders)."""
    canvas_scale: float | None = Field(default=None, ge=1.0, le=4.0)
    """Outpainting: the canvas is this many times the source image (at the request's aspect ratio).
    Default 1.5."""
    upscale_factor: UpscaleFactor | None = None
    """Upscaling factor: `x2` (default), `x3` or `x4`."""
    composite: bool | None = None
    """Paste the original product pixels back over the result, feathered, using the product mask, so the
    product is never altered (recontext and bgswap; default true). Recorded in each image's provenance."""


class Reference(Strict):
    """A reference image for `customize` jobs. References are numbered in order, from 1: the prompt refers to
    the first as `[1]`, the second as `[2]`."""

    type: Literal["subject", "style", "control"]
    """`subject`: a person, animal or product to place in the image; `style`: an image whose style to follow;
    `control`: a canny edge map, scribble or face mesh that fixes the composition."""
    images: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] = ()
    """Image files, relative to this campaign file. Omit for a `subject` to use the variant's product photos
    (several photos of one subject share its number)."""
    description: Text | None = None
    """Subject or style description, e.g. `a blue trail running shoe` or `watercolor`. Default for a product
    subject: the product's description."""
    subject_type: SubjectType | None = None
    """Kind of subject (subject references): `product`, `person`, `animal` or `default`. Default: the
    product's `subject_type`."""
    control_type: ControlType | None = None
    """Kind of control image (control references): `canny`, `scribble` or `face_mesh`."""
    compute: bool = True
    """Control references: let the API compute the control image (edges, mesh) from the given image. Set false
    when the file already is an edge map or scribble."""


def _axis_value(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return {"id": value}
    if not isinstance(value, dict):
        raise ValueError('axis values are strings, numbers or tables with an id (e.g. { id = "noir", ... })')
    return value


class AxisValue(BaseModel):
    """One value of a matrix axis: a plain string (or number), or a table with an `id` and extra fields that
    templates can use (e.g. `{ id = "noir", prompt = "black and white, high contrast" }`)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    id: str | int | float | bool
    """The value's name: what `{{ axis }}` prints, and the name used in output paths and `--only` filters."""


AxisValues = Annotated[
    tuple[Annotated[AxisValue, BeforeValidator(_axis_value)], ...],
    Field(min_length=1),
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": ["string", "number", "boolean"]},
                    {"type": "object", "properties": {"id": {}}, "required": ["id"]},
                ]
            },
        }
    ),
]


def _star_or_list(value: Any) -> Any:
    return ("*",) if value == "*" else value


IdSelection = Annotated[
    tuple[str, ...],
    Field(min_length=1),
    BeforeValidator(_star_or_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "*", "description": "Every product (or scene) of the campaign."},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]
MatrixEntry = dict[str, Scalar]


class Matrix(BaseModel):
    """Variants of a job, with GitHub Actions `strategy.matrix` semantics: the Cartesian product of the axes;
    `exclude` removes the combinations matching all its keys; `include` then extends matching combinations with
    extra keys, or adds a combination when it matches none. Any other key is an axis: a template variable, or a
    request setting when it names one (e.g. `aspect_ratio = ["1:1", "9:16"]`)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, use_attribute_docstrings=True)

    product: IdSelection | None = None
    """Product ids, or `"*"` for every product."""
    scene: IdSelection | None = None
    """Scene ids, or `"*"` for every scene."""
    exclude: tuple[MatrixEntry, ...] = ()
    """Combinations to remove, e.g. `[{ product = "city-shoe", scene = "beach" }]`."""
    include: tuple[MatrixEntry, ...] = ()
    """Combinations to extend or add, e.g. `[{ product = "trail-shoe", scene = "studio", style = "noir" }]`."""
    __pydantic_extra__: dict[str, AxisValues]


class Job(Settings):
    """A set of variants rendered with one operation and one prompt template."""

    id: Id
    """Job id: names its output folder and is used by `--only job=...` and by other jobs' `source`."""
    operation: OperationName
    """`generate` (text to image), `recontext` (product in a new scene), `bgswap` (replace a product photo's
    background), `customize` (subject/style/control references), `edit` (inpaint or outpaint with a mask) or
    `upscale`."""
    name: str | None = Field(default=None, max_length=200)
    """Display name for the report."""
    description: Text | None = None
    """What the job is for (shown in the report)."""
    template: str | None = Field(default=None, max_length=64)
    """Name of a prompt template in `[templates]`."""
    prompt: Text | None = None
    """An inline prompt template (Jinja2), instead of `template`."""
    source: str | None = Field(default=None, max_length=64)
    """Input image of `bgswap`, `edit` and `upscale`: `product` (the product's first photo, the default) or the
    id of another job, whose every output image then becomes a variant of this one."""
    references: tuple[Reference, ...] = ()
    """Reference images of a `customize` job, numbered [1], [2], … in order."""
    matrix: Matrix | None = None
    """The variants: axes and include/exclude rules. A job without a matrix is one variant."""


class TemplateFile(Strict):
    """A prompt template kept in its own file."""

    file: str = Field(min_length=1, max_length=1000)
    """Path of the Jinja2 template, relative to this campaign file (e.g. `templates/prompts/hero.j2`)."""


def _template_value(value: Any) -> Any:
    return {"text": value} if isinstance(value, str) else value


class InlineTemplate(Strict):
    text: Text


TemplateSpec = Annotated[
    InlineTemplate | TemplateFile,
    BeforeValidator(_template_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "An inline Jinja2 prompt template."},
                {
                    "type": "object",
                    "properties": {"file": {"type": "string"}},
                    "required": ["file"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class Product(Strict):
    """A product with its photos."""

    id: Id
    """Product id, used in matrices, output paths and `--only product=...`."""
    name: str | None = Field(default=None, max_length=200)
    """Display name."""
    description: Text = ""
    """How prompts describe the product, e.g. `a blue and orange trail running shoe`."""
    images: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] = Field(min_length=1, max_length=3)
    """1-3 photos (PNG, JPEG or WebP), relative to this file. A transparent PNG cut-out works best."""
    subject_type: SubjectType = "product"
    """What the photos show: `product`, `person`, `animal` or `default`."""
    mask: str | None = Field(default=None, min_length=1, max_length=1000)
    """Optional mask of the first photo (white = product, black = background), the same size as the photo."""
    vars: dict[str, Scalar] = Field(default_factory=dict)
    """Extra fields for templates: `{{ product.vars.color }}`."""


class Scene(Strict):
    """A setting to place products in."""

    id: Id
    """Scene id, used in matrices, output paths and `--only scene=...`."""
    name: str | None = Field(default=None, max_length=200)
    """Display name."""
    prompt: Text
    """How prompts describe the scene, e.g. `on wet sand at golden hour, waves behind`."""
    vars: dict[str, Scalar] = Field(default_factory=dict)
    """Extra fields for templates: `{{ scene.vars.mood }}`."""


class CampaignHeader(Strict):
    """Who the campaign is and which files it draws on."""

    id: Id
    """Slug naming the output folder `output/<id>/`."""
    name: str | None = Field(default=None, max_length=200)
    """Display name."""
    description: Text | None = None
    """What the campaign is for."""
    include: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] = ()
    """Files (relative to this one) that contribute products, scenes and templates."""


class Defaults(Settings):
    """Request settings for every job (see the settings above), plus model re-targeting."""

    model_map: dict[str, str] = Field(default_factory=dict)
    """Re-target models without editing every job: `{ "imagen-4.0-generate-001" = "gemini-2.5-flash-image" }`."""


class Limits(Strict):
    """Guards that refuse a run before anything is spent, and quota settings."""

    max_requests: int | None = Field(default=None, ge=0)
    """Refuse a run that would send more requests than this."""
    max_cost_usd: float | None = Field(default=None, ge=0)
    """Refuse a run whose estimated cost is above this many US dollars."""
    max_variants: int = Field(default=1_000_000, ge=1, le=10_000_000)
    """Refuse a matrix that would expand to more variants than this, before memory is spent (planning takes about
    0.1 ms and 3 KB per variant: raise it knowingly)."""
    requests_per_minute: dict[str, Annotated[int, Field(ge=1, le=100_000)]] = Field(default_factory=dict)
    """Requests-per-minute quota by model id, when your project's quota differs from the registry's default."""
    price_per_image_usd: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Price per image by model id, overriding the registry's (e.g. a negotiated price)."""
    concurrency: int | None = Field(default=None, ge=1, le=256)
    """Requests in flight at once (default: 8 for remote backends, the number of CPUs for preview)."""


class BackendConfig(Strict):
    """Where the remote backends send requests."""

    project: str | None = Field(default=None, max_length=100)
    """Google Cloud project id (default: GOOGLE_CLOUD_PROJECT, then Application Default Credentials)."""
    locations: tuple[Annotated[str, Field(pattern=r"^[a-z0-9-]{2,40}$")], ...] = ()
    """Vertex AI locations to spread requests over, each with its own quota (default: GOOGLE_CLOUD_LOCATION,
    then the model's default location)."""
    endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    """Another base URL for the Vertex AI API, e.g. the local emulator `http://127.0.0.1:8765`. No Google
    credentials are needed then. The environment variable CAMPAIGN_VERTEX_ENDPOINT overrides it."""
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """Seconds to wait for one response before treating it as a transient failure."""

    @field_validator("endpoint")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value and "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("must not contain credentials (user:password@); use a bare base URL")
        return value


class CampaignFile(Strict):
    """A campaign file: `campaigns/<name>.toml`."""

    campaign: CampaignHeader
    defaults: Defaults = Field(default_factory=Defaults)
    limits: Limits = Field(default_factory=Limits)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    products: tuple[Product, ...] = ()
    scenes: tuple[Scene, ...] = ()
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)
    jobs: tuple[Job, ...] = ()


class IncludedFile(Strict):
    """A file listed in `[campaign].include`: it contributes products, scenes and templates."""

    include: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] = ()
    """Further files to include, relative to this one."""
    products: tuple[Product, ...] = ()
    scenes: tuple[Scene, ...] = ()
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)


#: The request-setting names (axes with these names set the setting per variant).
SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)

#: Settings each operation uses; a job or axis setting anything else is an error.
_COMMON = frozenset(
    {
        "backend",
        "model",
        "location",
        "images",
        "seed",
        "person_generation",
        "safety_filter_level",
        "add_watermark",
        "output_format",
        "output_quality",
    }
)
OPERATION_SETTINGS: dict[str, frozenset[str]] = {
    "generate": _COMMON
    | {
        "aspect_ratio",
        "image_size",
        "negative_prompt",
        "language",
        "enhance_prompt",
        "guidance_scale",
    },
    "recontext": _COMMON | {"aspect_ratio", "base_steps", "enhance_prompt", "composite"},
    "bgswap": _COMMON
    | {
        "aspect_ratio",
        "negative_prompt",
        "language",
        "guidance_scale",
        "base_steps",
        "mask_mode",
        "mask_classes",
        "mask_dilation",
        "composite",
    },
    "customize": _COMMON | {"aspect_ratio", "negative_prompt", "language", "guidance_scale"},
    "edit": _COMMON
    | {
        "aspect_ratio",
        "negative_prompt",
        "language",
        "guidance_scale",
        "base_steps",
        "mask_mode",
        "mask_classes",
        "mask_dilation",
        "edit_mode",
        "canvas_scale",
    },
    "upscale": frozenset(
        {
            "backend",
            "model",
            "location",
            "images",
            "safety_filter_level",
            "person_generation",
            "output_format",
            "output_quality",
            "upscale_factor",
        }
    ),
}
#: Job keys (not settings) that only some operations take.
OPERATION_JOB_KEYS: dict[str, frozenset[str]] = {
    "source": frozenset({"bgswap", "edit", "upscale"}),
    "references": frozenset({"customize"}),
}
