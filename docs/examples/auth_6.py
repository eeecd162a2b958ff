"""Google and Facebook log-in; the provider's name and email land in the user's profile."""

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        # A server auth code from Google Sign-In. The demo server's code-exchange function
        # accepts made-up codes of the form "demo-google:<sub>:<email>".
        google_user = await app.log_in(Credentials.google(auth_code="demo-google:1057:ana@example.com"))
        assert google_user.profile.email == "ana@example.com"

        # A Facebook access token, checked by the server's verifier function
        # (the demo accepts "demo-fb:<id>:<name>").
        facebook_user = await app.log_in(Credentials.facebook("demo-fb:4242:Bob"))
        assert facebook_user.profile.name == "Bob"
        assert facebook_user.identities[0].provider_type == "oauth2-facebook"
