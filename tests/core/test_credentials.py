"""Credentials reject bad input at construction and keep secrets out of repr."""

from __future__ import annotations

import pytest

from appusers import Credentials
from appusers.errors import AppError, InvalidArgumentError


@pytest.mark.parametrize(
    "make",
    [
        lambda: Credentials.email_password("", "pw123456"),
        lambda: Credentials.email_password("   ", "pw123456"),
        lambda: Credentials.email_password("a@b.c", ""),
        lambda: Credentials.email_password(None, "pw"),  # type: ignore[arg-type]
        lambda: Credentials.api_key(""),
        lambda: Credentials.jwt(""),
        lambda: Credentials.function(["not", "a", "mapping"]),  # type: ignore[arg-type]
        lambda: Credentials.function({1: "non-string key"}),  # type: ignore[dict-item]
        lambda: Credentials.function({"options": {}}),
        lambda: Credentials.google(),
        lambda: Credentials.google(auth_code="a", id_token="b"),
        lambda: Credentials.google(id_token=""),
        lambda: Credentials.facebook(""),
        lambda: Credentials.apple(""),
    ],
)
def test_bad_arguments_raise_a_typed_error(make):
    with pytest.raises(InvalidArgumentError) as info:
        make()
    assert isinstance(info.value, ValueError) and isinstance(info.value, AppError)


def test_payloads_match_the_wire_protocol():
    assert Credentials.anonymous().provider == "anon-user"
    assert Credentials.anonymous().reuse is True
    assert Credentials.anonymous(reuse=False).reuse is False
    assert Credentials.email_password("a@b.c", "pw").payload == {"username": "a@b.c", "password": "pw"}
    assert Credentials.api_key("k").payload == {"key": "k"}
    assert Credentials.jwt("t").payload == {"token": "t"}
    assert Credentials.function({"pin": 1}).payload == {"pin": 1}
    assert Credentials.google(auth_code="c").payload == {"authCode": "c"}
    assert Credentials.google(id_token="t").payload == {"id_token": "t"}
    assert Credentials.facebook("t").payload == {"accessToken": "t"}
    assert Credentials.apple("t").payload == {"id_token": "t"}
    assert Credentials.apple("t").provider == "oauth2-apple"


def test_credentials_are_frozen_and_repr_hides_secrets():
    cred = Credentials.email_password("a@b.c", "hunter2-canary")
    assert "hunter2-canary" not in repr(cred) and "hunter2-canary" not in str(cred)
    with pytest.raises(AttributeError):
        cred.provider = "x"  # type: ignore[misc]
