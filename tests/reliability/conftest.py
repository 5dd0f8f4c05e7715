"""Fixtures of the reliability suite: an emulator whose every request stays in its log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from generator.emulator import Emulator

#: The emulator blocks prompts with this word (Imagen's "prompt could not be submitted").
BLOCK_WORD = "forbidden"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A local Vertex AI endpoint without faults, keeping every request body so tests can count them by prompt."""
    config = {"history": 10_000, "block_words": [BLOCK_WORD], "rpm": {"*": 100_000}, "hang_seconds": 5}
    with Emulator(port=0, config=config) as emu:
        yield emu
