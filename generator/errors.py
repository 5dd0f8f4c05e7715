"""Errors the user can act on, and the exit codes they map to.

Every expected failure is a :class:`CampaignError`: the CLI prints its message (one line per problem) and exits
with its ``exit_code``. Anything else is a bug and exits with :data:`EXIT_INTERNAL` after printing a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import click

#: Everything asked for was produced (or the file is valid, the lockfile fresh).
EXIT_OK = 0
#: The run finished but some requests failed, were filtered or blocked; or ``check`` found stale outputs.
EXIT_INCOMPLETE = 1
#: Invalid input or usage: the campaign files, a command-line option, a limit that refuses the run; or a store or
#: output folder that cannot be written (disk full, not writable, in use by another run).
EXIT_INVALID = 2
#: An unexpected error: a bug in this tool. A traceback is printed.
EXIT_INTERNAL = 3
#: The run was interrupted (Ctrl-C); everything finished before it is saved.
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can.

    Attributes:
        file: the path shown to the user (relative to the working directory when possible).
        line: 1-based line of the key in ``file``; ``None`` when the problem is not tied to a line.
        key: the key path, e.g. ``products[2].images[0]``; empty for problems about the whole file.
        message: what is wrong and, where possible, what would be right.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        line = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return visible(line)


#: Characters that must not reach a terminal or an API as they are: C0 and C1 controls (an escape sequence can
#: rewrite a terminal) and the bidirectional overrides and isolates that make text read differently than it is
#: (CVE-2021-42574, "Trojan Source").
INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with :data:`INVISIBLE` characters written as escapes (``\\u001b``), for one-line messages."""
    return INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


class CampaignError(click.ClickException):
    """Base of every error a user can fix; printed as one clean message without a traceback."""

    exit_code = EXIT_INVALID

    def show(self, file: object = None) -> None:  # pragma: no cover - exercised through the CLI
        click.echo(self.format_message(), err=True)


class InvalidCampaign(CampaignError):
    """The campaign files have one or more problems; all of them are listed, one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(set(problems), key=_problem_order))
        super().__init__("\n".join(str(p) for p in self.problems))


def _problem_order(p: Problem) -> tuple[str, int, str, str]:
    return (p.file, p.line or 0, p.key, p.message)


class PlanError(CampaignError):
    """The campaign is valid but cannot be planned: a variant the model cannot serve, a limit exceeded."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(sorted(set(problems), key=_problem_order))
            super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(CampaignError):
    """A command-line option or argument is wrong."""


class BackendUnavailable(CampaignError):
    """The chosen backend cannot run here (missing credentials, unreachable endpoint)."""


class StoreError(CampaignError):
    """The content store or the output folder cannot be written (disk full, read-only, locked)."""
