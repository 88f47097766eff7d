"""Password masking of URLs, conninfo strings and server messages."""

from __future__ import annotations

import pytest

from bilantools.db.target import parse_target
from bilantools.errors import BilanToolsError, InputError
from bilantools.secrets import redact


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "postgresql://app:pa55word@db.example.org:5432/bilan",
            "postgresql://app:***@db.example.org:5432/bilan",
        ),
        ("postgres://app:p%40ss@h/db?sslmode=require", "postgres://app:***@h/db?sslmode=require"),
        (
            "postgresql://app@h/db?password=hunter22&sslmode=require",
            "postgresql://app@h/db?password=***&sslmode=require",
        ),
        ("host=h user=app password='two words' dbname=x", "host=h user=app password=*** dbname=x"),
        ("postgresql://app:@h/db", "postgresql://app:@h/db"),
        ("no secret here", "no secret here"),
    ],
)
def test_redact_patterns(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_registered_password_is_masked_anywhere() -> None:
    target = parse_target("postgresql://app:Zq9-unique-pw@h:5432/db", "--db")
    assert str(target) == repr(target).split("'")[1] == "postgresql://app:***@h:5432/db"
    assert "Zq9-unique-pw" not in repr(target)
    assert redact('server said: password "Zq9-unique-pw" rejected') == 'server said: password "***" rejected'
    assert "Zq9-unique-pw" not in str(BilanToolsError("failed with Zq9-unique-pw inside"))


def test_percent_encoded_password_is_masked_decoded_too() -> None:
    parse_target("postgresql://app:caf%C3%A9-p%40ss@h/db", "--db")
    assert redact("echo café-p@ss") == "echo ***"


def test_malformed_url_error_is_masked() -> None:
    with pytest.raises(InputError) as err:
        parse_target("postgresql://app:Leaky-Pw-77@h:port/db", "DATABASE_URL")
    assert "Leaky-Pw-77" not in str(err.value) and "app:***@h:port/db" in str(err.value)
