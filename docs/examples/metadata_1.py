"""User metadata: the profile the login providers supply, read from user.profile."""

from appusers import App, Credentials, Profile


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.google(auth_code="demo-google:1057:ana@example.com"))
        profile = user.profile
        assert isinstance(profile, Profile)
        assert profile.email == "ana@example.com" and profile.name == "ana"
        assert profile.picture_url is None  # standard keys the provider did not send are None
        assert profile.data == {"email": "ana@example.com", "name": "ana"}  # the raw document

        # Anonymous users have no metadata.
        anonymous = await app.log_in(Credentials.anonymous())
        assert anonymous.profile.data == {} and anonymous.profile.name is None
