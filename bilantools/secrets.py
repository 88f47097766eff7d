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

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@/?#\s]*)(?=@)", re.I)
# password=secret or password='se cret' in conninfo strings and URL query strings
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]*)", re.I)


def register(password: str | None) -> None:
    """Remember a password so that any later text quoting it is masked."""
    if password:
        _known.update({password, quote(password, safe=""), unquote(password)})


def redact(text: str) -> str:
    """Return `text` with every known password and every URL/conninfo password masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + (MASK if m["pw"] else ""), text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_known, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        else:  # a short password is masked only where it stands as a whole word
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", MASK, text)
    return text
