"""Load a campaign: parse the TOML files, validate them, and return one frozen :class:`Campaign`.

:func:`load_campaign` reports *every* problem of the campaign and its included files at once, one line each, as
``file:line: key.path: message``. Each section (every product, scene, template and job) is validated on its own,
so a mistake in one does not hide mistakes in the others; cross-references, files and the fit between settings
and operations are checked afterwards on what did validate.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from generator import schema
from generator.errors import INVISIBLE, InvalidCampaign, Problem
from generator.images import (
    DEFAULT_UPLOAD_LIMIT,
    ImageProblem,
    InputImage,
    check_regular_file,
    read_input_image,
)
from generator.models import REGISTRY, lookup
from generator.prompts import RESERVED_NAMES, compile_template
from generator.tomlkeys import KeyLines, KeyPath, locate_keys

MAX_CAMPAIGN_BYTES = 5 * 1024 * 1024
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_INCLUDE_DEPTH = 8
GEMINI_UPLOAD_LIMIT = 7 * 1024 * 1024

# --------------------------------------------------------------------------------------------------------------
# The loaded campaign: plain frozen objects for the rest of the program.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """Where something was written: a file (as shown to users) and a key path inside it."""

    file: str
    path: KeyPath


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    description: str
    subject_type: str
    images: tuple[InputImage, ...]
    mask: InputImage | None
    vars: Mapping[str, Any]
    origin: Origin


@dataclass(frozen=True, slots=True)
class Scene:
    id: str
    name: str
    prompt: str
    vars: Mapping[str, Any]
    origin: Origin


@dataclass(frozen=True, slots=True)
class Template:
    """A prompt template's source, and where its first line sits (for error messages)."""

    name: str
    text: str
    file: str
    first_line: int
    origin: Origin


@dataclass(frozen=True, slots=True)
class Reference:
    """A customization reference with its number ([1], [2], …) and its files (none: the variant's product)."""

    number: int
    type: str
    images: tuple[InputImage, ...]
    description: str | None
    subject_type: str | None
    control_type: str | None
    compute: bool


@dataclass(frozen=True, slots=True)
class Job:
    """A validated job: its spec as written, its prompt template, references and where it was written."""

    spec: schema.Job
    template: Template | None
    references: tuple[Reference, ...]
    origin: Origin

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def operation(self) -> str:
        return self.spec.operation


@dataclass(frozen=True)
class Campaign:
    """A validated campaign, with its included files merged in. Immutable."""

    id: str
    name: str
    description: str
    file: Path
    display: str
    root: Path
    defaults: schema.Defaults
    limits: schema.Limits
    backend: schema.BackendConfig
    products: Mapping[str, Product]
    scenes: Mapping[str, Scene]
    templates: Mapping[str, Template]
    jobs: tuple[Job, ...]
    notices: tuple[Problem, ...]
    files: tuple[str, ...]
    lines: Mapping[str, KeyLines] = field(repr=False)
    text: str = field(repr=False, default="")

    def locate(self, origin: Origin, *subpath: str | int) -> tuple[str, int | None]:
        """The file and line of ``origin`` extended by ``subpath`` (falling back to the nearest ancestor)."""
        lines = self.lines.get(origin.file)
        line = lines.line_of((*origin.path, *subpath)) if lines is not None else None
        return origin.file, line

    def problem(self, origin: Origin, subpath: tuple[str | int, ...], message: str) -> Problem:
        file, line = self.locate(origin, *subpath)
        return Problem(file, line, format_key((*origin.path, *subpath)), message)


def format_key(path: Iterable[str | int]) -> str:
    """``("products", 2, "images", 0)`` -> ``products[2].images[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out


def display_path(path: Path, cwd: Path | None = None) -> str:
    """A path as users should see it: relative to the working directory when inside it."""
    cwd = cwd or Path.cwd()
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        rel = os.path.relpath(path, cwd)
        return Path(rel).as_posix() if not rel.startswith("..") else path.as_posix()


def find_root(start: Path) -> Path:
    """The repository holding ``start``: the nearest ancestor with ``.git``, else ``start``'s folder."""
    folder = start.parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def load_campaign(path: str | os.PathLike[str], root: Path | None = None, targets: Iterable[str] = ()) -> Campaign:
    """Load, validate and resolve a campaign file and the files it includes.

    Args:
        path: the campaign's TOML file.
        root: the repository root; paths in the campaign may not leave it. Default: the nearest ancestor
            holding ``.git``, else the campaign file's folder.
        targets: models or backends the command line adds (``--model-map`` targets, ``--backend``): input photos
            are fitted under the smallest upload limit of everything the run may use.

    Raises:
        InvalidCampaign: listing every problem found, one per line.
    """
    return _Loader(Path(path), root, tuple(targets)).load()


