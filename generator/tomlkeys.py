"""Where each key of a TOML document sits, so that validation errors can name a line.

``tomllib`` parses values but forgets positions. :func:`locate_keys` makes a second, lighter pass over text that
``tomllib`` has already accepted and records the 1-based line of every key path, including array elements and
keys inside inline tables, e.g. ``("products", 2, "images", 0) -> 31``. Because the text is known to be valid
TOML, the scanner only has to tell keys, strings, arrays and inline tables apart; it never reports errors.
"""

from __future__ import annotations

from collections.abc import Mapping

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class KeyLines(Mapping[KeyPath, int]):
    """A read-only map from key path to line, with :meth:`line_of` falling back to the nearest ancestor."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self._lines = lines

    def __getitem__(self, key: KeyPath) -> int:
        return self._lines[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest recorded ancestor (a missing key's table), else None."""
        path = tuple(path)
        while path:
            line = self._lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None


def locate_keys(text: str) -> KeyLines:
    """Map every key path of a valid TOML document to the 1-based line where it is written."""
    scanner = _Scanner(text)
    scanner.document()
    return KeyLines(scanner.lines)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        # Arrays of tables, by their concrete path (with indices of enclosing arrays): how many entries so far.
        self.aot_count: dict[KeyPath, int] = {}

    # -- low-level movement -------------------------------------------------------------------------------------

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        end = min(self.i + n, len(self.s))
        self.line += self.s.count("\n", self.i, end)
        self.i = end

    def skip_ws(self, newlines: bool) -> None:
        """Skip blanks and comments; with ``newlines`` also line breaks (inside arrays)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    # -- grammar ------------------------------------------------------------------------------------------------

    def document(self) -> None:
        prefix: KeyPath = ()
        while True:
            self.skip_ws(newlines=True)
            if self.i >= len(self.s):
                return
            if self.peek() == "[":
                prefix = self.header()
            else:
                self.keyval(prefix)

    def header(self) -> KeyPath:
        line = self.line
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        self.skip_ws(newlines=False)
        parts = self.key()
        self.skip_ws(newlines=False)
        self.advance(2 if is_array else 1)
        path = (*self.resolve(parts[:-1]), parts[-1])
        if is_array:
            index = self.aot_count.get(path, 0)
            self.aot_count[path] = index + 1
            self.lines.setdefault(path, line)
            path = (*path, index)
        self.lines.setdefault(path, line)
        return path

    def resolve(self, parts: KeyPath) -> KeyPath:
        """Turn header parts into a concrete path, entering the last entry of any array of tables on the way."""
        path: KeyPath = ()
        for part in parts:
            path = (*path, part)
            count = self.aot_count.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def key(self) -> KeyPath:
        parts: list[str | int] = []
        while True:
            self.skip_ws(newlines=False)
            c = self.peek()
            if c == '"':
                parts.append(self.basic_string())
            elif c == "'":
                parts.append(self.literal_string())
            else:
                start = self.i
                while self.peek() in _BARE_KEY_CHARS and self.peek():
                    self.advance()
                parts.append(self.s[start : self.i])
            self.skip_ws(newlines=False)
            if self.peek() == ".":
                self.advance()
                continue
            return tuple(parts)

    def keyval(self, prefix: KeyPath) -> None:
        line = self.line
        parts = self.key()
        path = prefix + parts
        for depth in range(len(prefix) + 1, len(path) + 1):
            self.lines.setdefault(path[:depth], line)
        self.skip_ws(newlines=False)
        self.advance()  # '='
        self.skip_ws(newlines=False)
        self.value(path)

    def value(self, path: KeyPath) -> None:
        c = self.peek()
        if c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.advance()

    def array(self, path: KeyPath) -> None:
        self.advance()  # '['
        index = 0
        while True:
            self.skip_ws(newlines=True)
            c = self.peek()
            if c == "]" or not c:
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            self.lines.setdefault((*path, index), self.line)
            self.value((*path, index))
            index += 1

    def inline_table(self, path: KeyPath) -> None:
        self.advance()  # '{'
        while True:
            # TOML 1.1 allows newlines in inline tables; tolerate them.
            self.skip_ws(newlines=True)
            c = self.peek()
            if c == "}" or not c:
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            self.keyval(path)

    def basic_string(self) -> str:
        if self.s.startswith('"""', self.i):
            return self._multiline('"""', escapes=True)
        self.advance()
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\":
                out.append(self.s[self.i : self.i + 2])
                self.advance(2)
            elif c == '"':
                self.advance()
                break
            else:
                out.append(c)
                self.advance()
        return _unescape("".join(out))

    def literal_string(self) -> str:
        if self.s.startswith("'''", self.i):
            return self._multiline("'''", escapes=False)
        self.advance()
        end = self.s.index("'", self.i)
        text = self.s[self.i : end]
        self.advance(end - self.i + 1)
        return text

    def _multiline(self, quote: str, escapes: bool) -> str:
        self.advance(3)
        start = self.i
        while True:
            if escapes and self.peek() == "\\":
                self.advance(2)
                continue
            if self.s.startswith(quote, self.i):
                # Up to two quotes may close the content right before the delimiter (e.g. """a"""").
                while self.s.startswith(quote[0], self.i + 3):
                    self.advance()
                text = self.s[start : self.i]
                self.advance(3)
                return text
            if self.i >= len(self.s):
                return self.s[start:]
            self.advance()


def _unescape(raw: str) -> str:
    """Decode the escapes a quoted key may hold (keys are compared with what tomllib produced)."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    simple = {
        "b": "\b",
        "t": "\t",
        "n": "\n",
        "f": "\f",
        "r": "\r",
        '"': '"',
        "\\": "\\",
        "e": "\x1b",
    }
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            width = {"u": 4, "U": 8, "x": 2}.get(nxt)
            if width:
                out.append(chr(int(raw[i + 2 : i + 2 + width], 16)))
                i += 2 + width
                continue
        out.append(c)
        i += 1
    return "".join(out)
