"""``built_request``/``built_response`` (the per-call path's constructors without attrs' set-up)
give what ``Request(...)``/``Response(...)`` give."""

from __future__ import annotations

import attrs
import pytest

from appusers.transport import Request, Response, built_request, built_response


def test_the_fields_are_the_ones_the_builders_set() -> None:
    # A field added to either class must be set by its builder too.
    assert [f.name for f in attrs.fields(Request)] == ["method", "url", "headers", "body", "timeout"]
    assert [f.name for f in attrs.fields(Response)] == ["status", "headers", "body", "url"]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "timeout"),
    [("POST", "http://127.0.0.1:1/f?t=secret", {"Authorization": "Bearer secret"}, b"{}", 5.0),
     ("GET", "http://127.0.0.1:1/", {}, None, None)],
)
def test_built_request_is_the_request(method: str, url: str, headers: dict[str, str], body: bytes | None,
                                      timeout: float | None) -> None:
    built = built_request(method, url, dict(headers), body, timeout)
    made = Request(method, url, headers, body, timeout)
    assert built == made
    assert repr(built) == repr(made) and "secret" not in repr(built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.url = "http://elsewhere/"  # type: ignore[misc]


def test_built_response_is_the_response() -> None:
    headers = {"content-type": "application/json"}
    built = built_response(200, dict(headers), b'{"a": 1}', "http://127.0.0.1:1/f")
    made = Response(200, headers, b'{"a": 1}', "http://127.0.0.1:1/f")
    assert built == made and repr(built) == repr(made)
    assert built.ok and built.content_type == "application/json" and built.json() == {"a": 1}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.status = 500  # type: ignore[misc]