@dataclass
class _Document:
    file: Path
    display: str
    text: str
    lines: KeyLines
    data: dict[str, Any]


class _Loader:
    def __init__(self, path: Path, root: Path | None, targets: tuple[str, ...] = ()) -> None:
        self.targets = targets
        self.path = path
        self.abs = Path(os.path.abspath(path))
        self.root = (root or find_root(self.abs)).resolve()
        self.problems: list[Problem] = []
        self.notices: list[Problem] = []
        self.documents: dict[Path, _Document] = {}
        self.images: dict[Path, InputImage | str] = {}
        self.upload_limit = DEFAULT_UPLOAD_LIMIT
        self.known_products: set[str] = set()
        self.known_scenes: set[str] = set()
        self.known_templates: set[str] = set()
        self.known_jobs: set[str] = set()

    # -- problems ---------------------------------------------------------------------------------------------

    def report(self, doc: _Document, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(doc.display, doc.lines.line_of(path), format_key(path), message))

    def report_validation(self, doc: _Document, prefix: KeyPath, error: ValidationError, model: Any) -> None:
        errors = [
            (
                tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))),
                err,
            )
            for err in error.errors(include_url=False)
        ]
        for loc, err in errors:
            # Pydantic also reports an array as too short when its only items failed; the item errors say why.
            if err["type"] == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o, _ in errors):
                continue
            self.report(doc, prefix + loc, _message(err, model, loc))

    # -- entry point ------------------------------------------------------------------------------------------

    def load(self) -> Campaign:
        main = self.read_document(self.abs, None, ())
        if main is None:
            raise InvalidCampaign(self.problems)
        sections = self.validate_main(main)
        included = self.load_includes(main, sections["include"], chain=(self.abs,))
        self.upload_limit = self.choose_upload_limit(sections)
        products = self.resolve_products([(main, sections["products"])] + [(d, s["products"]) for d, s in included])
        scenes = self.resolve_scenes([(main, sections["scenes"])] + [(d, s["scenes"]) for d, s in included])
        templates = self.resolve_templates([(main, sections["templates"])] + [(d, s["templates"]) for d, s in included])
        jobs = self.resolve_jobs(main, sections["jobs"], templates, products)
        self.check_models(main, sections)
        if self.problems:
            raise InvalidCampaign(self.problems)
        header: schema.CampaignHeader = sections["header"]
        return Campaign(
            id=header.id,
            name=header.name or header.id,
            description=header.description or "",
            file=self.abs,
            display=main.display,
            root=self.root,
            defaults=sections["defaults"],
            limits=sections["limits"],
            backend=sections["backend"],
            products=MappingProxyType(products),
            scenes=MappingProxyType(scenes),
            templates=MappingProxyType(templates),
            jobs=tuple(jobs),
            notices=tuple(self.notices),
            files=tuple(d.display for d in self.documents.values()),
            lines=MappingProxyType({d.display: d.lines for d in self.documents.values()}),
            text=main.text,
        )

    # -- reading files ----------------------------------------------------------------------------------------

    def read_document(self, file: Path, parent: _Document | None, at: KeyPath) -> _Document | None:
        display = display_path(file)

        def fail(message: str) -> None:
            if parent is None:
                self.problems.append(Problem(display, None, "", message))
            else:
                self.report(parent, at, f"{_quote(display)}: {message}")

        try:
            size = check_regular_file(file)
        except ImageProblem as e:
            fail(str(e).replace("an image file", "a TOML file").replace("a PNG, JPEG or WebP image", "TOML"))
            return None
        if size > MAX_CAMPAIGN_BYTES:
            fail(f"file is {size / 1024 / 1024:.1f} MB; campaign files over 5 MB are refused")
            return None
        raw = file.read_bytes()
        if b"\x00" in raw:
            fail("is a binary file, not TOML text")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            self.problems.append(Problem(display, line, "", "is not valid UTF-8 text; save the file as UTF-8"))
            return None
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.problems.append(_syntax_problem(display, e))
            return None
        doc = _Document(file, display, text, locate_keys(text), _freeze(data))
        self.documents[file] = doc
        self.check_characters(doc, data, ())
        return doc

    def check_characters(self, doc: _Document, value: Any, path: KeyPath) -> None:
        """Refuse control and bidirectional-override characters in every key and text (tab and newline aside):
        a prompt would carry them to the API, a plan or an error message to the reviewer's terminal."""
        if isinstance(value, str):
            found = _REFUSED_IN_TEXT.search(value)
            if found:
                self.report(doc, path, _refused_character(found[0]))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                found = INVISIBLE.search(key)
                if found:
                    self.report(doc, (*path, key), _refused_character(found[0]))
                self.check_characters(doc, item, (*path, key))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                self.check_characters(doc, item, (*path, i))

    # -- sections ---------------------------------------------------------------------------------------------

    def validate_main(self, doc: _Document) -> dict[str, Any]:
        data = doc.data
        allowed = tuple(schema.CampaignFile.model_fields)
        for key in data:
            if key not in allowed:
                self.report(doc, (key,), _unknown_key(key, allowed, what="section"))
        out: dict[str, Any] = {}
        if "campaign" not in data:
            self.problems.append(
                Problem(
                    doc.display,
                    None,
                    "campaign",
                    'missing [campaign] table (at least: id = "my-campaign")',
                )
            )
            out["header"] = None
        else:
            out["header"] = self.validate(doc, ("campaign",), data["campaign"], schema.CampaignHeader)
        if out["header"] is not None:
            out["include"] = out["header"].include
        else:  # still follow valid-looking includes, so their problems are reported too
            raw = data.get("campaign", {}).get("include", ()) if isinstance(data.get("campaign"), Mapping) else ()
            out["include"] = tuple(x for x in raw if isinstance(x, str)) if isinstance(raw, tuple) else ()
        for key, model in (
            ("defaults", schema.Defaults),
            ("limits", schema.Limits),
            ("backend", schema.BackendConfig),
        ):
            value = self.validate(doc, (key,), data.get(key, {}), model)
            out[key] = value if value is not None else model()
        self.validate_common(doc, data, out)
        out["jobs"] = self.validate_list(doc, data, "jobs", schema.Job)
        return out

    def validate_common(self, doc: _Document, data: Mapping[str, Any], out: dict[str, Any]) -> None:
        out["products"] = self.validate_list(doc, data, "products", schema.Product)
        out["scenes"] = self.validate_list(doc, data, "scenes", schema.Scene)
        out["templates"] = self.validate_templates(doc, data.get("templates", {}))

    def validate(self, doc: _Document, path: KeyPath, value: Any, model: type[BaseModel]) -> Any:
        if not isinstance(value, Mapping):
            self.report(doc, path, f"expected a table, got {_describe(value)}")
            return None
        try:
            return model.model_validate(value)
        except ValidationError as e:
            self.report_validation(doc, path, e, model)
            return None

    def validate_list(
        self, doc: _Document, data: Mapping[str, Any], key: str, model: type[BaseModel]
    ) -> list[tuple[int, Any, Mapping[str, Any]]]:
        """Validate each entry of an array of tables on its own; return (index, model or None, raw)."""
        raw = data.get(key, ())
        if not isinstance(raw, tuple) or not all(isinstance(x, Mapping) for x in raw):
            self.report(
                doc,
                (key,),
                f"expected an array of tables ([[{key}]] entries), got {_describe(raw)}",
            )
            return []
        out = []
        for i, entry in enumerate(raw):
            out.append((i, self.validate(doc, (key, i), entry, model), entry))
        return out

    def validate_templates(self, doc: _Document, raw: Any) -> list[tuple[str, Any]]:
        if not isinstance(raw, Mapping):
            self.report(doc, ("templates",), f"expected a table of templates, got {_describe(raw)}")
            return []
        out: list[tuple[str, Any]] = []
        for name, value in raw.items():
            path = ("templates", name)
            if not schema.ID_PATTERN.match(name) and not schema.AXIS_PATTERN.match(name):
                self.report(doc, path, "template names use a-z, 0-9, '-' and '_' (e.g. 'hero')")
                continue
            if isinstance(value, str):
                out.append((name, value))
            elif isinstance(value, Mapping):
                spec = self.validate(doc, path, value, schema.TemplateFile)
                if spec is not None:
                    out.append((name, spec))
            else:
                self.report(
                    doc,
                    path,
                    f'expected a string (inline template) or {{ file = "..." }}, got {_describe(value)}',
                )
        return out

    # -- includes ---------------------------------------------------------------------------------------------

    def load_includes(
        self, doc: _Document, includes: Iterable[str], chain: tuple[Path, ...]
    ) -> list[tuple[_Document, dict[str, Any]]]:
        out: list[tuple[_Document, dict[str, Any]]] = []
        key = "campaign" if doc.file == self.abs else None
        for i, rel in enumerate(includes):
            at: KeyPath = (key, "include", i) if key else ("include", i)
            target = self.resolve_path(doc, at, rel, what="included file")
            if target is None:
                continue
            if target in chain:
                names = " -> ".join(display_path(p) for p in (*chain[chain.index(target) :], target))
                self.report(doc, at, f"include cycle: {names}")
                continue
            if target in self.documents:
                self.report(doc, at, f"{_quote(rel)} is included twice; include each file once")
                continue
            if len(chain) > MAX_INCLUDE_DEPTH:
                self.report(doc, at, f"includes are nested more than {MAX_INCLUDE_DEPTH} deep; flatten them")
                continue
            child = self.read_document(target, doc, at)
            if child is None:
                continue
            allowed = tuple(schema.IncludedFile.model_fields)
            for k in child.data:
                if k not in allowed:
                    self.report(
                        child,
                        (k,),
                        f"unknown section {_quote(k)}: an included file may hold only "
                        "include, products, scenes and templates",
                    )
            sections: dict[str, Any] = {}
            self.validate_common(child, child.data, sections)
            nested = child.data.get("include", ())
            if not isinstance(nested, tuple) or not all(isinstance(x, str) for x in nested):
                self.report(child, ("include",), f"expected an array of file paths, got {_describe(nested)}")
                nested = ()
            out.append((child, sections))
            out.extend(self.load_includes(child, nested, (*chain, target)))
        return out

    # -- paths and images -------------------------------------------------------------------------------------

    def resolve_path(self, doc: _Document, at: KeyPath, rel: str, what: str) -> Path | None:
        if _REFUSED_IN_TEXT.search(rel):
            return None  # reported by check_characters
        if INVISIBLE.search(rel):
            self.report(doc, at, f"{what} path contains control characters")
            return None
        if os.path.isabs(rel) or rel.startswith("~"):
            self.report(
                doc,
                at,
                f"{_quote(rel)}: absolute paths and ~ are not allowed; write the path relative to "
                f"{_quote(doc.display)}",
            )
            return None
        joined = Path(os.path.normpath(doc.file.parent / rel))
        try:
            resolved = joined.resolve()
        except (OSError, RuntimeError):
            self.report(doc, at, f"{_quote(rel)}: cannot resolve the path (symlink loop?)")
            return None
        if not resolved.is_relative_to(self.root):
            how = "through a symlink " if joined.is_relative_to(self.root) else ""
            self.report(
                doc,
                at,
                f"{_quote(rel)} resolves {how}outside the repository holding the campaign; "
                "keep campaign files and assets inside it",
            )
            return None
        if not resolved.exists():
            self.report(doc, at, f"{what} not found: {rel}")
            return None
        return resolved

    def image(self, doc: _Document, at: KeyPath, rel: str) -> InputImage | None:
        target = self.resolve_path(doc, at, rel, what="file")
        if target is None:
            return None
        cached = self.images.get(target)
        if cached is None:
            try:
                cached = read_input_image(target, target.relative_to(self.root).as_posix(), self.upload_limit)
            except ImageProblem as e:
                cached = str(e)
            self.images[target] = cached
        if isinstance(cached, str):
            self.report(doc, at, f"{rel}: {cached}")
            return None
        if cached.fitted:
            self.notices.append(Problem(doc.display, doc.lines.line_of(at), format_key(at), f"{rel}: {cached.fitted}"))
        return cached

    def choose_upload_limit(self, sections: Mapping[str, Any]) -> int:
        """Gemini models take 7 MB per image, Imagen 10 MB: fit photos under the smaller limit in use."""
        names: set[str] = set(self.targets)
        defaults: schema.Defaults = sections["defaults"]
        names.update(x for x in (defaults.model, *defaults.model_map.values()) if x)
        backends: set[str | None] = {defaults.backend, *self.targets}
        for _, job, _ in sections["jobs"]:
            if job is not None:
                names.update(x for x in (job.model,) if x)
                backends.add(job.backend)
                for axis, values in (job.matrix.model_extra or {} if job.matrix else {}).items():
                    if axis == "model":
                        names.update(str(v.id) for v in values)
                    if axis == "backend":
                        backends.update(str(v.id) for v in values)
        gemini = "gemini" in backends or any((s := lookup(n)) and s.family == "gemini" for n in names)
        return GEMINI_UPLOAD_LIMIT if gemini else DEFAULT_UPLOAD_LIMIT

    # -- products, scenes, templates --------------------------------------------------------------------------

    def resolve_products(self, groups: list[tuple[_Document, list[Any]]]) -> dict[str, Product]:
        out: dict[str, Product] = {}
        first_seen: dict[str, str] = {}
        for doc, entries in groups:
            for i, spec, raw in entries:
                path: KeyPath = ("products", i)
                rid = spec.id if spec is not None else raw.get("id")
                if isinstance(rid, str):
                    if self.duplicate(doc, (*path, "id"), "product", rid, first_seen):
                        continue
                    self.known_products.add(rid)
                if spec is None:
                    continue
                images = tuple(self.image(doc, (*path, "images", k), rel) for k, rel in enumerate(spec.images))
                mask = self.image(doc, (*path, "mask"), spec.mask) if spec.mask else None
                if (
                    mask is not None
                    and images[0] is not None
                    and (mask.width, mask.height) != (images[0].width, images[0].height)
                ):
                    self.report(
                        doc,
                        (*path, "mask"),
                        f"{spec.mask}: mask is {mask.width}x{mask.height} but the first photo is "
                        f"{images[0].width}x{images[0].height}; they must be the same size",
                    )
                if any(img is None for img in images):
                    continue
                out[spec.id] = Product(
                    id=spec.id,
                    name=spec.name or spec.id,
                    description=spec.description,
                    subject_type=spec.subject_type,
                    images=tuple(img for img in images if img is not None),
                    mask=mask,
                    vars=MappingProxyType(dict(spec.vars)),
                    origin=Origin(doc.display, path),
                )
        return out

    def resolve_scenes(self, groups: list[tuple[_Document, list[Any]]]) -> dict[str, Scene]:
        out: dict[str, Scene] = {}
        first_seen: dict[str, str] = {}
        for doc, entries in groups:
            for i, spec, raw in entries:
                rid = spec.id if spec is not None else raw.get("id")
                if isinstance(rid, str):
                    if self.duplicate(doc, ("scenes", i, "id"), "scene", rid, first_seen):
                        continue
                    self.known_scenes.add(rid)
                if spec is not None:
                    out[spec.id] = Scene(
                        spec.id,
                        spec.name or spec.id,
                        spec.prompt,
                        MappingProxyType(dict(spec.vars)),
                        Origin(doc.display, ("scenes", i)),
                    )
        return out

    def resolve_templates(self, groups: list[tuple[_Document, list[tuple[str, Any]]]]) -> dict[str, Template]:
        out: dict[str, Template] = {}
        first_seen: dict[str, str] = {}
        for doc, entries in groups:
            for name, spec in entries:
                path: KeyPath = ("templates", name)
                if self.duplicate(doc, path, "template", name, first_seen):
                    continue
                self.known_templates.add(name)
                template = self.template(doc, path, name, spec)
                if template is not None:
                    out[name] = template
        return out

    def template(self, doc: _Document, path: KeyPath, name: str, spec: Any) -> Template | None:
        origin = Origin(doc.display, path)
        if isinstance(spec, str):
            line = doc.lines.line_of(path) or 1
            template = Template(name, spec, doc.display, line + _starts_on_next_line(doc.text, line), origin)
        else:
            target = self.resolve_path(doc, (*path, "file"), spec.file, what="template file")
            if target is None:
                return None
            try:
                size = check_regular_file(target)
                if size > MAX_TEMPLATE_BYTES:
                    raise ImageProblem(f"is {size // 1024} KB; templates over 256 KB are refused")
                text = target.read_bytes().decode("utf-8")
            except ImageProblem as e:
                self.report(
                    doc,
                    (*path, "file"),
                    f"{spec.file}: {str(e).replace('an image file', 'a text file')}",
                )
                return None
            except UnicodeDecodeError:
                self.report(doc, (*path, "file"), f"{spec.file}: is not UTF-8 text")
                return None
            template = Template(name, text, display_path(target), 1, origin)
        error = compile_template(template.text)
        if error is not None:
            message, lineno = error
            self.problems.append(
                Problem(
                    template.file,
                    template.first_line + lineno - 1,
                    format_key(path),
                    f"template syntax error: {message}",
                )
            )
            return None
        return template

    def duplicate(self, doc: _Document, path: KeyPath, what: str, rid: str, seen: dict[str, str]) -> bool:
        where = f"{doc.display}:{doc.lines.line_of(path)}"
        if rid in seen:
            self.report(doc, path, f"duplicate {what} id {_quote(rid)} (first defined at {seen[rid]})")
            return True
        seen[rid] = where
        return False

    # -- jobs -------------------------------------------------------------------------------------------------

    def resolve_jobs(
        self,
        doc: _Document,
        entries: list[tuple[int, Any, Mapping[str, Any]]],
        templates: Mapping[str, Template],
        products: Mapping[str, Product],
    ) -> list[Job]:
        first_seen: dict[str, str] = {}
        for i, spec, raw in entries:
            rid = spec.id if spec is not None else raw.get("id")
            if isinstance(rid, str) and not self.duplicate(doc, ("jobs", i, "id"), "job", rid, first_seen):
                self.known_jobs.add(rid)
        jobs: list[Job] = []
        for i, spec, _ in entries:
            if spec is None:
                continue
            job = self.resolve_job(doc, i, spec, templates)
            if job is not None:
                jobs.append(job)
        self.check_sources(doc, jobs)
        return jobs

    def resolve_job(self, doc: _Document, i: int, spec: schema.Job, templates: Mapping[str, Template]) -> Job | None:
        path: KeyPath = ("jobs", i)
        op = spec.operation
        before = len(self.problems)
        allowed = schema.OPERATION_SETTINGS[op]
        for name in sorted(spec.model_fields_set & set(schema.SETTING_NAMES)):
            if name not in allowed:
                self.report(doc, (*path, name), _does_not_apply(name, op))
        for name, ops in schema.OPERATION_JOB_KEYS.items():
            if name in spec.model_fields_set and op not in ops:
                self.report(
                    doc,
                    (*path, name),
                    f"{_quote(name)} does not apply to operation {_quote(op)} (it "
                    f"applies to: {', '.join(sorted(ops))})",
                )
        if op == "upscale" and spec.images not in (None, 1):
            self.report(
                doc,
                (*path, "images"),
                "upscale returns one image per source image; remove images or set it to 1",
            )
        # Prompt: exactly one of template/prompt where the operation needs one.
        template: Template | None = None
        needs_prompt = op in ("generate", "bgswap", "customize", "edit")
        if spec.template is not None and spec.prompt is not None:
            self.report(doc, (*path, "prompt"), "set either template or prompt, not both")
        elif spec.template is not None:
            template = templates.get(spec.template)
            if template is None and spec.template not in self.known_templates:
                self.report(
                    doc,
                    (*path, "template"),
                    _unknown_ref("template", spec.template, sorted(self.known_templates)),
                )
        elif spec.prompt is not None:
            inline = self.template(doc, (*path, "prompt"), spec.id, spec.prompt)
            template = inline
        elif needs_prompt:
            self.report(
                doc,
                path,
                f'operation {_quote(op)} needs a prompt: set template = "<name>" or prompt = "..."',
            )
        # Source.
        if spec.source is not None and spec.source != "product":
            if spec.source == spec.id:
                self.report(doc, (*path, "source"), "a job cannot take its own outputs as its source")
            elif spec.source not in self.known_jobs:
                self.report(
                    doc,
                    (*path, "source"),
                    _unknown_ref("job", spec.source, sorted(self.known_jobs), extra="product"),
                )
        # References.
        references = self.resolve_references(doc, path, spec)
        if spec.matrix is not None:
            self.check_matrix(doc, (*path, "matrix"), spec)
        if len(self.problems) > before:
            return None
        return Job(spec=spec, template=template, references=references, origin=Origin(doc.display, path))

    def resolve_references(self, doc: _Document, path: KeyPath, spec: schema.Job) -> tuple[Reference, ...]:
        if spec.operation != "customize":
            return ()
        if not spec.references:
            self.report(
                doc,
                path,
                "a customize job needs at least one reference: [[jobs.references]] with "
                'type = "subject", "style" or "control"',
            )
            return ()
        out = []
        for k, ref in enumerate(spec.references):
            at: KeyPath = (*path, "references", k)
            if ref.type != "subject" and not ref.images:
                self.report(doc, at, f'a {ref.type} reference needs images = ["..."]')
            if ref.type != "subject" and ref.subject_type is not None:
                self.report(doc, (*at, "subject_type"), "only subject references take subject_type")
            if ref.type != "control" and ref.control_type is not None:
                self.report(doc, (*at, "control_type"), "only control references take control_type")
            if ref.type != "control" and "compute" in ref.model_fields_set:
                self.report(doc, (*at, "compute"), "only control references take compute")
            if ref.type == "control" and ref.control_type is None:
                self.report(
                    doc,
                    at,
                    'a control reference needs control_type = "canny", "scribble" or "face_mesh"',
                )
            if ref.type == "control" and len(ref.images) > 1:
                self.report(doc, (*at, "images"), "a control reference takes one image")
            images = tuple(self.image(doc, (*at, "images", j), rel) for j, rel in enumerate(ref.images))
            out.append(
                Reference(
                    number=k + 1,
                    type=ref.type,
                    images=tuple(img for img in images if img is not None),
                    description=ref.description,
                    subject_type=ref.subject_type,
                    control_type=ref.control_type,
                    compute=ref.compute,
                )
            )
        return tuple(out)

    def check_matrix(self, doc: _Document, path: KeyPath, spec: schema.Job) -> None:
        matrix = spec.matrix
        assert matrix is not None
        op = spec.operation
        axes: dict[str, set[str]] = {}
        for key, known, what in (
            ("product", self.known_products, "product"),
            ("scene", self.known_scenes, "scene"),
        ):
            values = getattr(matrix, key)
            if values is None:
                continue
            if "*" in values:
                if len(values) > 1:
                    self.report(doc, (*path, key), f'"*" stands for every {what}; use it alone')
                axes[key] = set(known)
                continue
            axes[key] = set(values)
            for k, value in enumerate(values):
                if value not in known:
                    self.report(doc, (*path, key, k), _unknown_ref(what, value, sorted(known)))
            self.check_unique(doc, (*path, key), list(values))
        for name, values in (matrix.model_extra or {}).items():
            at = (*path, name)
            if not schema.AXIS_PATTERN.match(name):
                self.report(
                    doc,
                    at,
                    "axis names are template variables: lowercase letters, digits and '_', "
                    "starting with a letter (e.g. 'style')",
                )
                continue
            if name in RESERVED_NAMES:
                self.report(doc, at, f"{_quote(name)} is reserved for templates; name the axis differently")
                continue
            if name in schema.SETTING_NAMES:
                if name not in schema.OPERATION_SETTINGS[op]:
                    self.report(doc, at, _does_not_apply(name, op))
                    continue
                for k, value in enumerate(values):
                    self.check_setting(doc, (*at, k), name, value.id)
            ids = [str(v.id) for v in values]
            self.check_unique(doc, at, ids)
            axes[name] = set(ids)
        for k, entry in enumerate(matrix.exclude):
            if not entry:
                self.report(
                    doc,
                    (*path, "exclude", k),
                    "an empty exclude entry would remove every combination",
                )
            for key, value in entry.items():
                at = (*path, "exclude", k, key)
                if key not in axes:
                    self.report(
                        doc,
                        at,
                        f"{_quote(key)} is not an axis of this matrix (axes: {', '.join(sorted(axes)) or 'none'})",
                    )
                elif str(value) not in axes[key]:
                    self.report(
                        doc,
                        at,
                        f"{_quote(str(value))} is not a value of axis {_quote(key)} ({', '.join(sorted(axes[key]))})",
                    )
        for k, entry in enumerate(matrix.include):
            if not entry:
                self.report(doc, (*path, "include", k), "an include entry needs at least one key")
            for key, value in entry.items():
                at = (*path, "include", k, key)
                if not schema.AXIS_PATTERN.match(key):
                    self.report(
                        doc,
                        at,
                        "include keys are template variables: lowercase letters, digits and '_'",
                    )
                elif key in ("product", "scene"):
                    known = self.known_products if key == "product" else self.known_scenes
                    if value not in known:
                        self.report(doc, at, _unknown_ref(key, str(value), sorted(known)))
                elif key in RESERVED_NAMES:
                    self.report(doc, at, f"{_quote(key)} is reserved for templates")
                elif key in schema.SETTING_NAMES:
                    if key not in schema.OPERATION_SETTINGS[op]:
                        self.report(doc, at, _does_not_apply(key, op))
                    else:
                        self.check_setting(doc, at, key, value)

    def check_setting(self, doc: _Document, at: KeyPath, name: str, value: Any) -> None:
        try:
            schema.Settings.model_validate({name: value})
        except ValidationError as e:
            for err in e.errors(include_url=False):
                self.report(doc, at, _message(err, schema.Settings, tuple(err["loc"])))

    def check_unique(self, doc: _Document, at: KeyPath, values: list[str]) -> None:
        seen: set[str] = set()
        for k, v in enumerate(values):
            if v in seen:
                self.report(doc, (*at, k), f"{_quote(v)} is listed twice")
            seen.add(v)

    def check_sources(self, doc: _Document, jobs: list[Job]) -> None:
        by_id = {j.id: j for j in jobs}
        for job in jobs:
            seen = [job.id]
            current = job
            while current.spec.source not in (None, "product") and current.spec.source in by_id:
                nxt = by_id[current.spec.source]
                if nxt.id in seen:
                    if nxt.id == job.id:
                        self.report(
                            doc,
                            (*job.origin.path, "source"),
                            f"jobs take each other's outputs in a cycle: {' -> '.join([*seen, nxt.id])}",
                        )
                    break
                seen.append(nxt.id)
                current = nxt

    # -- models -----------------------------------------------------------------------------------------------

    def check_models(self, doc: _Document, sections: Mapping[str, Any]) -> None:
        known = sorted(REGISTRY)
        defaults: schema.Defaults = sections["defaults"]
        if defaults.model and lookup(defaults.model) is None:
            self.report(doc, ("defaults", "model"), _unknown_ref("model", defaults.model, known))
        for src, dst in defaults.model_map.items():
            for value, key in ((src, src), (dst, src)):
                if lookup(value) is None:
                    self.report(doc, ("defaults", "model_map", key), _unknown_ref("model", value, known))
        limits: schema.Limits = sections["limits"]
        for table in ("requests_per_minute", "price_per_image_usd"):
            for name in getattr(limits, table):
                if lookup(name) is None:
                    self.report(doc, ("limits", table, name), _unknown_ref("model", name, known))
        for i, job, _ in sections["jobs"]:
            if job is None:
                continue
            if job.model and lookup(job.model) is None:
                self.report(doc, ("jobs", i, "model"), _unknown_ref("model", job.model, known))
            values = (job.matrix.model_extra or {}).get("model", ()) if job.matrix else ()
            for k, value in enumerate(values):
                if lookup(str(value.id)) is None:
                    self.report(
                        doc,
                        ("jobs", i, "matrix", "model", k),
                        _unknown_ref("model", str(value.id), known),
                    )


