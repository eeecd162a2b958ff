"""Resend a confirmation email: the new token works, the previous one no longer does."""

import json
from pathlib import Path

from appusers import App
from appusers.errors import UserpassTokenInvalidError


def last_email(outbox: Path, address: str, kind: str) -> dict[str, str]:
    emails = [json.loads(line) for line in outbox.read_text().splitlines()]
    return [m for m in emails if m["email"] == address and m["kind"] == kind][-1]


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        auth = app.email_password_auth
        await auth.register_user("bob@example.com", "s3cret-pass")
        first = last_email(outbox, "bob@example.com", "confirm")

        await auth.resend_confirmation_email("bob@example.com")
        second = last_email(outbox, "bob@example.com", "confirm")

        try:
            await auth.confirm_user(first["token"], first["tokenId"])
        except UserpassTokenInvalidError:
            pass  # superseded by the second email
        else:
            raise AssertionError("an old token confirmed")
        await auth.confirm_user(second["token"], second["tokenId"])

        # Confirmed (or unknown) addresses get the same answer and no email, so the answer
        # does not tell who is registered (App Services itself: UserAlreadyConfirmedError).
        await auth.resend_confirmation_email("bob@example.com")
        assert last_email(outbox, "bob@example.com", "confirm") == second
