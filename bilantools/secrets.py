"""Password masking for every text bilantools shows, logs or raises.

Masking works on the text as written, never on a parse of it: people type passwords into
URLs without percent-encoding them (``/`` and ``@`` of generated passwords, spaces, ``%``),
and libpq then reads the URL otherwise than they meant, or not at all. Wherever a
password may stand by any reading, it is masked:

* in a URL, from the ``:`` after the user name to the *last* ``@`` before the query string
  (libpq stops at the first ``@`` or ``/``), which starts at the first ``?keyword=`` that
  libpq knows; a query-string ``password=`` up to the next ``&keyword=`` (an ``&`` of the
  password is kept in it);
* in a key=value string, the value, quoted or not.

When the text is known to be one connection string (a target, `mask_written`), the URL
runs to its end, spaces and all, and an unquoted key=value password runs to the next
keyword libpq knows; in running text (`redact`) it ends at a blank, and the
registry does the rest: every password read from a target, in every spelling, and every
connection string registered as written is replaced wherever it shows up (a server
message quotes them; a misreading libpq quotes their fragments, see `register_pieces`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote

MASK = "***"

_known: set[str] = set()
_written: dict[str, str] = {}  # connection strings as registered -> their masked form

SECRET_KEYS = ("password", "sslpassword", "oauth_client_secret")  # libpq's secret parameters
_SECRET_KEYS = "|".join(SECRET_KEYS)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://", re.I)
# ?key=... or &key=... in a URL's query string
_PARAM = re.compile(r"[?&](?P<key>[A-Za-z_]+)=")
# password=secret, password='se cret', password='it\'s' or password=se\ cret in a conninfo
# string: libpq ends an unquoted value at a blank only (an & is part of it) and honours
# backslash escapes in both forms; an unterminated quote hides the rest of the line.
_KV_PASSWORD = re.compile(
    rf"(?P<head>(?<![?&\w])(?:{_SECRET_KEYS})\s*=\s*)"
    r"(?P<pw>'(?:[^'\\\n]|\\.)*'|'[^\n]*|(?:[^\s\\]|\\[\s\S]?)*)",
    re.I | re.A,
)
# Where libpq splits a URL: a password holding one of these is read in pieces.
_DELIMITERS = re.compile(r"[\s@/:?&=,#'\\]+")
_BLANK = re.compile(r"\s")
_KEY = re.compile(r"(\w+)\s*=", re.A)
_NEXT_WORD = re.compile(r"\s+((?:[^\s\\]|\\[\s\S]?)+)", re.A)  # libpq's blanks are ASCII

Span = tuple[int, int]


@lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    """The parameter names libpq accepts in a URL's query string."""
    from psycopg import pq

    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())


def _is_param(text: str, at: int) -> bool:
    """Whether a `keyword=` that libpq knows starts at text[at]."""
    match = _KEY.match(text, at)
    return match is not None and match[1] in _keywords()


def _url_spans(text: str, start: int, end: int) -> list[Span]:
    """Where a password may stand in the URL text[start:end] (scheme included)."""
    body = _SCHEME.match(text, start)
    assert body is not None
    spans: list[Span] = []
    # the query string starts at the first ?keyword= or &keyword= that libpq knows
    params = [m for m in _PARAM.finditer(text, body.end(), end) if m["key"].lower() in _keywords()]
    for i, param in enumerate(params):
        if re.fullmatch(_SECRET_KEYS, param["key"], re.I):  # up to the next parameter, & included
            spans.append((param.end(), params[i + 1].start() if i + 1 < len(params) else end))
    slash = text.find("/", body.end(), end)
    colon = text.find(":", body.end(), slash if slash >= 0 else end)
    # user:password@ as typed: the password runs to the last @ before the query string
    at = text.rfind("@", colon + 1, params[0].start() if params else end) if colon >= 0 else -1
    if at >= 0:
        spans.append((colon + 1, at))
    return spans


def _spans(text: str, whole: bool) -> list[Span]:
    """Every span of `text` that may hold a password, merged, in order. With `whole`,
    `text` is one connection string; else a URL ends at the first blank."""
    spans: list[Span] = []
    for match in _SCHEME.finditer(text):
        blank = None if whole else _BLANK.search(text, match.end())
        spans += _url_spans(text, match.start(), blank.start() if blank else len(text))
    for match in _KV_PASSWORD.finditer(text):
        begin, stop = match.span("pw")
        if whole and not match["pw"].startswith("'"):  # libpq then takes its next words for
            while (word := _NEXT_WORD.match(text, stop)) and not _is_param(text, word.start(1)):
                stop = word.end()  # parameters (and quotes them): they are the password's
        spans.append((begin, stop))
    merged: list[Span] = []
    for begin, stop in sorted(s for s in spans if s[1] > s[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((begin, stop))
    return merged


def _masked(text: str, spans: list[Span]) -> str:
    out, last = [], 0
    for begin, stop in spans:
        out += [text[last:begin], MASK]
        last = stop
    return "".join([*out, text[last:]])


def conninfo_value(raw: str) -> str:
    """The value libpq reads from a conninfo value as written (quotes and escapes removed)."""
    if raw.startswith("'"):
        raw = raw[1:-1] if len(raw) > 1 and raw.endswith("'") else raw[1:]
    return re.sub(r"\\([\s\S]?)", r"\1", raw)  # a lone final backslash is dropped


def mask_written(raw: str) -> str:
    """`raw`, one URL or key=value string as written, with every possible password masked."""
    return _masked(raw, _spans(raw, whole=True))


def written_passwords(raw: str) -> list[str]:
    """Every text that some reading of the connection string `raw` takes as a password."""
    return [raw[begin:stop] for begin, stop in _spans(raw, whole=True)]


def readings(written: str) -> set[str]:
    """What libpq makes of a password as written: percent-decoded in a URL (without its
    outer spaces), quotes and escapes removed in a key=value string."""
    forms = {written, unquote(written), conninfo_value(written)}
    return forms | {f.strip(" ") for f in forms}


def register_written(raw: str) -> None:
    """Register the connection string `raw` as written, and every password in it."""
    masked = mask_written(raw)
    if masked != raw:
        _written[raw] = masked
        _written[" ".join(raw.split())] = " ".join(masked.split())  # as one-line messages show it
    for password in written_passwords(raw):
        for form in readings(password):
            register(form)


def register_pieces(raw: str, shown: str) -> None:
    """Register the fragments of the passwords written in `raw` that `shown` holds: where
    libpq misreads a URL (an unencoded '/' or '@' in the password), it takes pieces of the
    password for the host, port or database name, and quotes them in its messages."""
    for password in written_passwords(raw):
        for piece in _DELIMITERS.split(password):
            if piece and any(form and form in shown for form in (piece, unquote(piece))):
                register(piece)


def register(password: str | None) -> None:
    """Remember a password so that any later text quoting it is masked."""
    if password:  # as one-line messages collapse it too; never a blank spelling (every space)
        forms = (password, " ".join(password.split()), quote(password, safe=""), unquote(password))
        _known.update(f for f in forms if f.strip())


def redact(text: str) -> str:
    """Return `text` with every known password and every URL/conninfo password masked."""
    for raw in sorted(_written, key=len, reverse=True):
        if raw in text:
            text = text.replace(raw, _written[raw])
    text = _masked(text, _spans(text, whole=False))
    for secret in sorted(_known, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        else:  # a short password is masked only where it stands as a whole word
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", MASK, text)
    return text
