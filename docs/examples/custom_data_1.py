"""Custom user data arrives in the access token: write it with a function, then refresh to read it."""

from appusers import App, Credentials, CustomDataRefreshed


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "bob"}))
        assert user.custom_data == {}  # no custom-data document yet

        events = []
        user.events.subscribe(events.append)

        # Write: custom data is a document in a collection ([custom_data] in the server
        # settings), written by your own backend code; the demo's set_custom_data merges fields.
        await user.functions.set_custom_data({"plan": "pro", "favorite_color": "teal"})
        assert user.custom_data == {}  # the current access token still carries the old data

        # Read: a new access token carries the new data.
        data = await user.refresh_custom_data()
        assert data["plan"] == "pro" and user.custom_data["favorite_color"] == "teal"
        assert any(isinstance(e, CustomDataRefreshed) and e.custom_data["plan"] == "pro" for e in events)
