"""Prompt templates: Jinja2 in an immutable sandbox, with strict undefined variables and bounded work.

Templates arrive through pull requests, so they are untrusted code. They render in Jinja2's
``ImmutableSandboxedEnvironment`` (no attribute starting with ``_``, no mutation of values, safe ``str.format``)
with ``StrictUndefined``. On top of the sandbox, a template cannot make the planner hang or exhaust memory:

- no ``range``/``lipsum``/``cycler``/``joiner``/``namespace`` globals; no macros, call blocks, ``{% set %}`` or
  ``{% filter %}`` blocks, includes or imports; no loop inside a loop, no recursive loop, and at most
  :data:`MAX_LOOP` iterations;
- only a list of simple filters, and of string methods (no ``center``, ``zfill``, ``expandtabs``…);
- no string, list or dict may grow beyond :data:`MAX_TEXT` characters or items, counted through nested values
  (``*``, ``+``, ``~``, ``%``, ``str.format``, ``replace`` and ``join`` are checked before they build anything
  larger: a width of a billion is refused, not allocated); no integer beyond :data:`MAX_INT_BITS` bits;
- the whole output stops at :data:`MAX_OUTPUT` characters.
"""

from __future__ import annotations

import itertools
import re
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter

#: Longest string or list a template may build (a prompt is at most a few thousand characters).
MAX_TEXT = 20_000
#: Longest output of a template, all its pieces together.
MAX_OUTPUT = 100_000
#: Most items a loop may go through.
MAX_LOOP = 1_000
#: Largest integer a template may compute, in bits (a prompt has no use for numbers of hundreds of digits).
MAX_INT_BITS = 1_024
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


def _size(value: Any, budget: int = MAX_TEXT) -> int:
    """Characters and items in ``value``, counted through nested lists, tuples and dicts; stops past ``budget``.

    An undefined value inside a collection raises, as it would on its own (a list prints its items' reprs, which
    would hide a refused attribute behind the word ``Undefined``).
    """
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | dict):
        total = 0
        for item in value.items() if isinstance(value, dict) else value:
            if total > budget:
                break
            total += max(1, _size(item, budget - total))
        return total
    return 0


def _bounded(value: Any) -> Any:
    """``value``, if it is within the limits: text and collections of :data:`MAX_TEXT`, integers of
    :data:`MAX_INT_BITS`; iterators are wrapped to stop at the limit as they are consumed."""
    if isinstance(value, str | list | tuple | dict):
        size = _size(value)
        if size > MAX_TEXT and isinstance(value, str):
            raise SecurityError(f"the template built a value of {size:,} characters/items (limit {MAX_TEXT:,})")
        if size > MAX_TEXT:
            raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"the template built a number over {MAX_INT_BITS} bits")
    elif isinstance(value, Iterator):
        return _BoundedIterator(value)
    return value


