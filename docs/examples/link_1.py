"""Link an email/password identity to an anonymous user: same user id, and it survives log-out."""

import json
from pathlib import Path

from appusers import App, Credentials, IdentitiesLinked, UserState


def last_email(outbox: Path) -> dict[str, str]:
    """The local server's latest "email": the last line of <data>/outbox.jsonl."""
    return json.loads(outbox.read_text().splitlines()[-1])


async def main(base_url: str, app_id: str, outbox: Path) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        await user.functions.set_custom_data({"cart": ["apple"]})

        # Later the visitor signs up: register (and confirm) the identity, then link it.
        await app.email_password_auth.register_user("ana@example.com", "s3cret-pass")
        email = last_email(outbox)
        await app.email_password_auth.confirm_user(email["token"], email["tokenId"])

        events = []
        user.events.subscribe(events.append)
        await user.link_credentials(Credentials.email_password("ana@example.com", "s3cret-pass"))

        assert [i.provider_type for i in user.identities] == ["anon-user", "local-userpass"]
        assert not user.is_anonymous() and user.custom_data["cart"] == ["apple"]
        assert events == [IdentitiesLinked(user.id, user.identities)]

        await user.log_out()
        assert user.state is UserState.LOGGED_OUT  # kept: it is no longer anonymous
        again = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
        assert again is user
