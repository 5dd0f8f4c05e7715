"""Matrix expansion follows GitHub Actions `strategy.matrix` semantics."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.matrix import expand


def values(combos: Any) -> list[dict[str, Any]]:
    return [dict(c.values) for c in combos]


def test_github_documentation_example() -> None:
    # https://docs.github.com/en/actions/using-jobs/using-a-matrix-for-your-jobs ("Expanding or adding matrix
    # configurations"): the documented result, in the documented order.
    axes = [("fruit", ["apple", "pear"]), ("animal", ["cat", "dog"])]
    include = [
        {"color": "green"},
        {"color": "pink", "animal": "cat"},
        {"fruit": "apple", "shape": "circle"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]
    assert values(expand(axes, (), include)) == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_exclude_then_include() -> None:
    axes = [("os", ["linux", "mac"]), ("py", ["3.11", "3.12"])]
    exclude = [{"os": "mac", "py": "3.11"}]
    include = [{"os": "mac", "py": "3.11", "extra": "x"}]  # excluded first, so it is added back as new
    combos = list(expand(axes, exclude, include))
    assert values(combos) == [
        {"os": "linux", "py": "3.11"},
        {"os": "linux", "py": "3.12"},
        {"os": "mac", "py": "3.12"},
        {"os": "mac", "py": "3.11", "extra": "x"},
    ]
    assert [c.origin for c in combos] == ["matrix", "matrix", "matrix", "added by matrix.include[0]"]


def test_values_compare_as_text() -> None:
    combos = values(expand([("n", [1, 2])], [{"n": "2"}]))
    assert combos == [{"n": 1}]


def test_include_only_matrix() -> None:
    assert values(expand([], (), [{"a": "1"}, {"a": "2", "b": "x"}])) == [{"a": "1"}, {"a": "2", "b": "x"}]


axis_names = st.sampled_from(["a", "b", "c", "d"])
small_values = st.lists(st.sampled_from(["0", "1", "2", "3"]), min_size=1, max_size=3, unique=True)
matrices = st.dictionaries(axis_names, small_values, min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    matrices,
    st.lists(st.dictionaries(axis_names, st.sampled_from(["0", "1", "9"]), min_size=1, max_size=2), max_size=3),
)
def test_exclude_removes_exactly_matching_combinations(
    axes_map: dict[str, list[str]], exclude: list[dict[str, str]]
) -> None:
    axes = list(axes_map.items())
    names = [n for n, _ in axes]
    everything = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes_map.values())]
    relevant = [e for e in exclude if all(k in axes_map for k in e)]
    expected = [c for c in everything if not any(all(c[k] == v for k, v in e.items()) for e in relevant)]
    assert values(expand(axes, exclude)) == expected


@settings(max_examples=200, deadline=None)
@given(
    matrices,
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "x", "y"]), st.sampled_from(["0", "1", "9"]), min_size=1, max_size=3
        ),
        max_size=4,
    ),
)
def test_include_never_overwrites_original_values(
    axes_map: dict[str, list[str]], include: list[dict[str, str]]
) -> None:
    axes = list(axes_map.items())
    originals = [dict(zip(axes_map, combo, strict=True)) for combo in itertools.product(*axes_map.values())]
    result = list(expand(axes, (), include))
    extended = [c for c in result if c.created_by is None]
    created = [c for c in result if c.created_by is not None]
    # Every original combination is still there, in order, with its original values.
    assert len(extended) == len(originals)
    for original, combo in zip(originals, extended, strict=True):
        got = dict(combo.values)
        assert {k: got[k] for k in original} == original
        for i in combo.includes:
            entry = include[i]
            assert all(original.get(k, v) == v for k, v in entry.items() if k in axes_map)
    # An entry creates a new combination exactly when it fits no original combination.
    for i, entry in enumerate(include):
        fits = any(all(o.get(k) == v for k, v in entry.items() if k in axes_map) for o in originals)
        assert (i in {c.created_by for c in created}) == (not fits)
