"""Registering an email/password identity and logging in with it creates a user; delete_user deletes it."""

import json
from pathlib import Path

from appusers import App, Credentials, UserState
from appusers.errors import InvalidPasswordError


def confirmation_email(outbox: Path, address: str) -> dict[str, str]:
    """The local server "sends" email by appending a JSON line to <data>/outbox.jsonl."""
    emails = [json.loads(line) for line in outbox.read_text().splitlines()]
    return [m for m in emails if m["email"] == address and m["kind"] == "confirm"][-1]


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        # Create: register the identity, confirm it, log in.
        await app.email_password_auth.register_user("ana@example.com", "s3cret-pass")
        email = confirmation_email(outbox, "ana@example.com")
        await app.email_password_auth.confirm_user(email["token"], email["tokenId"])
        user = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        assert user.is_logged_in and app.current_user is user

        # Delete: the user is gone on the server and forgotten on this device.
        await app.delete_user(user)
        assert user.state is UserState.REMOVED
        assert user.id not in app.all_users and app.current_user is None
        try:
            await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        except InvalidPasswordError:
            pass  # the identity was deleted with its user
        else:
            raise AssertionError("a deleted user logged in")
