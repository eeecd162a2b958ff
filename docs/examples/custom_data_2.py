"""Custom data keeps its Extended JSON types (ObjectId, dates, Decimal128...) and survives a new log-in."""

import datetime

from bson import Decimal128, ObjectId

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "bob"}))
        team = ObjectId()
        since = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
        await user.functions.set_custom_data({"team": team, "since": since, "credit": Decimal128("9.90")})
        await user.log_out()

        user = await app.log_in(Credentials.function({"username": "bob"}))  # a fresh access token
        assert user.custom_data["team"] == team
        assert user.custom_data["since"] == since
        assert user.custom_data["credit"] == Decimal128("9.90")
