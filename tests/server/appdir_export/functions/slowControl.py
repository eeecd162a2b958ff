"""Test control of slowTrigger: "release" lets it finish; "state" says how far it got."""


async def main(context, action):
    control = context.services.get("mongodb-atlas").db("tracker").collection("control")
    if action == "release":
        await control.insert_one({"release": True})
    return sorted(doc["slowTrigger"] for doc in await control.find({"slowTrigger": {"$exists": True}}))
