"""user.state_changes replays the current state on subscribe, then every change."""

from appusers import App, Credentials, UserState


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
        states: list[UserState] = []
        subscription = user.state_changes.subscribe(states.append)

        await user.log_out()
        await app.log_in(Credentials.function({"username": "ana"}))
        await app.remove_user(user)
        assert states == [
            UserState.LOGGED_IN,  # replayed on subscribe
            UserState.LOGGED_OUT,
            UserState.LOGGED_IN,
            UserState.REMOVED,
        ]
        subscription.dispose()  # stop listening
