"""Several users on one device: the last one logged in is current; switch_user changes it."""

from appusers import App, Credentials, UserState


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        ana = await app.log_in(Credentials.function({"username": "ana"}))
        bob = await app.log_in(Credentials.function({"username": "bob"}))
        assert app.current_user is bob
        assert list(app.all_users.values()) == [ana, bob]  # every user on the device, in order

        app.switch_user(ana)
        assert app.current_user is ana

        # Logging out the current user makes the next logged-in user current.
        await ana.log_out()
        assert ana.state is UserState.LOGGED_OUT and app.current_user is bob
        assert ana.id in app.all_users  # logged out, still known

        # Removing forgets the user on this device.
        await app.remove_user(ana)
        assert list(app.all_users) == [bob.id]
