"""app.current_user_changes and app.users_changes replay the current value, then follow changes."""

from appusers import App, Credentials, CurrentUserChanged, UsersChanged


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        current_ids: list[str | None] = []
        app.current_user_changes.subscribe(lambda user: current_ids.append(user and user.id))
        user_lists: list[list[str]] = []
        app.users_changes.subscribe(lambda users: user_lists.append([u.id for u in users]))
        app_events = []
        app.events.subscribe(app_events.append)

        ana = await app.log_in(Credentials.function({"username": "ana"}))
        bob = await app.log_in(Credentials.function({"username": "bob"}))
        app.switch_user(ana)

        assert current_ids == [None, ana.id, bob.id, ana.id]
        assert user_lists[0] == [] and user_lists[-1] == [ana.id, bob.id]
        assert CurrentUserChanged(ana.id) in app_events
        assert UsersChanged((ana.id, bob.id)) in app_events
