"""What the emulator is told to do: quotas, latency, injected faults. Checked once, then frozen.

The same JSON shape is accepted at start (``Emulator(config=...)``, ``campaign emulator`` options)
and at run time (``POST /_emulator/config``, which replaces only the keys it names)::

    {
      "seed": 7,                # latency and faults repeatable (decided per request number)
      "latency": [0.5, 2.0],    # seconds before answering: a number, or uniform in [min, max]
      "window_seconds": 60,     # the quota window; benchmarks scale a minute down to seconds
      "rpm": {"imagen-4.0-generate-001": 5, "*": 100},  # requests per window and location
      "faults": {"500": 0.1, "reset": 0.05},            # probability of each fault per request
      "schedule": {"1": "429", "3": "500"},   # or ["429", null, "500"]: by request number
      "burst": 3,               # a probabilistic 429 also hits the next burst-1 requests
      "retry_after": 1,         # Retry-After (seconds) of injected 429s
      "quota_array_body": false,  # 429 bodies wrapped in a JSON array, as Google sometimes does
      "block_words": ["gore"],  # prompts with these words are blocked (Imagen: a 400; Gemini: promptFeedback)
      "gemini_block_reason": "PROHIBITED_CONTENT",  # promptFeedback.blockReason of blocked Gemini prompts
      "gemini_finish_reason": "IMAGE_SAFETY",       # finishReason of filtered Gemini images
      "gemini_thoughts": false, # Gemini answers start with a thought and a draft image (both "thought": true)
      "allowlisted": false,     # accept personGeneration ALLOW_ALL (else FAILED_PRECONDITION)
      "hang_seconds": 30,       # longest a "hang" waits for the client to give up
      "history": 50             # request bodies kept for GET /_emulator/stats
    }

Request numbers count model requests from 1 since the start or the last ``/_emulator/reset``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from generator.models import REGISTRY

#: Faults the emulator can inject, and what each does.
FAULTS: Mapping[str, str] = MappingProxyType(
    {
        "500": "HTTP 500 INTERNAL (JSON body)",
        "503": "HTTP 503 UNAVAILABLE (JSON body)",
        "503_html": "HTTP 503 with an HTML body, as Google's front end sends",
        "429": "HTTP 429 RESOURCE_EXHAUSTED with the quota message and Retry-After",
        "gemini_429_array": "HTTP 429 as Gemini's shared capacity sends it: a JSON array holding the error, with "
        "errors[{reason: rateLimitExceeded}] and no Retry-After",
        "reset": "close the connection without answering",
        "hang": "answer nothing until the client gives up (or hang_seconds pass), then close",
        "malformed": "HTTP 200 with a truncated JSON body",
        "empty": "HTTP 200 without images: Imagen without a predictions key; Gemini with a candidate holding only a "
        "thought part",
        "text_only": "HTTP 200, Gemini: the model answers in text only (a refusal), finishReason STOP; Imagen: as "
        "empty",
        "filtered": "HTTP 200, every image filtered: Imagen raiFilteredReason (if includeRaiReason is on); Gemini a "
        "candidate with finishReason gemini_finish_reason, a finishMessage and no parts",
        "partial": "HTTP 200 with one image fewer than sampleCount (the rest filtered); Gemini: as filtered",
        "blocked": "the prompt is refused: Imagen HTTP 400 INVALID_ARGUMENT; Gemini HTTP 200 with "
        "promptFeedback.blockReason gemini_block_reason and no candidates",
    }
)
#: promptFeedback.blockReason values (the SDK's BlockedReason).
GEMINI_BLOCK_REASONS = (
    "SAFETY",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "IMAGE_SAFETY",
    "MODEL_ARMOR",
    "JAILBREAK",
)
#: Candidate finishReason values that end a Gemini image response without an image (the SDK's FinishReason; API-NOTES
#: §6).
GEMINI_FINISH_REASONS = (
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "IMAGE_RECITATION",
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "OTHER",
    "MAX_TOKENS",
)


class ConfigError(ValueError):
    """The emulator configuration is invalid; the message lists every problem, one per line."""


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. Build it with :func:`parse_config` (keys: the module docstring)."""

    seed: int | None = None
    latency: tuple[float, float] = (0.0, 0.0)
    window_seconds: float = 60.0
    rpm: Mapping[str, int] = field(default_factory=dict)
    faults: Mapping[str, float] = field(default_factory=dict)
    schedule: Mapping[int, str] = field(default_factory=dict)
    burst: int = 1
    retry_after: int = 1
    quota_array_body: bool = False
    block_words: tuple[str, ...] = ()
    gemini_block_reason: str = "PROHIBITED_CONTENT"
    gemini_finish_reason: str = "IMAGE_SAFETY"
    gemini_thoughts: bool = False
    allowlisted: bool = False
    hang_seconds: float = 30.0
    history: int = 50

    def rpm_of(self, model: str) -> int:
        """Requests per window for ``model``: its own setting, else ``"*"``, else the registry's."""
        if model in self.rpm:
            return self.rpm[model]
        if "*" in self.rpm:
            return self.rpm["*"]
        spec = REGISTRY.get(model)
        return spec.requests_per_minute if spec else 60

    def to_json(self) -> dict[str, Any]:
        low, high = self.latency
        return {
            "seed": self.seed,
            "latency": low if low == high else [low, high],
            "window_seconds": self.window_seconds,
            "rpm": dict(self.rpm),
            "faults": dict(self.faults),
            "schedule": {str(k): v for k, v in sorted(self.schedule.items())},
            "burst": self.burst,
            "retry_after": self.retry_after,
            "quota_array_body": self.quota_array_body,
            "block_words": list(self.block_words),
            "gemini_block_reason": self.gemini_block_reason,
            "gemini_finish_reason": self.gemini_finish_reason,
            "gemini_thoughts": self.gemini_thoughts,
            "allowlisted": self.allowlisted,
            "hang_seconds": self.hang_seconds,
            "history": self.history,
        }


