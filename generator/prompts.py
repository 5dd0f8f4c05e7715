"""Prompt templates: Jinja2 in an immutable sandbox, with strict undefined variables and bounded work.

Templates arrive through pull requests, so they are untrusted code. They render in Jinja2's
``ImmutableSandboxedEnvironment`` (no attribute starting with ``_``, no mutation of values, safe ``str.format``)
with ``StrictUndefined``. On top of the sandbox, a template cannot make the planner hang or exhaust memory: no
``range``/``lipsum``/``cycler``/``joiner``/``namespace`` globals, no macros or call blocks, no loop inside a loop,
only a list of simple filters, and no string or list may grow beyond :data:`MAX_TEXT` characters or items.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Longest string or list a template may build (a prompt is at most a few thousand characters).
MAX_TEXT = 20_000
TEMPLATE_FILENAME = "<template>"

#: Names a matrix axis may not take: the template variables the planner provides, and Jinja's own.
RESERVED_NAMES = frozenset(
    {
        "campaign",
        "job",
        "product",
        "scene",
        "variant",
        "refs",
        "loop",
        "self",
        "super",
        "caller",
        "varargs",
        "kwargs",
        "true",
        "false",
        "none",
        "range",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "dict",
    }
)

_SAFE_FILTERS = (
    "abs",
    "capitalize",
    "default",
    "d",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "count",
    "list",
    "lower",
    "upper",
    "title",
    "trim",
    "replace",
    "reverse",
    "round",
    "sort",
    "string",
    "striptags",
    "sum",
    "truncate",
    "unique",
    "wordcount",
    "min",
    "max",
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "attr",
    "e",
    "escape",
    "safe",
    "items",
    "dictsort",
    "tojson",
)


class TemplateError(Exception):
    """A template failed to render: the message, and the line of the template (1-based) if known."""

    def __init__(self, message: str, lineno: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT:
        raise SecurityError(f"the template built a value of {len(value):,} characters/items (limit {MAX_TEXT:,})")
    return value


def _wrap_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return _bounded(fn(*args, **kwargs))

    # Keep Jinja's pass_context/pass_environment markers.
    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(wrapped, attr, getattr(fn, attr))
    return wrapped


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponents above 64 are not allowed in templates")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_TEXT:
                    raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")
        return _bounded(super().call_binop(context, operator, left, right))


def _environment() -> _PromptEnvironment:
    env = _PromptEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text sent to an API, never HTML
        keep_trailing_newline=False,
        finalize=_bounded,
    )
    env.globals.clear()
    env.filters = {name: _wrap_filter(env.filters[name]) for name in _SAFE_FILTERS if name in env.filters}
    env.tests = dict(env.tests)
    return env


ENV = _environment()


def _check_structure(ast: nodes.Template) -> None:
    for node in ast.find_all((nodes.Macro, nodes.CallBlock)):
        raise jinja2.TemplateSyntaxError("macros and call blocks are not supported in prompt templates", node.lineno)
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise jinja2.TemplateSyntaxError(
            "extends, include and import are not supported in prompt templates", node.lineno
        )
    for loop in ast.find_all(nodes.For):
        for inner in loop.find_all(nodes.For):
            raise jinja2.TemplateSyntaxError("a loop inside a loop is not allowed in prompt templates", inner.lineno)


@lru_cache(maxsize=1024)
def _compile(text: str) -> jinja2.Template:
    ast = ENV.parse(text, filename=TEMPLATE_FILENAME)
    _check_structure(ast)
    return ENV.from_string(ast)


def compile_template(text: str) -> tuple[str, int] | None:
    """Check a template's syntax; return ``(message, line)`` for the first problem, or None."""
    try:
        _compile(text)
    except jinja2.TemplateSyntaxError as e:
        return e.message or str(e), e.lineno or 1
    return None


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Render a prompt template with ``variables``; whitespace is collapsed to single spaces.

    Raises:
        TemplateError: an undefined variable, a sandbox violation or any other failure, with the template line.
    """
    try:
        template = _compile(text)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"syntax error: {e.message}", e.lineno) from None
    try:
        out = template.render(variables)
    except jinja2.UndefinedError as e:
        raise TemplateError(f"undefined variable: {e.message}", _template_line(e)) from None
    except SecurityError as e:
        raise TemplateError(f"not allowed in templates: {e}", _template_line(e)) from None
    except RecursionError as e:
        raise TemplateError("the template recurses too deeply", _template_line(e)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
        raise TemplateError(f"{type(e).__name__}: {e}", _template_line(e)) from None
    except jinja2.TemplateError as e:
        raise TemplateError(str(e), _template_line(e)) from None
    return " ".join(out.split())


def _template_line(error: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == TEMPLATE_FILENAME:
            line = frame.lineno
    return line


class AxisVar(dict[str, Any]):
    """An axis value as templates see it: prints as its id, compares equal to its id, exposes extra fields."""

    def __init__(self, id: Any, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(extra or {})
        self["id"] = id

    def __str__(self) -> str:
        value = self["id"]
        return str(value).lower() if isinstance(value, bool) else str(value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AxisVar):
            return dict.__eq__(self, other)
        return bool(self["id"] == other or str(self) == other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(str(self))
