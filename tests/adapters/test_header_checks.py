"""AiohttpTransport remembers header names and values it found printable (the SDK sends the same
few, its long bearer token among them); what it remembers must never let a bad one through."""

from __future__ import annotations

import pytest

from appusers.adapters import AiohttpTransport
from appusers.errors import InvalidArgumentError
from appusers.transport import Request

URL = "http://127.0.0.1:1/api"
TOKEN = "Bearer " + "e30." * 100


class _Text(str):
    pass


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": TOKEN + "\r\nX-Injected: 1"},
        {"Authorization\r\nX-Injected": TOKEN},
        {"Authorization": TOKEN, "X": "a\nb"},
        {"Authorization": TOKEN, "X": "a\x00b"},
        {"Authorization": _Text(TOKEN + "\r\n")},
    ],
)
def test_a_bad_field_is_refused_after_clean_ones_were_remembered(headers: dict[str, str]) -> None:
    transport = AiohttpTransport()
    clean = {"Accept": "application/json", "Authorization": TOKEN, "X": "a b"}
    for _ in range(2):
        transport._checked(Request("GET", URL, clean))  # validation only, no I/O
    with pytest.raises(InvalidArgumentError, match="line break or NUL") as caught:
        transport._checked(Request("GET", URL, headers))
    assert "e30." not in str(caught.value)  # the name only, never the value


def test_what_is_remembered_is_bounded_and_dropped_on_close() -> None:
    transport = AiohttpTransport()
    for number in range(1000):
        transport._checked(Request("GET", URL, {"Authorization": f"{TOKEN}{number}"}))
        assert len(transport._clean_fields) <= 64
    assert f"{TOKEN}999" in transport._clean_fields


async def test_the_remembered_fields_go_when_the_transport_closes() -> None:
    transport = AiohttpTransport()
    transport._checked(Request("GET", URL, {"Authorization": TOKEN}))
    assert TOKEN in transport._clean_fields
    await transport.aclose()
    assert not transport._clean_fields
