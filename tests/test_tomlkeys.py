"""The key locator agrees with tomllib on every key, and puts each on its line."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.tomlkeys import locate_keys
from tests.conftest import DATA, REPO

TRICKY = '''# comment with [brackets] and = signs
[campaign]
id = "x"   # trailing comment
include = ["a.toml",
  "b.toml"]   # an array over two lines

[defaults]
"quoted.key" = 1
'literal key' = 2
a.b.c = 3
m = """multi
line "" string with [not] a = key"""
lit = \'\'\'raw \\ text\'\'\'

[[products]]
id = "p1"
images = [
  "one.png", # comment
  "two.png",
]

[[products]]
id = 'p2'
x = { y = 1, z = [1, { q = 2 }] }

[[products.variants]]
k = 1

[jobs.matrix]
exclude = [{ product = "p", scene = "a" },
   { product = "q" }]
'''


def test_lines_of_tricky_document() -> None:
    lines = locate_keys(TRICKY)
    expected = {
        ("campaign", "id"): 3,
        ("campaign", "include", 1): 5,
        ("defaults", "quoted.key"): 8,
        ("defaults", "literal key"): 9,
        ("defaults", "a", "b", "c"): 10,
        ("defaults", "lit"): 13,
        ("products", 0, "images", 0): 18,
        ("products", 0, "images", 1): 19,
        ("products", 1, "id"): 23,
        ("products", 1, "x", "z", 1, "q"): 24,
        ("products", 1, "variants", 0, "k"): 27,
        ("jobs", "matrix", "exclude", 1, "product"): 31,
    }
    assert {k: lines[k] for k in expected} == expected


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    out = {prefix} if prefix else set()
    if isinstance(value, dict):
        for k, v in value.items():
            out |= _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out |= _paths(v, (*prefix, i))
    return out


def test_every_key_of_every_repository_toml_is_located() -> None:
    files = list((REPO / "campaigns").rglob("*.toml")) + list(DATA.rglob("*.toml"))
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue
        located = set(locate_keys(text))
        assert _paths(data) <= located, path


keys = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.text("ab \"'\\#=[]{}\n", max_size=8))


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=3)), min_size=1, max_size=6),
    st.dictionaries(keys, scalars, max_size=3),
)
def test_generated_documents(table: dict[str, Any], inline: dict[str, Any]) -> None:
    import json

    def dump(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[\n  " + ",\n  ".join(dump(x) for x in v) + ",\n]" if v else "[]"
        return str(v)

    body = "".join(f"{k} = {dump(v)}\n" for k, v in table.items())
    body += "inline = { " + ", ".join(f"{k} = {dump(v)}" for k, v in inline.items()) + " }\n"
    text = f"[section]\n{body}"
    data = tomllib.loads(text)
    lines = locate_keys(text)
    assert _paths(data) <= set(lines)
    # Each top-level key is on the line where it is written.
    for k in table:
        assert text.splitlines()[lines[("section", k)] - 1].startswith(f"{k} =")
