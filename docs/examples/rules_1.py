"""The demo rules: every user reads and writes only their own documents."""

from appusers import App, Credentials
from appusers.errors import ServiceError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        ana = await app.log_in(Credentials.function({"username": "ana"}))
        bob = await app.log_in(Credentials.anonymous())
        ana_notes = ana.mongo_client("mongodb-atlas").db("private").collection("notes")
        bob_notes = bob.mongo_client("mongodb-atlas").db("private").collection("notes")

        # The demo's default rule: a document belongs to the user named by its owner_id.
        note = await ana_notes.insert_one({"owner_id": ana.id, "secret": "ana's diary"})

        assert await bob_notes.find({}) == []  # not hers: not there for bob
        result = await bob_notes.update_one({"_id": note.inserted_id}, {"$set": {"secret": "x"}})
        assert result.matched_count == 0

        try:  # a document bob could not write afterwards is refused as a whole
            await bob_notes.insert_one({"owner_id": ana.id, "secret": "planted"})
        except ServiceError as exc:
            assert (exc.status, exc.error_code) == (403, "NoMatchingRuleFound")
        else:
            raise AssertionError("bob planted a note in ana's name")

        assert [n["secret"] for n in await ana_notes.find({})] == ["ana's diary"]
