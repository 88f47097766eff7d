"""Password masking for every text bilantools shows, logs or raises.

Passwords are registered when a connection target is parsed; `redact` then replaces
them (and the password fields of any URL or conninfo string) with ``***``. Masking by
pattern alone misses passwords quoted by a server error, hence the registry.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"

_known: set[str] = set()

# scheme://user:password@host  ->  scheme://user:***@host. The password may hold spaces:
# libpq refuses them in a URL, quoting the password in its error ("unexpected spaces found
# in ..."), so they must be masked all the more.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@/?#\n]*)(?=@)", re.I)
# ?password=secret or &password=secret in a URL's query string: up to the next & or #
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#\s]*)", re.I)
# password=secret, password='se cret', password='it\'s' or password=se\ cret in a conninfo
# string: libpq ends an unquoted value at a blank only (an & is part of it) and honours
# backslash escapes in both forms; an unterminated quote hides the rest of the line.
_KV_PASSWORD = re.compile(
    r"(?P<head>(?<![?&\w])password\s*=\s*)(?P<pw>'(?:[^'\\\n]|\\.)*'|'[^\n]*|(?:[^\s\\]|\\.)*)", re.I
)
_PATTERNS = (_URL_PASSWORD, _QUERY_PASSWORD, _KV_PASSWORD)


def conninfo_value(raw: str) -> str:
    """The value libpq reads from a conninfo value as written (quotes and escapes removed)."""
    if raw.startswith("'"):
        raw = raw[1:-1] if len(raw) > 1 and raw.endswith("'") else raw[1:]
    return re.sub(r"\\(.)", r"\1", raw)


def register_written(text: str) -> None:
    """Register every password written in `text` (URL, query string or conninfo form)."""
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            register(match["pw"])
            if pattern is _KV_PASSWORD:
                register(conninfo_value(match["pw"]))


def register(password: str | None) -> None:
    """Remember a password so that any later text quoting it is masked."""
    if password:  # as one-line messages collapse it too; never a blank spelling (every space)
        forms = (password, " ".join(password.split()), quote(password, safe=""), unquote(password))
        _known.update(f for f in forms if f.strip())


def redact(text: str) -> str:
    """Return `text` with every known password and every URL/conninfo password masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + (MASK if m["pw"] else ""), text)
    text = _QUERY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_known, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        else:  # a short password is masked only where it stands as a whole word
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", MASK, text)
    return text
