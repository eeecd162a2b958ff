"""Quick start: log in, call a backend function, watch the user's state, log out."""

from appusers import App, Credentials, UserState


async def main(base_url: str, app_id: str) -> None:
    # base_url: where `appusers serve` listens (http://127.0.0.1:9090); app_id: "appusers-local".
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())

        states: list[UserState] = []
        user.state_changes.subscribe(states.append)

        assert await user.functions.sum(2, 40) == 42  # the demo server's `sum` function
        await user.log_out()
        assert states == [UserState.LOGGED_IN, UserState.REMOVED]  # anonymous users go away