def parse_config(data: Mapping[str, Any], base: EmulatorConfig | None = None) -> EmulatorConfig:
    """Check ``data`` and return ``base`` (default: the defaults) with the keys it names replaced.

    Raises:
        ConfigError: listing every problem, e.g. ``faults.teapot: unknown fault (known: 500, 503,
            ...)``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("the configuration must be a JSON object")
    problems: list[str] = []
    changes: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(EmulatorConfig)}
    for key, value in data.items():
        if key not in known:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(known))})")
            continue
        try:
            changes[key] = _PARSERS[key](value)
        except ConfigError as e:
            problems.extend(
                f"{key}{line}" if line.startswith(".") else f"{key}: {line}" for line in str(e).splitlines()
            )
    if problems:
        raise ConfigError("\n".join(problems))
    result = dataclasses.replace(base or EmulatorConfig(), **changes)
    total = sum(result.faults.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(f"faults: the probabilities add up to {total:g}, more than 1")
    return result


def _number(value: Any, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"must be between {low} and {high}, got {value}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("must be true or false")
    return value


def _seed(value: Any) -> int | None:
    return None if value is None else _integer(value, 0, 2**63)


def _latency(value: Any) -> tuple[float, float]:
    if value is None:
        return (0.0, 0.0)
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ConfigError("must be a number of seconds or [min, max]")
        low, high = (_number(v, 0, 3600) for v in value)
        if low > high:
            raise ConfigError(f"[min, max] with min > max: [{low:g}, {high:g}]")
        return (low, high)
    seconds = _number(value, 0, 3600)
    return (seconds, seconds)


def _rpm(value: Any) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise ConfigError('must be an object {"MODEL": N, "*": N}')
    problems = []
    out: dict[str, int] = {}
    for model, n in value.items():
        if model != "*" and model not in REGISTRY:
            problems.append(f".{model}: unknown model (known: {', '.join(REGISTRY)}, or * for every model)")
            continue
        try:
            out[model] = _integer(n, 1, 1_000_000)
        except ConfigError as e:
            problems.append(f".{model}: {e}")
    if problems:
        raise ConfigError("\n".join(problems))
    return MappingProxyType(out)


def _fault_name(value: Any) -> str:
    name = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(name, str) or name not in FAULTS:
        raise ConfigError(f"unknown fault {value!r} (known: {', '.join(FAULTS)})")
    return name


def _faults(value: Any) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError('must be an object {"KIND": probability}')
    problems = []
    out: dict[str, float] = {}
    for kind, p in value.items():
        try:
            out[_fault_name(kind)] = _number(p, 0.0, 1.0)
        except ConfigError as e:
            problems.append(f".{kind}: {e}")
    if problems:
        raise ConfigError("\n".join(problems))
    return MappingProxyType({k: out[k] for k in FAULTS if out.get(k)})


def _schedule(value: Any) -> Mapping[int, str]:
    items: list[tuple[Any, Any]]
    if isinstance(value, list | tuple):
        items = [(i + 1, v) for i, v in enumerate(value) if v not in (None, "", "ok")]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise ConfigError('must be {"REQUEST_NUMBER": "KIND"} or a list of faults (null for none)')
    problems = []
    out: dict[int, str] = {}
    for n, kind in items:
        try:
            number = int(n)
        except (TypeError, ValueError):
            problems.append(f".{n}: request numbers are integers from 1")
            continue
        if number < 1:
            problems.append(f".{n}: request numbers are integers from 1")
            continue
        try:
            out[number] = _fault_name(kind)
        except ConfigError as e:
            problems.append(f".{n}: {e}")
    if problems:
        raise ConfigError("\n".join(problems))
    return MappingProxyType(out)


def _words(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(w, str) and w.strip() for w in value):
        raise ConfigError("must be a list of non-empty strings")
    return tuple(w.strip().lower() for w in value)


def _one_of(choices: tuple[str, ...]) -> Any:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


_PARSERS: dict[str, Any] = {
    "seed": _seed,
    "latency": _latency,
    "window_seconds": lambda v: _number(v, 0.001, 86_400),
    "rpm": _rpm,
    "faults": _faults,
    "schedule": _schedule,
    "burst": lambda v: _integer(v, 1, 10_000),
    "retry_after": lambda v: _integer(v, 0, 86_400),
    "quota_array_body": _bool,
    "block_words": _words,
    "gemini_block_reason": _one_of(GEMINI_BLOCK_REASONS),
    "gemini_finish_reason": _one_of(GEMINI_FINISH_REASONS),
    "gemini_thoughts": _bool,
    "allowlisted": _bool,
    "hang_seconds": lambda v: _number(v, 0, 3600),
    "history": lambda v: _integer(v, 0, 10_000),
}


def parse_cli_options(
    *,
    rpm: tuple[str, ...] = (),
    window_seconds: float | None = None,
    latency: str | None = None,
    faults: tuple[str, ...] = (),
    block_words: tuple[str, ...] = (),
    seed: int | None = None,
) -> EmulatorConfig:
    """The configuration that ``campaign emulator``'s options describe.

    ``--rpm MODEL=N``, ``--fault KIND=RATE``, ``--latency 0.5`` or ``0.5-2``; problems are reported
    by option name.
    """
    data: dict[str, Any] = {}
    problems: list[str] = []
    if rpm:
        data["rpm"] = {}
        for item in rpm:
            model, sep, n = item.partition("=")
            if not sep or not n.strip().isdigit():
                problems.append(f"--rpm {item!r}: expected MODEL=N (or *=N), e.g. imagen-4.0-generate-001=5")
                continue
            data["rpm"][model.strip()] = int(n.strip())
    if faults:
        data["faults"] = {}
        for item in faults:
            kind, sep, rate = item.partition("=")
            try:
                if not sep:
                    raise ValueError(item)
                data["faults"][kind.strip()] = float(rate)
            except ValueError:
                problems.append(f"--fault {item!r}: expected KIND=RATE, e.g. 503=0.1 (kinds: {', '.join(FAULTS)})")
    if latency:
        low, sep, high = latency.partition("-")
        try:
            data["latency"] = [float(low), float(high)] if sep else float(low)
        except ValueError:
            problems.append(f"--latency {latency!r}: expected SECONDS or MIN-MAX, e.g. 0.5-2")
    if window_seconds is not None:
        data["window_seconds"] = window_seconds
    if block_words:
        data["block_words"] = list(block_words)
    if seed is not None:
        data["seed"] = seed
    try:
        config = parse_config(data)
    except ConfigError as e:
        problems.extend(_option_name(line) for line in str(e).splitlines())
    if problems:
        raise ConfigError("\n".join(problems))
    return config


_OPTION_NAMES = {
    "rpm": "--rpm",
    "faults": "--fault",
    "latency": "--latency",
    "window_seconds": "--window-seconds",
    "block_words": "--block-word",
    "seed": "--seed",
}


def _option_name(problem: str) -> str:
    """``faults.teapot: unknown fault`` -> ``--fault teapot: unknown fault``."""
    key, _, rest = problem.partition(":")
    name, dot, sub = key.partition(".")
    option = _OPTION_NAMES.get(name)
    if option is None:
        return problem
    return f"{option} {sub}:{rest}" if dot else f"{option}:{rest}"
