"""Plain-format (SQL text) dumps, checked and restored without psql.

psql runs the meta-commands of the file it reads: ``\\!`` a shell command, ``\\o |cmd``,
``\\g |cmd`` and ``\\copy ... program`` a pipe, ``\\i`` another file, ``\\connect`` another
database, ``\\setenv``, ``\\lo_import``... A plain dump altered after it was taken could so
run anything on the machine that verifies or restores it. bilantools never gives a plain
dump to psql. This module splits the file the way psql does (quotes, comments, dollar
quotes, parentheses, ``BEGIN ATOMIC`` bodies, COPY data up to ``\\.``), refuses it before
anything runs if it holds a meta-command other than the ``\\restrict KEY`` /
``\\unrestrict KEY`` lines pg_dump 17.6+ writes around its output, and sends statements
and COPY data through psycopg, which passes SQL to the server and nothing else. COPY
data is data: a backslash in it is never read as a command, and when a COPY fails its
data is skipped (psql would read it as commands).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilantools.errors import RefusedError
from bilantools.secrets import redact


@dataclass(frozen=True)
class Statement:
    line: int  # where its first token is
    sql: bytes
    copy_from_stdin: bool


@dataclass(frozen=True)
class CopyData:
    line: int  # of the first row
    rows: bytes  # whole lines of COPY text data, newlines included


@dataclass(frozen=True)
class CopyEnd:
    """The ``\\.`` line (or the end of the file) after COPY data."""

    line: int


Item = Statement | CopyData | CopyEnd


class UnsafeDump(RefusedError):
    """The plain dump holds something pg_dump never writes and psql would act on."""


def check(path: Path, action: str) -> None:
    """Refuse (UnsafeDump) a plain dump with a psql meta-command pg_dump does not write.
    `action` ("verify", "restore") goes into the message."""
    for _ in read(path, action):
        pass


def read(path: Path, action: str = "restore") -> Iterator[Item]:
    """The statements and COPY data of a plain dump, in order, as psql would send them."""
    splitter = _Splitter(path, action)
    number = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            yield from splitter.feed(line, number)
    yield from splitter.finish(number)


def restore(path: Path, conn: Any) -> list[str]:
    """Run a checked plain dump on `conn` (autocommit), one statement at a time, going on
    after a failed statement as ``psql -v ON_ERROR_STOP=0`` does; its errors, one line each
    (``<file>:<line>: ERROR <sqlstate>: <message>``)."""
    import psycopg

    errors: list[str] = []
    items = read(path)
    for item in items:
        if not isinstance(item, Statement):
            continue  # the data of a COPY that failed: skipped, never read as statements
        try:
            if item.copy_from_stdin:
                with conn.cursor() as cursor, cursor.copy(item.sql) as copy:
                    for row in _rows(items):
                        copy.write(row)
            else:
                conn.execute(item.sql, prepare=False)  # simple protocol, as psql sends it
        except psycopg.Error as exc:
            errors.append(_error_line(path, item.line, exc))
            if conn.broken or conn.closed:
                errors.append(f"{path.name}: the connection was lost; the rest was not restored")
                break
    return errors


def _rows(items: Iterator[Item]) -> Iterator[bytes]:
    """The COPY data after a COPY statement, read up to and including its CopyEnd."""
    for item in items:
        if not isinstance(item, CopyData):
            return
        yield item.rows


def _error_line(path: Path, line: int, exc: Any) -> str:
    diag = exc.diag
    text = " ".join((diag.message_primary or str(exc)).split())
    code = f" {diag.sqlstate}" if diag.sqlstate else ""
    return redact(f"{path.name}:{line}: ERROR{code}: {text}")


# -- splitting like psql ----------------------------------------------------------------------
# One token of psql's lexer in its initial state (src/fe_utils/psqlscan.l), at `pos`. The
# alternatives are tried in order; `other` matches anything the others do not.
_TOKEN = re.compile(
    rb"""
    (?P<space>[ \t\n\r\f]+)
  | (?P<comment>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<equote>[eE]')
  | (?P<bquote>[bBxX]')
  | (?P<uquote>[uU]&')
  | (?P<uident>[uU]&")
  | (?P<quote>[nN]?')
  | (?P<dquote>")
  | (?P<dollar>\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$)
  | (?P<param>\$[0-9]+)
  | (?P<ident>[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9$]*)
  | (?P<number>[0-9][0-9A-Za-z_]*)
  | (?P<backslash>\\)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<semi>;)
  | (?P<other>[^ \t\n\r\f\-/'"$A-Za-z\x80-\xff_0-9\\();]+|[-/$])
    """,
    re.VERBOSE,
)
# The end of a quoted string or identifier, by lexer state.
_QUOTE_END = {
    "xq": re.compile(rb"'"),  # standard strings: '' is a quote, tried below
    "xe": re.compile(rb"\\.|'", re.DOTALL),  # backslash escapes anything, the newline included
    "xb": re.compile(rb"'"),
    "xd": re.compile(rb'"'),
}
_COMMENT = re.compile(rb"/\*|\*/")
_RESTRICT = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]+[ \t]*\r?\n?")
_COMMAND = re.compile(rb"\\([^ \t\n\r\f\\]*)")
_STD_STRINGS = re.compile(
    rb"SET\s+(?:SESSION\s+)?standard_conforming_strings\s*(?:=|TO)\s*'?(on|off|true|false)'?\s*;",
    re.IGNORECASE,
)
_COPY_DATA_END = (b"\\.\n", b"\\.\r\n", b"\\.")
_DATA_BLOCK = 1 << 18  # bytes of COPY data per CopyData


@dataclass
class _Splitter:
    """psql's statement splitting, one line at a time (psql lexes lines, not the file)."""

    path: Path
    action: str
    state: str = "initial"  # or a _QUOTE_END key, "xc" (comment), "xdolq" (dollar quote)
    comment_depth: int = 0
    dollar_tag: bytes = b""
    std_strings: bool = True  # pg_dump writes SET standard_conforming_strings = on|off
    copying: bool = False
    data: list[bytes] = field(default_factory=list)  # COPY rows not yielded yet
    data_line: int = 0
    data_size: int = 0
    # the statement being read
    open: bool = False
    start_line: int = 0
    parts: list[bytes] = field(default_factory=list)
    paren_depth: int = 0
    begin_depth: int = 0
    words: list[str] = field(default_factory=list)  # CREATE [OR REPLACE] FUNCTION|PROCEDURE?
    head: list[str] = field(default_factory=list)  # tokens outside parentheses, for COPY

    def feed(self, line: bytes, number: int) -> Iterator[Item]:
        if self.copying:
            if line in _COPY_DATA_END:
                self.copying = False
                yield from self._data()
                yield CopyEnd(number)
                return
            if not self.data:
                self.data_line = number
            self.data.append(line)
            self.data_size += len(line)
            if self.data_size >= _DATA_BLOCK:
                yield from self._data()
            return
        pos, start = 0, 0  # `start`: where this line's part of the open statement begins
        while pos < len(line):
            if self.state != "initial":
                pos = self._quoted(line, pos)
                continue
            match = _TOKEN.match(line, pos)
            assert match is not None  # `other` matches any byte the rest does not
            kind, end = match.lastgroup, match.end()
            if kind == "space" or kind == "comment":
                pos = end
                continue
            if kind == "block":
                self.state, self.comment_depth = "xc", 0
                pos = end
                continue
            if kind == "backslash":
                self._meta_command(line, pos, number)
                return  # an allowed \restrict or \unrestrict line: nothing else on it
            if not self.open:
                self.open, self.start_line, start = True, number, pos
            self._token(kind or "other", match.group())
            pos = end
            if kind == "semi" and self.paren_depth == 0 and self.begin_depth == 0:
                self.parts.append(line[start:end])
                closed = self._close()
                yield closed
                if closed.copy_from_stdin:
                    if line[end:].strip():
                        self._refuse(number, "text after 'COPY ... FROM stdin;' on the same line")
                    self.copying = True
                    return
        if self.open:
            self.parts.append(line[start:])

    def finish(self, number: int) -> Iterator[Item]:
        """The end of the file: psql sends an unterminated last statement too."""
        if self.copying:
            yield from self._data()
            yield CopyEnd(number)
        elif self.open:
            yield self._close()

    def _data(self) -> Iterator[CopyData]:
        """The rows read since the last block, as one block (one item per row is slow)."""
        if self.data:
            yield CopyData(self.data_line, b"".join(self.data))
            self.data, self.data_size = [], 0

    def _quoted(self, line: bytes, pos: int) -> int:
        """Inside a string, quoted identifier, dollar quote or comment: where it goes on."""
        if self.state == "xdolq":
            end = line.find(self.dollar_tag, pos)
            if end < 0:
                return len(line)
            self.state = "initial"
            return end + len(self.dollar_tag)
        if self.state == "xc":
            while (match := _COMMENT.search(line, pos)) is not None:
                pos = match.end()
                if match.group() == b"/*":
                    self.comment_depth += 1
                elif self.comment_depth == 0:
                    self.state = "initial"
                    return pos
                else:
                    self.comment_depth -= 1
            return len(line)
        quote = _QUOTE_END[self.state]
        while (match := quote.search(line, pos)) is not None:
            pos = match.end()
            if match.group().startswith(b"\\"):
                continue
            if self.state != "xb" and line[pos : pos + 1] == match.group():  # '' or ""
                pos += 1
                continue
            self.state = "initial"
            return pos
        return len(line)

    def _token(self, kind: str, text: bytes) -> None:
        """Follow a token of the open statement: quotes, depths, the words that matter."""
        if kind in ("quote", "equote", "bquote", "uquote", "uident", "dquote", "dollar"):
            if kind == "dollar":
                self.state, self.dollar_tag = "xdolq", text
            elif kind in ("uident", "dquote"):
                self.state = "xd"
            elif kind == "bquote":
                self.state = "xb"
            else:
                self.state = "xe" if kind == "equote" or not self.std_strings else "xq"
        if kind == "open":
            self.paren_depth += 1
        elif kind == "close" and self.paren_depth > 0:
            self.paren_depth -= 1
        elif kind == "ident":
            word = text.decode("latin-1").lower()
            if len(self.words) < 4:
                self.words.append(word)
            if self.paren_depth == 0 and self._defines_routine():
                if word == "begin" or (word == "case" and self.begin_depth > 0):
                    self.begin_depth += 1
                elif word == "end" and self.begin_depth > 0:
                    self.begin_depth -= 1
        if self.paren_depth == 0 and kind != "close" and len(self.head) < 64:
            self.head.append(text.decode("latin-1").lower() if kind == "ident" else "")

    def _defines_routine(self) -> bool:
        """psql's test: the statement starts CREATE [OR REPLACE] FUNCTION|PROCEDURE."""
        words = self.words
        routine = ("function", "procedure")
        return (
            bool(words)
            and words[0] == "create"
            and (
                (len(words) > 1 and words[1] in routine)
                or (words[1:3] == ["or", "replace"] and len(words) > 3 and words[3] in routine)
            )
        )

    def _close(self) -> Statement:
        sql = b"".join(self.parts)
        head = self.head
        copy_in = (
            bool(head)
            and head[0] == "copy"
            and any(head[i] == "from" and head[i + 1] == "stdin" for i in range(len(head) - 1))
        )
        setting = _STD_STRINGS.fullmatch(sql.strip())
        if setting:  # how the following string literals treat backslashes
            self.std_strings = setting[1].lower() in (b"on", b"true")
        closed = Statement(self.start_line, sql, copy_in)
        self.open, self.parts, self.head, self.words = False, [], [], []
        self.paren_depth = self.begin_depth = 0
        return closed

    def _meta_command(self, line: bytes, pos: int, number: int) -> None:
        """psql would run a meta-command here: only pg_dump's own restrict lines pass."""
        if pos == 0 and not self.open and _RESTRICT.fullmatch(line):
            return
        match = _COMMAND.match(line, pos)
        name = match.group(1) if match else b""
        shown = "".join(c if c.isprintable() else "?" for c in name[:20].decode("utf-8", "replace"))
        self._refuse(number, f"psql meta-command \\{shown}")

    def _refuse(self, number: int, what: str) -> None:
        raise UnsafeDump(
            f"{self.path}:{number}: {what} in a plain dump: pg_dump never writes it and psql "
            f"would run it; refusing to {self.action} {self.path.name}, nothing was run: use "
            "a backup that was not altered, or take a new one"
        )
