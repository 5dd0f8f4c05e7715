"""A local Vertex AI endpoint speaking Imagen's ``:predict`` and Gemini's ``:generateContent``, for tests and CI.

It validates requests as Vertex AI does, answers with stand-in images of the right size, enforces
requests-per-minute quotas and injects faults on demand. Point the tool at it with
``CAMPAIGN_VERTEX_ENDPOINT=http://127.0.0.1:8765``; no Google credentials are needed.
"""

from generator.emulator.config import FAULTS, ConfigError, EmulatorConfig, parse_config
from generator.emulator.server import Emulator

__all__ = ["FAULTS", "ConfigError", "Emulator", "EmulatorConfig", "parse_config"]
