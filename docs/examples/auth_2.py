"""Email/password log-in; a wrong password raises InvalidPasswordError."""

import json
from pathlib import Path

from appusers import App, Credentials
from appusers.errors import InvalidPasswordError


def last_email(outbox: Path) -> dict[str, str]:
    """The local server's latest "email": the last line of <data>/outbox.jsonl."""
    return json.loads(outbox.read_text().splitlines()[-1])


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        # The identity must exist and be confirmed (see "Manage Email/Password Users").
        await app.email_password_auth.register_user("ana@example.com", "s3cret-pass")
        email = last_email(outbox)
        await app.email_password_auth.confirm_user(email["token"], email["tokenId"])

        user = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        assert user.profile.email == "ana@example.com"

        try:
            await app.log_in(Credentials.email_password("ana@example.com", "wrong-pass"))
        except InvalidPasswordError as exc:
            assert exc.status == 401 and exc.error_code == "InvalidPassword"
        else:
            raise AssertionError("a wrong password logged in")
