"""Reset a forgotten password with the emailed token; the old password stops working."""

import json
from pathlib import Path

from appusers import App, Credentials
from appusers.errors import InvalidPasswordError


def last_email(outbox: Path, address: str, kind: str) -> dict[str, str]:
    emails = [json.loads(line) for line in outbox.read_text().splitlines()]
    return [m for m in emails if m["email"] == address and m["kind"] == kind][-1]


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        auth = app.email_password_auth
        await auth.register_user("cy@example.com", "old-password")
        email = last_email(outbox, "cy@example.com", "confirm")
        await auth.confirm_user(email["token"], email["tokenId"])

        await auth.send_reset_password_email("cy@example.com")
        email = last_email(outbox, "cy@example.com", "reset")
        await auth.reset_password(email["token"], email["tokenId"], "new-password")

        user = await app.log_in(Credentials.email_password("cy@example.com", "new-password"))
        assert user.is_logged_in
        try:
            await app.log_in(Credentials.email_password("cy@example.com", "old-password"))
        except InvalidPasswordError:
            pass
        else:
            raise AssertionError("the old password still works")
