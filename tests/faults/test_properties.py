"""Property-based tests (hypothesis) of what bilantools reads and what it shows.

* file names: any valid ``NNN_slug.sql`` in a generated directory is found with its
  version and slug, anything else named ``*.sql`` is a `file-name` finding (never an
  exception), versions compare as numbers whatever their zero padding;
* headers: generated ``-- depends:``, ``-- transaction:``, ``-- lock-timeout:`` and
  ``-- statement-timeout:`` blocks round-trip in any case and spacing, directives after
  the first SQL line are ignored, a bad value is a HeaderError naming its line and
  nothing else is ever raised; every duration the parser accepts is one PostgreSQL
  accepts with the same meaning (checked on the real server), and the ones it refuses
  for being too long the server refuses too;
* checksums: LF, CRLF, CR and a byte order mark give one checksum, any other edit
  changes it, `normalise` is idempotent;
* masking: for generated passwords (any printable unicode; percent-encoded in URLs,
  quoted and escaped in conninfo strings, or raw where libpq allows it) the masked URL,
  `str(Target)`, `repr(Target)` and every InputError message never contain the password
  and keep the user, host, port and database name readable; text without secrets is
  left exactly as it was.

Each test counts its examples in `figures` ("properties: <what>").
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from bilantools import secrets
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import parse_target
from bilantools.errors import InputError
from bilantools.source.files import checksum, normalise
from bilantools.source.headers import (
    DURATION_HINT,
    MAX_DURATION_MS,
    HeaderError,
    Headers,
    Limits,
    parse_duration,
    parse_headers,
)
from bilantools.source.layouts.native import FILE_NAME, discover
from tests.faults.conftest import FULL, Figures, scale

# make test draws the same examples on every run (CI must be green on every run: a new
# counter-example found by chance would be a flake there); make faults draws fresh ones,
# and hypothesis prints the failing example and how to replay it.
EXAMPLES = settings(
    max_examples=scale(100, 2000),
    derandomize=not FULL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies ------------------------------------------------------------------------------
SLUG = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,24}", fullmatch=True).filter(
    lambda s: not s.endswith("_rollback")
)
NUMBER = st.integers(min_value=0, max_value=10**12)


@st.composite
def versions(draw: st.DrawFn, number: int | None = None) -> str:
    """A version as written in a file name: the number with any zero padding."""
    n = draw(NUMBER) if number is None else number
    return str(n).zfill(draw(st.integers(min_value=1, max_value=16)))


# Names that are anything but a migration, a rollback or a hidden file's name, ending in
# .sql in any case: file systems take any byte but "/" and NUL, at most 255 bytes.
FS_CHAR = st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00")
JUNK = (
    st.tuples(st.text(FS_CHAR, min_size=1, max_size=30), st.sampled_from([".sql", ".SQL", ".Sql"]))
    .map("".join)
    .filter(lambda n: not n.startswith(".") and len(n.encode()) <= 255 and not FILE_NAME.match(n))
)

PRINTABLE = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
UNITS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flags: "".join(c.upper() if f else c.lower() for c, f in zip(word, flags, strict=True))
    )


SPACE = st.text(st.sampled_from(" \t"), max_size=3)


@st.composite
def durations(draw: st.DrawFn, max_ms: int = MAX_DURATION_MS) -> tuple[str, int, str]:
    """(a duration as a person might write it, its milliseconds, PostgreSQL's spelling)."""
    unit = draw(st.sampled_from([*UNITS, ""]))
    amount = draw(st.integers(min_value=0, max_value=max_ms // UNITS[unit or "ms"]))
    written = str(amount).zfill(draw(st.integers(1, 4))) + draw(SPACE) + draw(any_case(unit))
    return written, amount * UNITS[unit or "ms"], f"{amount}{unit or 'ms'}"


def canonical(ms: int, written: str) -> str:
    """parse_duration's answer: the amount and unit as written, lower case; '0' for zero."""
    match = re.fullmatch(r"0*([0-9]+)\s*([a-zA-Z]*)", written)
    assert match
    return "0" if ms == 0 else f"{int(match[1])}{(match[2] or 'ms').lower()}"


@contextmanager
def fresh_registry() -> Iterator[None]:
    """Mask with only the passwords of this example (restoring the process's afterwards)."""
    saved, written = set(secrets._known), dict(secrets._written)
    secrets._known.clear()
    secrets._written.clear()
    try:
        yield
    finally:
        secrets._known.clear()
        secrets._known.update(saved)
        secrets._written.clear()
        secrets._written.update(written)


@EXAMPLES
@given(number=NUMBER, data=st.data(), slug=SLUG, rollback=st.booleans())
def test_file_name_matches_every_valid_name(
    number: int, data: st.DataObject, slug: str, rollback: bool, figures: Figures
) -> None:
    version = data.draw(versions(number))
    name = f"{version}_{slug}{'_rollback' if rollback else ''}.sql"
    match = FILE_NAME.match(name)
    assert match is not None
    assert (match["version"], match["slug"], bool(match["rollback"])) == (version, slug, rollback)
    assert int(match["version"]) == number
    figures.add("properties: file names")


@EXAMPLES
@given(name=st.text(FS_CHAR, max_size=40))
def test_file_name_rejects_everything_else(name: str, figures: Figures) -> None:
    """A name matches only when it is NNN_slug.sql with ASCII digits and letters."""
    valid = re.fullmatch(r"[0-9]+_[A-Za-z0-9][A-Za-z0-9_-]*\.sql", name) is not None
    assert (FILE_NAME.match(name) is not None) == valid
    assert FILE_NAME.match(name + "\n") is None
    figures.add("properties: file names")


@EXAMPLES
@given(
    entries=st.dictionaries(
        NUMBER, st.tuples(SLUG, st.booleans(), st.sampled_from(["\n", "\r\n", "\r"])), max_size=6
    ),
    junk=st.sets(JUNK, max_size=4),
    data=st.data(),
)
def test_discover_generated_directories(
    entries: dict[int, tuple[str, bool, str]], junk: set[str], data: st.DataObject, figures: Figures
) -> None:
    """Every valid migration found with its version, slug and checksum, in numeric order;
    every other *.sql name a file-name finding; no exception."""
    assume(entries or junk)
    written: dict[int, tuple[str, str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for number, (slug, with_rollback, newline) in entries.items():
            version = data.draw(versions(number))
            text = f"-- migration {number}\nSELECT {number};\n"
            (directory / f"{version}_{slug}.sql").write_bytes(text.replace("\n", newline).encode())
            if with_rollback:
                (directory / f"{version}_{slug}_rollback.sql").write_text("SELECT 0;\n")
            written[number] = (version, slug, checksum(text))
        for name in junk:
            (directory / name).write_text("SELECT 1;\n")
        found = discover(directory)
        assert [(m.version, m.name, m.checksum) for m in found] == [written[n] for n in sorted(written)]
        assert [m.order for m in found] == [(n,) for n in sorted(written)]
        assert [m.key for m in found] == [str(n) for n in sorted(written)]
        names = sorted(Path(f.file).name for f in found.findings if f.rule == "file-name")
        assert names == sorted(junk)
        assert all(
            f.severity == "error" and NAME_FIX in f.hint for f in found.findings if f.rule == "file-name"
        )
        others = {f.rule for f in found.findings} - {"file-name", "missing-rollback"}
        assert not others, found.findings
        for number, (version, slug, _) in written.items():
            for spelling in (str(number), version, str(number).zfill(20)):
                hit = found.find(spelling)
                assert hit is not None and (hit.version, hit.name) == (version, slug)
    figures.add("properties: file names")


NAME_FIX = "name migrations NNN_slug.sql and their rollbacks NNN_slug_rollback.sql"


@EXAMPLES
@given(
    number=NUMBER,
    pads=st.lists(st.integers(1, 15), min_size=2, max_size=2, unique=True),
    slugs=st.lists(SLUG, min_size=2, max_size=2, unique=True),
)
def test_versions_compare_as_numbers(
    number: int, pads: list[int], slugs: list[str], figures: Figures
) -> None:
    """'1' and '001' are one version: two files with the same number clash."""
    first, second = (str(number).zfill(p) for p in pads)
    assume(first != second)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / f"{first}_{slugs[0]}.sql").write_text("SELECT 1;\n")
        (directory / f"{second}_{slugs[1]}.sql").write_text("SELECT 2;\n")
        found = discover(directory)
    clashes = [f for f in found.findings if f.rule == "duplicate-version"]
    assert len(clashes) == 1 and "two migrations share version" in clashes[0].message
    figures.add("properties: file names")


@EXAMPLES
@given(text=st.text(max_size=12))
def test_find_never_raises(text: str, figures: Figures) -> None:
    """Any --to value: a migration or None (then `resolve` raises InputError), nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "001_a.sql").write_text("SELECT 1;\n")
        found = discover(tmp)
    hit = found.find(text)
    is_one = text.isascii() and text.isdigit() and int(text) == 1
    assert (hit is not None) == is_one
    if not is_one:
        with pytest.raises(InputError, match="no migration has version"):
            found.resolve(text)
    figures.add("properties: file names")


# -- headers -------------------------------------------------------------------------------------
DOC_LINE = (
    st.text(PRINTABLE, max_size=30)
    .map(lambda t: "-- " + t)
    .filter(
        lambda line: (
            not re.match(r"--\s*(depends|transaction|lock-timeout|statement-timeout)\s*:", line, re.I)
        )
    )
)
VERSION_TEXT = st.from_regex(r"[0-9]{1,6}", fullmatch=True)
SEPARATOR = st.sampled_from([",", ", ", " ", "  ,  ", "\t", " ,"])


@st.composite
def directive(draw: st.DrawFn, key: str, value: str) -> str:
    return f"{draw(SPACE)}--{draw(SPACE)}{draw(any_case(key))}{draw(SPACE)}:{draw(SPACE)}{value}{draw(SPACE)}"


@st.composite
def header_blocks(draw: st.DrawFn) -> tuple[list[str], Headers]:
    """Header lines in any order, case and spacing, interleaved with documentation and blank
    lines, and the Headers they mean."""
    lines: list[tuple[str, tuple[str, ...]]] = []  # (line, the versions it lists)
    for _ in range(draw(st.integers(0, 3))):
        group = draw(st.lists(VERSION_TEXT, max_size=4))
        lines.append((draw(directive("depends", draw(SEPARATOR).join(group))), tuple(group)))
    transactional = True
    if draw(st.booleans()):
        transactional = draw(st.booleans())
        lines.append((draw(directive("transaction", draw(any_case("on" if transactional else "off")))), ()))
    limits: dict[str, str] = {}
    for key in ("lock-timeout", "statement-timeout"):
        if draw(st.booleans()):
            written, ms, _ = draw(durations())
            lines.append((draw(directive(key, written)), ()))
            limits[key] = canonical(ms, written)
    lines = draw(st.permutations(lines))
    depends = tuple(version for _, group in lines for version in group)  # in the order of the lines
    text = [line for line, _ in lines]
    for _ in range(draw(st.integers(0, 4))):
        text.insert(draw(st.integers(0, len(text))), draw(st.one_of(DOC_LINE, SPACE)))
    expected = Headers(
        depends, transactional, Limits(limits.get("lock-timeout"), limits.get("statement-timeout"))
    )
    return text, expected


@EXAMPLES
@given(block=header_blocks(), newline=st.sampled_from(["\n", "\r\n"]))
def test_headers_round_trip(block: tuple[list[str], Headers], newline: str, figures: Figures) -> None:
    lines, expected = block
    text = newline.join([*lines, "SELECT 1;", ""])
    assert parse_headers(text) == expected
    figures.add("properties: headers")


@EXAMPLES
@given(
    block=header_blocks(),
    after=st.lists(
        st.one_of(
            DOC_LINE,
            st.text(PRINTABLE, max_size=30).map(lambda v: "-- " + v),
            st.sampled_from(
                [
                    "-- depends: first",
                    "-- transaction: maybe",
                    "-- lock-timeout: soon",
                    "-- statement-timeout: 1.5s",
                    "-- depends: 999",
                    "-- transaction: off",
                ]
            ),
        ),
        max_size=5,
    ),
)
def test_directives_after_the_first_sql_line_are_ignored(
    block: tuple[list[str], Headers], after: list[str], figures: Figures
) -> None:
    lines, expected = block
    assert parse_headers("\n".join([*lines, "CREATE TABLE t (id int);", *after, "SELECT 1;"])) == expected
    figures.add("properties: headers")


BAD_VALUES = {
    "depends": st.text(PRINTABLE, min_size=1, max_size=12).filter(
        lambda v: any(item and not re.fullmatch(r"[0-9]+", item) for item in re.split(r"[\s,]+", v))
    ),
    "transaction": st.text(PRINTABLE, min_size=0, max_size=8).filter(
        lambda v: v.strip().lower() not in ("on", "off")
    ),
    "lock-timeout": st.text(PRINTABLE, max_size=10).filter(lambda v: parse_duration(v) is None),
    "statement-timeout": st.text(PRINTABLE, max_size=10).filter(lambda v: parse_duration(v) is None),
}


@EXAMPLES
@given(
    key=st.sampled_from(sorted(BAD_VALUES)),
    data=st.data(),
    before=st.lists(st.one_of(DOC_LINE, st.just("")), max_size=5),
)
def test_bad_values_name_their_line(
    key: str, data: st.DataObject, before: list[str], figures: Figures
) -> None:
    value = data.draw(BAD_VALUES[key])
    line = data.draw(directive(key, value))
    with pytest.raises(HeaderError) as caught:
        parse_headers("\n".join([*before, line, "SELECT 1;"]))
    assert caught.value.line == len(before) + 1
    message = str(caught.value)
    assert message.startswith(("'-- depends:' names", f"'-- {key}: ")) and "; " in message
    if key.endswith("timeout"):
        assert message.endswith(DURATION_HINT)
    figures.add("properties: headers")


@EXAMPLES
@given(text=st.text(max_size=200))
def test_parse_headers_raises_only_header_errors(text: str, figures: Figures) -> None:
    try:
        parse_headers(text)
    except HeaderError as exc:
        assert exc.line >= 1 and str(exc)
    figures.add("properties: headers")


@EXAMPLES
@given(duration=durations(max_ms=MAX_DURATION_MS * 40))
def test_parse_duration(duration: tuple[str, int, str], figures: Figures) -> None:
    written, ms, _ = duration
    parsed = parse_duration(written)
    if ms > MAX_DURATION_MS:
        assert parsed is None
    else:
        assert parsed == canonical(ms, written)
        assert parse_duration(parsed) == parsed  # the normal form is a fixed point
    figures.add("properties: durations")


@EXAMPLES
@given(text=st.text(max_size=12))
def test_parse_duration_never_raises(text: str, figures: Figures) -> None:
    parsed = parse_duration(text)
    assert parsed is None or re.fullmatch(r"0|[1-9][0-9]*(ms|s|min|h|d)", parsed)
    figures.add("properties: durations")


@pytest.fixture(scope="module")
def pg(server: Sandbox) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        yield conn


@settings(max_examples=scale(60, 600), deadline=None, derandomize=not FULL)
@given(duration=durations(max_ms=MAX_DURATION_MS * 3))
def test_durations_mean_the_same_to_postgresql(
    duration: tuple[str, int, str], pg: psycopg.Connection, figures: Figures
) -> None:
    """What the parser accepts, PostgreSQL accepts with the same number of milliseconds;
    what it refuses as too long, PostgreSQL refuses too. Checked on lock_timeout:
    statement_timeout has the same unit and range, and a 1 ms statement_timeout would
    cancel the very query that reads it back."""
    written, ms, spelling = duration
    parsed = parse_duration(written)
    for setting in ("lock_timeout",):
        if parsed is None:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                pg.execute("SELECT set_config(%s, %s, false)", (setting, spelling))
        else:
            pg.execute("SELECT set_config(%s, %s, false)", (setting, parsed))
            row = pg.execute("SELECT setting::bigint FROM pg_settings WHERE name = %s", (setting,)).fetchone()
            assert row == (ms,)
    pg.execute("RESET lock_timeout")
    figures.add("properties: durations (server)")


# -- checksums -----------------------------------------------------------------------------------
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)


@EXAMPLES
@given(text=TEXT, newline=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans())
def test_line_endings_and_bom_do_not_change_the_checksum(
    text: str, newline: str, bom: bool, figures: Figures
) -> None:
    base = normalise(text.encode())
    variant = base.replace("\n", newline).encode()
    if bom:
        variant = b"\xef\xbb\xbf" + variant
    assert normalise(variant) == base
    assert checksum(normalise(variant)) == checksum(base)
    figures.add("properties: checksums")


@EXAMPLES
@given(
    raw=st.one_of(TEXT.map(str.encode), st.binary(max_size=100)),
    boms=st.integers(0, 3),
    newlines=st.text(st.sampled_from("\r\n"), max_size=4),
)
def test_normalise_is_idempotent(raw: bytes, boms: int, newlines: str, figures: Figures) -> None:
    raw = b"\xef\xbb\xbf" * boms + newlines.encode() + raw
    try:
        once = normalise(raw)
    except UnicodeDecodeError:
        figures.add("properties: checksums")
        return
    assert normalise(once.encode()) == once
    assert "\r" not in once and not once.startswith("\ufeff")
    figures.add("properties: checksums")


@EXAMPLES
@given(text=TEXT, data=st.data())
def test_any_other_edit_changes_the_checksum(text: str, data: st.DataObject, figures: Figures) -> None:
    base = normalise(text.encode())
    other = st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\ufeff")
    kind = data.draw(st.sampled_from(["insert", "delete", "replace"] if base else ["insert"]))
    if kind == "insert":
        at = data.draw(st.integers(0, len(base)))
        edited = base[:at] + data.draw(other) + base[at:]
    else:
        at = data.draw(st.integers(0, len(base) - 1))
        if kind == "delete":
            edited = base[:at] + base[at + 1 :]
        else:
            edited = base[:at] + data.draw(other.filter(lambda c: c != base[at])) + base[at + 1 :]
    assert checksum(normalise(edited.encode())) != checksum(base)
    figures.add("properties: checksums")


# -- masking -------------------------------------------------------------------------------------
PASSWORD = st.text(PRINTABLE, min_size=1, max_size=24)
USER = st.from_regex(r"[a-z][a-z0-9_]{2,11}", fullmatch=True)
DBNAME = st.from_regex(r"[a-z][a-z0-9_]{2,15}", fullmatch=True)
HOST = st.sampled_from(["db.example.org", "127.0.0.1", "localhost", "pg-primary.internal", "[::1]"])
PORT = st.integers(min_value=1, max_value=65535)


def spellings(password: str) -> set[str]:
    """The forms a password can take in text: as is, with its runs of spaces collapsed (as
    one-line messages do), percent-encoded (either case)."""
    encoded = quote(password, safe="")
    lowered = re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)  # the escapes, not the letters
    return {f for f in (password, " ".join(password.split()), encoded, lowered) if f.strip()}


def shows(text: str, form: str) -> bool:
    """Whether `form` is visible in `text`; like `redact`, a form shorter than 4 characters
    counts only where it stands as a whole word (so that a password "a" does not forbid
    every "a" of every message)."""
    if len(form) >= 4:
        return form in text
    return re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text) is not None


# The fixed words of the messages these tests provoke (bilantools' and libpq's): a password
# shorter than 4 characters that is one of them ("-", "in", "URL") is masked there too, so
# a message cannot show it readably and hide it at once; such passwords are skipped.
FIXED_TEXT = (
    "error: malformed database URL from --db DATABASE_URL: unknown scheme; expected "
    "postgresql://user:***@host:5432/dbname (1 to 65535) port 'notaport' is not a number, a TCP "
    'port; invalid URI query parameter: "colour" unterminated quoted string in connection info '
    'string unexpected spaces found in "", use percent-encoded spaces (%20) instead; invalid '
    'percent-encoded token: missing "=" after in connection info string; invalid connection '
    "option; mysql:// Target(source='--db', 'DATABASE_URL', is_sandbox=False) could not connect "
    "to the user name or password holds an unencoded '@', so the rest was read as the host; the "
    "password holds an unencoded '/', so the rest was read as the database name (a database name "
    "holding '@' must write it %40); write the password percent-encoded (@ as %40, / as %2F, % as "
    "%25, & as %26, a space as %20), or leave it out of the URL and give it in PGPASSWORD or "
    '~/.pgpass invalid integer value for connection option "port" missing key/value separator '
    '"=" in URI query parameter: "" invalid URI query parameter: "" missing "=" after "" in '
    "connection info string notaport"
)


def plausible(password: str) -> bool:
    return not any(len(form) < 4 and shows(FIXED_TEXT, form) for form in spellings(password))


def assert_hidden(text: str, password: str, readable: list[str]) -> None:
    for form in spellings(password):
        assert not shows(text, form), (form, text)
    for part in readable:
        assert part in text, (part, text)


@EXAMPLES
@example(  # a password that is part of a word of the message ("DATABASE_URL", "database")
    user="a00", password="DATA", host="db.example.org", port=1, dbname="a00", lower=False, in_query=False
)
@given(
    user=USER,
    password=PASSWORD,
    host=HOST,
    port=PORT,
    dbname=DBNAME,
    lower=st.booleans(),
    in_query=st.booleans(),
)
def test_url_masking(
    user: str, password: str, host: str, port: int, dbname: str, lower: bool, in_query: bool, figures: Figures
) -> None:
    encoded = quote(password, safe="")
    if lower:
        encoded = re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)
    base = f"postgresql://{user}@{host}:{port}/{dbname}"
    if in_query:
        url, masked = f"{base}?password={encoded}", f"{base}?password=***"
    else:
        url = f"postgresql://{user}:{encoded}@{host}:{port}/{dbname}"
        masked = f"postgresql://{user}:***@{host}:{port}/{dbname}"
    public = [user, host, str(port), dbname]
    assume(plausible(password) and not any(form in masked for form in spellings(password)))
    with fresh_registry():
        target = parse_target(url, "--db")
        assert target.params.get("password") == password
        assert target.masked == masked == str(target)
        assert repr(target) == f"Target({masked!r}, source='--db', is_sandbox=False)"
        assert_hidden(secrets.redact(f"connecting to {url} failed: {password}"), password, public)
        assert_hidden(secrets.redact(f"the server said: {password}, then {encoded}"), password, [])
        for broken in (
            url.replace(f":{port}/", ":notaport/"),
            url.replace("postgresql://", "mysql://"),
            url + ("&" if in_query else "?") + "colour=blue",
        ):
            with pytest.raises(InputError) as caught:
                parse_target(broken, "DATABASE_URL")
            assert_hidden(str(caught.value), password, [user, host, dbname])
    figures.add("properties: URL masking")


def conninfo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_escape(value: str) -> str:
    """An unquoted conninfo value: blanks, quotes and backslashes escaped with a backslash."""
    return re.sub(r"([\s'\\])", r"\\\1", value)


@EXAMPLES
@given(
    user=USER,
    password=PASSWORD,
    host=HOST.filter(lambda h: not h.startswith("[")),
    port=PORT,
    dbname=DBNAME,
    position=st.integers(0, 4),
    spaced=st.booleans(),
    form=st.sampled_from(["quoted", "plain", "escaped"]),
)
def test_conninfo_masking(
    user: str,
    password: str,
    host: str,
    port: int,
    dbname: str,
    position: int,
    spaced: bool,
    form: str,
    figures: Figures,
) -> None:
    """password='…' (quotes and backslashes escaped), password=plain or password=es\\ caped,
    anywhere in a key=value string."""
    pairs = [f"host={host}", f"port={port}", f"user={user}", f"dbname={dbname}"]
    equals = " = " if spaced else "="
    if form == "plain" and re.search(r"[\s'\\]", password):
        form = "quoted"
    value = {"quoted": conninfo_quote, "escaped": conninfo_escape}.get(form, str)(password)
    info = " ".join([*pairs[:position], f"password{equals}{value}", *pairs[position:]])
    masked = " ".join([*pairs[:position], f"password{equals}***", *pairs[position:]])
    assert conninfo_to_dict(info)["password"] == password
    assume(plausible(password) and not any(form in masked for form in spellings(password)))
    with fresh_registry():
        target = parse_target(info, "DATABASE_URL")
        assert target.masked == masked == str(target)
        assert repr(target) == f"Target({masked!r}, source='DATABASE_URL', is_sandbox=False)"
        for broken in (info.replace(f"port={port}", "port=notaport"), info + " dbname='unterminated"):
            with pytest.raises(InputError) as caught:
                parse_target(broken, "--db")
            assert_hidden(str(caught.value), password, [user, host, dbname])
    figures.add("properties: URL masking")


# Any printable password typed into the URL or key=value string as is, without
# percent-encoding or quoting: '@', '/', ':', '?', '#', '%', '&', quotes and spaces
# included. Left out: a password holding "?keyword=" or "&keyword=" (or " keyword=" in a
# key=value string), which no reader can tell from the next parameter.
TYPED_PASSWORD = st.text(PRINTABLE, min_size=1, max_size=24).filter(
    lambda p: not re.search(r"[?&\s][A-Za-z_]+\s*=", p)
)
PIECE_CUTS = re.compile(r"[\s@/:?&=,#'\\]+")  # where a misreading libpq cuts a password


def pieces(password: str) -> set[str]:
    """The password's spellings and the fragments a misreading libpq may quote."""
    return spellings(password) | {p for p in PIECE_CUTS.split(password) if p.strip()}


@EXAMPLES
@given(
    user=USER,
    password=TYPED_PASSWORD,
    host=HOST.filter(lambda h: not h.startswith("[")),
    port=PORT,
    dbname=DBNAME,
    shape=st.sampled_from(["userinfo", "query", "conninfo"]),
    broken=st.booleans(),
)
def test_password_as_typed_never_shows(
    user: str, password: str, host: str, port: int, dbname: str, shape: str, broken: bool, figures: Figures
) -> None:
    """A password written as typed (libpq reads some, misreads or refuses others): the
    banner, repr, every InputError and every value libpq read (which a later connection
    error may quote) show none of it, not even a fragment, and keep the user, host and
    database name readable; when the parse succeeds, libpq read the password as typed."""
    bad_port = "notaport" if broken else str(port)
    if shape == "userinfo":
        url = f"postgresql://{user}:{password}@{host}:{bad_port}/{dbname}"
        masked = f"postgresql://{user}:***@{host}:{bad_port}/{dbname}"
    elif shape == "query":
        url = f"postgresql://{user}@{host}:{bad_port}/{dbname}?password={password}"
        masked = f"postgresql://{user}@{host}:{bad_port}/{dbname}?password=***"
    else:
        url = f"host={host} port={bad_port} user={user} dbname={dbname} password={password}"
        masked = f"host={host} port={bad_port} user={user} dbname={dbname} password=***"
    secret = pieces(password)
    assume(not any(shows(f"{FIXED_TEXT} {masked}", form) for form in secret))
    with fresh_registry():
        try:
            target = parse_target(url, "--db")
        except InputError as exc:
            shown = [str(exc)]
        else:
            assert not broken
            assert target.params.get("password") in secrets.readings(password), target.params
            blanks = re.compile(r"\s+") if shape == "conninfo" else re.compile("^$")  # around values
            assert blanks.sub("", str(target)) == blanks.sub("", masked)
            values = " ".join(v for k, v in target.params.items() if k != "password")
            shown = [str(target), repr(target), secrets.redact(f"could not connect to {values}")]
        for text in shown:
            for form in secret:
                assert not shows(text, form), (form, text)
            for part in (user, host, dbname):
                assert part in text, (part, text)
    figures.add("properties: URL masking")


SAFE_TEXT = st.text(PRINTABLE, max_size=80).filter(lambda t: "password" not in t.lower() and "://" not in t)


@EXAMPLES
@given(user=USER, host=HOST, port=PORT, dbname=DBNAME, other=PASSWORD, words=SAFE_TEXT)
def test_text_without_secrets_is_unchanged(
    user: str, host: str, port: int, dbname: str, other: str, words: str, figures: Figures
) -> None:
    """URLs and conninfo strings without a password, and ordinary words, stay as they are
    while some other target's password is registered."""
    texts = [
        f"target: postgresql://{user}@{host}:{port}/{dbname} (database, from --db)",
        f"host={host} port={port} user={user} dbname={dbname}",
        f"error: migration 004_x failed at 004_x.sql:1: {words}",
    ]
    assume(not any(form in text for text in texts for form in spellings(other)))
    with fresh_registry():
        secrets.register(other)
        for text in texts:
            assert secrets.redact(text) == text
    figures.add("properties: URL masking")
