"""Listeners: callbacks for every event, without handling subscriptions yourself."""

from appusers import App, Credentials, LoggedOut, UserEvent


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
        seen: list[UserEvent] = []

        def on_event(event: UserEvent) -> None:
            seen.append(event)

        def broken(event: UserEvent) -> None:
            raise RuntimeError("a bug in a listener")  # logged; never breaks the SDK or others

        user.add_listener(on_event)
        user.add_listener(broken)
        await user.refresh_profile()
        user.remove_listener(on_event)
        await user.log_out()  # on_event no longer hears this

        assert len(seen) == 1 and not isinstance(seen[0], LoggedOut)
        user.remove_all_listeners()
