"""A complete test module for code that uses appusers: appusers.testing's fixtures do the set-up."""

from pathlib import Path

import pytest

from appusers import App, Credentials, User, UserState
from appusers.adapters import MemoryStorage
from appusers.errors import InvalidSessionError, ServiceError
from appusers.server import LocalServer, ServerConfig, load_config
from appusers.sync import User as BlockingUser
from appusers.testing import EMAIL, Outbox, fast_config

# -- the code under test: your application's own functions -------------------------------


async def save_note(user: User, text: str) -> None:
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    await notes.insert_one({"owner_id": user.id, "text": text})


async def count_notes(user: User) -> int:
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    return await notes.count({"owner_id": user.id})


# -- its tests -------------------------------------------------------------------------------


class TestNotes:
    async def test_an_anonymous_user_saves_a_note(self, appusers_anonymous_user: User) -> None:
        await save_note(appusers_anonymous_user, "hello")
        assert await count_notes(appusers_anonymous_user) == 1

    async def test_an_email_user_too(self, appusers_email_user: User, appusers_outbox: Outbox) -> None:
        assert appusers_email_user.profile.email == EMAIL
        assert [mail.kind for mail in appusers_outbox.messages(EMAIL)] == ["confirm"]
        await save_note(appusers_email_user, "hi")
        assert await count_notes(appusers_email_user) == 1

    async def test_a_server_error_reaches_the_caller(
        self, appusers_server: LocalServer, appusers_anonymous_user: User
    ) -> None:
        appusers_server.inject_fault("function_call", 500, {"error": "down", "error_code": "InternalError"})
        with pytest.raises(ServiceError):
            await save_note(appusers_anonymous_user, "lost")
        assert await count_notes(appusers_anonymous_user) == 0  # the fault was used up

    async def test_a_revoked_session_logs_the_user_out(
        self, appusers_server: LocalServer, appusers_email_user: User
    ) -> None:
        await appusers_server.revoke_sessions(appusers_email_user.id)
        with pytest.raises(InvalidSessionError):
            await save_note(appusers_email_user, "late")
        assert appusers_email_user.state is UserState.LOGGED_OUT

    @pytest.mark.appusers_config(app_id="notes-app", access_token_lifetime=5)
    async def test_with_other_server_settings(self, appusers_app: App) -> None:
        assert appusers_app.id == "notes-app"
        user = await appusers_app.log_in(Credentials.anonymous())
        await save_note(user, "short-lived token")
        assert await count_notes(user) == 1


class TestOwnServerSettings:
    @pytest.fixture
    def appusers_config(self, tmp_path: Path) -> ServerConfig:
        # Usually in a conftest.py, read from your project's own server.toml.
        toml = tmp_path / "server.toml"
        toml.write_text('app_id = "own-app"\n\n[providers.anon-user]\n')
        return fast_config(load_config(toml))

    async def test_against_them(self, appusers_app: App, appusers_anonymous_user: User) -> None:
        assert appusers_app.id == "own-app" and appusers_anonymous_user.is_logged_in


class TestBlockingCode:
    def test_with_the_blocking_api(self, appusers_sync_anonymous_user: BlockingUser) -> None:
        user = appusers_sync_anonymous_user
        notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
        notes.insert_one({"owner_id": user.id, "text": "blocking"})
        assert notes.count({"owner_id": user.id}) == 1


async def main(base_url: str, app_id: str) -> None:
    # The same code against a running `appusers serve`: what the fixtures stand in for.
    async with App(app_id, base_url=base_url, storage=MemoryStorage()) as app:
        user = await app.log_in(Credentials.anonymous())
        await save_note(user, "for real")
        assert await count_notes(user) == 1
