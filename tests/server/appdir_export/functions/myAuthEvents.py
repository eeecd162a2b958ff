"""The caller's recorded authentication events, oldest first."""


async def main(context, user_id=None):
    events = context.services.get("mongodb-atlas").db("tracker").collection("auth_events")
    found = await events.find({"user_id": user_id or context.user.id})
    return [
        {
            key: event[key]
            for key in ("operationType", "providers", "user", "contextUser", "system", "timeIsAware")
        }
        for event in found
    ]