class _BoundedIterator(Iterator[Any]):
    """A filter's lazy result (``map``, ``select``…): raises once what it yielded exceeds :data:`MAX_TEXT`, before
    ``list`` or ``join`` could hold it all."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items
        self.used = 0

    def __next__(self) -> Any:
        item = _bounded(next(self.items))
        self.used += max(1, _size(item))
        if self.used > MAX_TEXT:
            raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")
        return item


def _loop_items(items: Any) -> Any:
    """What a ``for`` loop iterates over, at most :data:`MAX_LOOP` items (inserted by :func:`_compile`)."""
    if isinstance(items, Undefined):
        return items
    if isinstance(items, Sized):
        if len(items) > MAX_LOOP:
            raise SecurityError(f"a loop over {len(items):,} items (limit {MAX_LOOP:,})")
        return items
    taken = list(itertools.islice(iter(items), MAX_LOOP + 1))
    if len(taken) > MAX_LOOP:
        raise SecurityError(f"a loop over more than {MAX_LOOP:,} items")
    return taken


def _wrap_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return _bounded(fn(*args, **kwargs))

    # Keep Jinja's pass_context/pass_environment markers.
    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(wrapped, attr, getattr(fn, attr))
    return wrapped


#: String methods a template may call; the others can build huge strings from small arguments (``center``,
#: ``ljust``, ``zfill``, ``expandtabs``, ``translate``) or have no use in a prompt.
_STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "format",
        "format_map",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)
#: Width and precision in a printf-style conversion (``%-20.5s``, ``%*d``).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
#: Width and precision in a format spec (``>20``, ``,.2f``), once nested fields are replaced.
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?")


def _check_width(width: str | None, what: str) -> None:
    if width == "*":
        raise SecurityError(f"'*' widths are not allowed in {what}")
    if width and int(width) > MAX_TEXT:
        raise SecurityError(f"a width or precision of {int(width):,} in {what} (limit {MAX_TEXT:,})")


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in templates: the sandbox's attribute checks, and no width or precision over the limit."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        match = _FORMAT_SPEC.match(format_spec)
        if match:
            for width in match.groups():
                _check_width(width, "a format string")
        return _bounded(super().format_field(value, format_spec))


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every value a template builds bounded (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponents above 64 are not allowed in templates")
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise SecurityError(f"the template built a number over {MAX_INT_BITS} bits")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and _size(seq) * n > MAX_TEXT:
                    raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")
        if operator == "%" and isinstance(left, str):
            for widths in _PERCENT_SPEC.findall(left):
                for width in widths:
                    _check_width(width, "a %-format")
        return _bounded(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if (
            isinstance(obj, str)
            and not attribute.startswith("_")  # the sandbox refuses those with its own message
            and attribute not in _STR_METHODS
            and callable(getattr(str, attribute, None))
        ):
            return self.undefined(
                f"the string method {attribute!r} is not available in templates",
                name=attribute,
                obj=obj,
                exc=SecurityError,
            )
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, types.BuiltinMethodType) or value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        formatter = _BoundedFormatter(self)

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if value.__name__ == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return str(_bounded(formatter.vformat(text, (), args[0])))
            return str(_bounded(formatter.vformat(text, args, kwargs)))

        return bounded_format

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            _check_str_call(__obj.__self__, __obj.__name__, args)
        return _bounded(super().call(__context, __obj, *args, **kwargs))

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        """The ``~`` operator: parts joined as text, within the limit."""
        out = []
        total = 0
        for part in parts:
            text = str(_bounded(part))
            total += len(text)
            if total > MAX_TEXT:
                raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")
            out.append(text)
        return "".join(out)


def _check_str_call(text: str, method: str, args: tuple[Any, ...]) -> None:
    """Refuse a ``replace`` or ``join`` whose result would exceed the limit, before it is built."""
    if method == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1])
    if method == "join" and args and isinstance(args[0], list | tuple):
        _check_join(args[0], text)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    text, old, new = str(text), str(old), str(new)
    count = len(text) + 1 if old == "" else text.count(old)
    if len(text) + count * (len(new) - len(old)) > MAX_TEXT:
        raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")


def _check_join(items: list[Any] | tuple[Any, ...], separator: Any) -> None:
    if len(str(separator)) * max(0, len(items) - 1) + _size(list(items)) > MAX_TEXT:
        raise SecurityError(f"the template built a value over {MAX_TEXT:,} characters/items")


def _replace_filter(eval_ctx: Any, text: Any, old: Any, new: Any, count: int | None = None) -> Any:
    _check_replace(text, old, new)
    return _JINJA_FILTERS["replace"](eval_ctx, text, old, new, count)


def _join_filter(eval_ctx: Any, items: Any, d: Any = "", attribute: Any = None) -> Any:
    items = items if isinstance(items, str) else list(_bounded(iter(items)))
    if not isinstance(items, str):
        _check_join(items, d)
    return _JINJA_FILTERS["join"](eval_ctx, items, d, attribute)


_JINJA_FILTERS = dict(jinja2.filters.FILTERS)
_replace_filter.jinja_pass_arg = _JINJA_FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]
_join_filter.jinja_pass_arg = _JINJA_FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]


class _PromptCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a bounded join (Jinja's own ``str_join`` has no limit and no sandbox hook)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _environment() -> _PromptEnvironment:
    env = _PromptEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text sent to an API, never HTML
        keep_trailing_newline=False,
        finalize=_bounded,
    )
    env.code_generator_class = _PromptCodeGenerator
    env.globals.clear()
    own = {"replace": _replace_filter, "join": _join_filter}  # checked before they build anything
    env.filters = {name: _wrap_filter(own.get(name, env.filters[name])) for name in _SAFE_FILTERS}
    env.filters[_LOOP_FILTER] = _loop_items
    env.tests = dict(env.tests)
    return env


#: The filter :func:`_compile` puts around every loop's items (a name with a space: no template can write it).
_LOOP_FILTER = "loop items"
ENV = _environment()


def _check_structure(ast: nodes.Template) -> None:
    for node in ast.find_all((nodes.Macro, nodes.CallBlock)):
        raise jinja2.TemplateSyntaxError("macros and call blocks are not supported in prompt templates", node.lineno)
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise jinja2.TemplateSyntaxError(
            "extends, include and import are not supported in prompt templates", node.lineno
        )
    for node in ast.find_all((nodes.AssignBlock, nodes.FilterBlock)):
        # Their body is collected out of sight of the output limit.
        raise jinja2.TemplateSyntaxError(
            "{% set %} and {% filter %} blocks are not supported in prompt templates; use {% set x = ... %}",
            node.lineno,
        )
    for loop in ast.find_all(nodes.For):
        for inner in loop.find_all(nodes.For):
            raise jinja2.TemplateSyntaxError("a loop inside a loop is not allowed in prompt templates", inner.lineno)
        if loop.recursive:
            raise jinja2.TemplateSyntaxError("recursive loops are not allowed in prompt templates", loop.lineno)


@lru_cache(maxsize=1024)
def _compile(text: str) -> jinja2.Template:
    ast = ENV.parse(text, filename=TEMPLATE_FILENAME)
    _check_structure(ast)
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
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
        out = _render_bounded(template, variables)
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


def _render_bounded(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """The template's output, piece by piece, stopping once it exceeds :data:`MAX_OUTPUT` characters."""
    out: list[str] = []
    total = 0
    for piece in template.generate(variables):
        total += len(piece)
        if total > MAX_OUTPUT:
            raise SecurityError(f"the template's output is over {MAX_OUTPUT:,} characters")
        out.append(piece)
    return "".join(out)


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
