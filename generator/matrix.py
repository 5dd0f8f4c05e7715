"""Matrix expansion with GitHub Actions ``strategy.matrix`` semantics.

1. The combinations are the Cartesian product of the axes, in the order the axes are written.
2. ``exclude`` removes every combination that matches *all* the key/value pairs of an entry.
3. ``include`` is applied to what is left, entry by entry: an entry's pairs are added to every *original*
   combination whose original axis values it does not contradict (pairs it adds may be overwritten by later
   entries); an entry that fits no original combination becomes a new combination of its own. Combinations
   created by an entry are not extended by later entries.

Example (from GitHub's documentation): axes ``fruit = [apple, pear]``, ``animal = [cat, dog]`` with includes
``{color: green}``, ``{color: pink, animal: cat}``, ``{fruit: apple, shape: circle}``, ``{fruit: banana}``,
``{fruit: banana, animal: cat}`` give: apple/cat/pink/circle, apple/dog/green/circle, pear/cat/pink,
pear/dog/green, banana, banana/cat.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Value = Any  # an axis value: compared through its `key` (its id as text)


def value_key(value: Value) -> str:
    """How values are compared: by id, as text (so `1` in TOML matches `"1"` in a filter)."""
    raw = value.id if hasattr(value, "id") else value
    if isinstance(raw, bool):
        return str(raw).lower()
    return str(raw)


@dataclass(frozen=True, slots=True)
class Combination:
    """One combination: its values by axis (in order) and how it came to be, for `campaign explain`."""

    values: tuple[tuple[str, Value], ...]
    includes: tuple[int, ...] = ()  # indices of include entries that extended it
    created_by: int | None = None  # index of the include entry that created it

    def get(self, name: str) -> Value | None:
        for key, value in self.values:
            if key == name:
                return value
        return None

    @property
    def origin(self) -> str:
        if self.created_by is not None:
            return f"added by matrix.include[{self.created_by}]"
        if self.includes:
            return "matrix, extended by " + ", ".join(f"matrix.include[{i}]" for i in self.includes)
        return "matrix"


def count(axes: Sequence[tuple[str, Sequence[Value]]], include: Sequence[Mapping[str, Value]] = ()) -> int:
    """An upper bound on the number of combinations, computed without expanding them."""
    base = math.prod(len(values) for _, values in axes) if axes else 0
    return base + len(include)


def expand(
    axes: Sequence[tuple[str, Sequence[Value]]],
    exclude: Sequence[Mapping[str, Value]] = (),
    include: Sequence[Mapping[str, Value]] = (),
) -> Iterator[Combination]:
    """Yield the combinations of a matrix, originals first (in product order), then those includes created.

    ``exclude`` and ``include`` entries compare values with :func:`value_key`. Include values are yielded as
    given (the caller resolves names like ``"noir"`` to the axis's table value beforehand).
    """
    names = [name for name, _ in axes]
    original = set(names)
    position = {name: i for i, name in enumerate(names)}
    # Pairs on axes the matrix does not have can never match: such an exclude entry removes nothing.
    excludes = [
        [(position[k], value_key(v)) for k, v in entry.items()]
        for entry in exclude
        if all(k in original for k in entry)
    ]
    includes = [list(entry.items()) for entry in include]
    include_keys = [[(position[k], value_key(v)) for k, v in entry.items() if k in original] for entry in include]
    used = [False] * len(includes)
    if axes:
        for values in itertools.product(*(vals for _, vals in axes)):
            keys = [value_key(v) for v in values]
            if any(all(keys[i] == v for i, v in entry) for entry in excludes):
                continue
            combo: dict[str, Value] = dict(zip(names, values, strict=True))
            applied: list[int] = []
            for i, entry in enumerate(includes):
                if all(keys[j] == v for j, v in include_keys[i]):
                    combo.update(entry)
                    applied.append(i)
                    used[i] = True
            yield Combination(tuple(combo.items()), tuple(applied))
    for i, entry in enumerate(includes):
        if not used[i]:
            yield Combination(tuple(entry), created_by=i)