# --------------------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    """TOML arrays become tuples (strict models take tuples only; the data is immutable anyway)."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def _syntax_problem(display: str, e: tomllib.TOMLDecodeError) -> Problem:
    text = str(e)
    match = re.search(r"\(at line (\d+), column (\d+)\)", text)
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", text)
    message = re.sub(r"\s*\(at end of document\)", " (at the end of the file)", message)
    if match:
        return Problem(
            display,
            int(match.group(1)),
            "",
            f"TOML syntax error: {message} (column {match.group(2)})",
        )
    return Problem(display, None, "", f"TOML syntax error: {message}")


def _starts_on_next_line(text: str, line: int) -> int:
    """1 if the multi-line string on ``line`` opens with a newline (TOML trims it), else 0."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return 0
    return 1 if re.search(r"=\s*(\"\"\"|''')\s*$", lines[line - 1]) else 0


#: :data:`~generator.errors.INVISIBLE` characters but tab, newline and carriage return, which texts may hold.
_REFUSED_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _refused_character(char: str) -> str:
    return (
        f"contains the invisible character U+{ord(char):04X}; remove it (control and bidirectional-override "
        "characters are refused)"
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({_quote(shown)})"
    if isinstance(value, tuple | list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__.replace('datetime', 'date-time')}"


def _unknown_key(key: str, allowed: Iterable[str], what: str = "key") -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} {_quote(key)}; did you mean {_quote(close[0])}?"
    return f"unknown {what} {_quote(key)} (expected one of: {', '.join(allowed)})"


def _unknown_ref(what: str, value: str, known: list[str], extra: str | None = None) -> str:
    choices = ([extra] if extra else []) + known
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} {_quote(value)}; did you mean {_quote(close[0])}?"
    if what == "model":
        return f"unknown model {_quote(value)} (`campaign models` lists the models the tool knows)"
    listed = ", ".join(choices[:8]) + (", …" if len(choices) > 8 else "")
    return f"unknown {what} {_quote(value)} (known: {listed or 'none'})"


def _does_not_apply(name: str, op: str) -> str:
    ops = [o for o, names in schema.OPERATION_SETTINGS.items() if name in names]
    return f"{_quote(name)} does not apply to operation {_quote(op)} (it applies to: {', '.join(ops)})"


def _model_at(model: Any, loc: tuple[Any, ...]) -> Any:
    """The Pydantic model class that holds the last key of ``loc`` (to list its allowed keys)."""
    current = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is None:
            return annotation
        args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        if not args:
            return annotation
        annotation = args[0]


_PATTERN_MESSAGES = {
    schema.RATIO_PATTERN.pattern: "expected width:height, e.g. '1:1' or '16:9'",
    r"^[a-z0-9-]{2,40}$": "expected a location id such as 'us-central1' or 'global'",
    r"^https?://[^\s]+$": "expected an http(s) URL, e.g. 'http://127.0.0.1:8765'",
}


def _message(err: Any, model: Any, loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        holder = _model_at(model, loc[:-1])
        allowed = list(holder.model_fields) if holder is not None else []
        return _unknown_key(str(loc[-1]), allowed)
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {_describe(value)}"
    expected = {
        "string_type": "a string",
        "int_type": "an integer",
        "float_type": "a number",
        "bool_type": "true or false",
        "tuple_type": "an array",
        "list_type": "an array",
        "dict_type": "a table",
        "model_type": "a table",
        "model_attributes_type": "a table",
        "int_from_float": "an integer",
    }.get(kind)
    if expected:
        return f"expected {expected}, got {_describe(value)}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }.get(kind)
    if bounds:
        return f"must be {bounds[0]} {ctx.get(bounds[1])}, got {value}"
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        if isinstance(value, str):
            return "must not be empty" if limit == 1 and kind == "too_short" else f"must be {word} {limit} characters"
        return f"needs {word} {limit} item{'s' if limit != 1 else ''}, got {ctx.get('actual_length')}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length'):,} characters, got {len(value):,}"
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    if kind == "string_pattern_mismatch":
        return f"{_PATTERN_MESSAGES.get(ctx.get('pattern', ''), 'has the wrong form')}, got {_describe(value)}"
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])
