"""An authentication trigger that, for the user "slow-user", waits until slowControl releases it."""

import asyncio


async def main(context, auth_event):
    if auth_event["user"]["data"].get("name") != "slow-user":
        return
    control = context.services.get("mongodb-atlas").db("tracker").collection("control")
    await control.insert_one({"slowTrigger": "started"})
    while await control.find_one({"release": True}) is None:
        await asyncio.sleep(0.01)
    await control.insert_one({"slowTrigger": "finished"})
