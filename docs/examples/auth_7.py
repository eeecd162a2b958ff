"""Apple (and Google id_token) log-ins need the server to know the provider's client id and keys."""

from appusers import App, Credentials
from appusers.errors import InvalidArgumentError, InvalidParameterError


async def main(base_url: str, app_id: str) -> None:
    # Bad input is refused before anything is sent.
    try:
        Credentials.google(auth_code="code", id_token="token")
    except InvalidArgumentError:
        pass  # exactly one of auth_code and id_token
    else:
        raise AssertionError("both were accepted")

    async with App(app_id, base_url=base_url) as app:
        apple_id_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIwMDEifQ.c2ln"  # from Sign in with Apple
        try:
            await app.log_in(Credentials.apple(apple_id_token))
        except InvalidParameterError as exc:
            # The demo settings have no [providers.oauth2-apple] client_id / jwks_file.
            assert "not configured" in exc.message
        else:
            raise AssertionError("Apple is not configured on the demo server")
