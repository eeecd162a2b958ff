"""Register a new email/password identity, confirm it with the emailed token, log in."""

import json
from pathlib import Path

from appusers import App, Credentials
from appusers.errors import InvalidPasswordError


def last_email(outbox: Path, address: str, kind: str) -> dict[str, str]:
    """The local server writes each email as a JSON line to <data>/outbox.jsonl."""
    emails = [json.loads(line) for line in outbox.read_text().splitlines()]
    return [m for m in emails if m["email"] == address and m["kind"] == kind][-1]


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        auth = app.email_password_auth
        await auth.register_user("ana@example.com", "s3cret-pass")

        # The same address again is answered like a new registration, so nobody can probe
        # which addresses are registered; nothing changes (App Services itself answers
        # AccountNameInUseError: the server's prevent_user_enumeration = false).
        await auth.register_user("ana@example.com", "other-pass")

        try:  # not confirmed yet
            await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        except InvalidPasswordError as exc:
            assert exc.message == "confirmation required"
        else:
            raise AssertionError("logged in unconfirmed")

        # The confirmation email links to your app with ?token=...&tokenId=...
        email = last_email(outbox, "ana@example.com", "confirm")
        await auth.confirm_user(email["token"], email["tokenId"])
        user = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        assert user.is_logged_in  # with the first password: the second registration changed nothing
