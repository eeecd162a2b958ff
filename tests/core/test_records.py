"""A stored user record reads back field for field (restore builds records without keywords)."""

from __future__ import annotations

import pytest

from appusers._models import Identity, Profile, UserState
from appusers._records import UserRecord, dump_user, load_user


@pytest.mark.parametrize("logged_in", [True, False])
def test_a_record_reads_back_field_for_field(logged_in: bool) -> None:
    record = UserRecord(
        id="u1", state=UserState.LOGGED_IN if logged_in else UserState.LOGGED_OUT,
        access_token="a.b.c" if logged_in else None, refresh_token="d.e.f" if logged_in else None,
        device_id="dev", identities=(Identity("i1", "local-userpass"),),
        profile=Profile({"email": "ana@example.com"}, "normal"), provider_type="local-userpass",
        last_used=1234.5,
    )
    loaded = load_user(dump_user(record))
    assert type(loaded) is UserRecord
    assert loaded._asdict() == {
        "id": "u1", "state": record.state, "access_token": record.access_token,
        "refresh_token": record.refresh_token, "device_id": "dev",
        "identities": '[["i1", "local-userpass"]]', "profile": ('{"email": "ana@example.com"}', "normal"),
        "provider_type": "local-userpass", "last_used": 1234.5,
    }


def test_empty_fields_read_back_as_none() -> None:
    record = UserRecord(id="u2", state=UserState.LOGGED_OUT, access_token=None, refresh_token=None,
                        device_id=None, identities=(), profile=None, provider_type=None, last_used=0.0)
    loaded = load_user(dump_user(record))
    fields = (loaded.device_id, loaded.profile, loaded.provider_type, loaded.identities)
    assert fields == (None, None, None, "[]")
