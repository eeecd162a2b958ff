"""User creation function: every new user starts with a profile; one name is refused."""


async def main(context, user):
    if user["data"].get("name") == "refused-at-creation":
        raise PermissionError("this user may not be created")
    profiles = context.services.get("mongodb-atlas").db("tracker").collection("profiles")
    await profiles.insert_one({"user_id": user["id"], "plan": "free"})
