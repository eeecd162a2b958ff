"""Authentication trigger: store each event (run as system: the rules do not apply)."""


async def main(context, auth_event):
    events = context.services.get("mongodb-atlas").db("tracker").collection("auth_events")
    await events.insert_one(
        {
            "user_id": auth_event["user"]["id"],
            "operationType": auth_event["operationType"],
            "providers": auth_event["providers"],
            "user": auth_event["user"],
            "time": auth_event["time"],
            "timeIsAware": auth_event["time"].tzinfo is not None,
            "contextUser": None if context.user is None else context.user.id,
            "system": context.running_as_system(),
        }
    )
