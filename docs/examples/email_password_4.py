"""Reset through the server's custom reset function, which receives your extra arguments."""

import json
from pathlib import Path

from appusers import App, Credentials


def last_email(outbox: Path) -> dict[str, str]:
    """The local server's latest "email": the last line of <data>/outbox.jsonl."""
    return json.loads(outbox.read_text().splitlines()[-1])


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        auth = app.email_password_auth
        await auth.register_user("dee@example.com", "old-password")
        email = last_email(outbox)
        await auth.confirm_user(email["token"], email["tokenId"])

        # [providers.local-userpass] reset_function decides. The demo's reset_password
        # resets at once when its first extra argument is "success".
        await auth.call_reset_password_function("dee@example.com", "new-password", "success")

        user = await app.log_in(Credentials.email_password("dee@example.com", "new-password"))
        assert user.is_logged_in
