"""refresh_profile fetches the profile and identities again and publishes ProfileRefreshed."""

from appusers import App, Credentials, ProfileRefreshed


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.facebook("demo-fb:4242:Bob"))
        events = []
        user.events.subscribe(events.append)

        profile = await user.refresh_profile()
        assert profile.name == "Bob" and user.profile == profile
        assert events == [ProfileRefreshed(user.id, profile, user.identities)]
