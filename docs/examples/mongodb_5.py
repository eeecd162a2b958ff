"""Bad input fails before anything is sent; the server's refusals are typed errors."""

from appusers import App, Credentials
from appusers.errors import InvalidArgumentError, ServiceError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        mongo = user.mongo_client("mongodb-atlas")
        tasks = mongo.db("todo").collection("tasks")

        for bad in (
            lambda: mongo.db("to.do"),                         # a name MongoDB does not allow
            lambda: tasks.watch(ids=["a"], filter={"x": 1}),   # ids or filter, not both
        ):
            try:
                bad()
            except InvalidArgumentError as exc:
                assert str(exc)
            else:
                raise AssertionError("bad input was accepted")
        try:
            await tasks.insert_many([])  # checked before the request, like every argument
        except InvalidArgumentError as exc:
            assert "non-empty" in str(exc)
        else:
            raise AssertionError("an empty insert_many was sent")

        # The server's answer: here the demo rules refuse a document the user would not own.
        try:
            await tasks.insert_one({"owner_id": "someone else", "title": "x"})
        except ServiceError as exc:
            assert (exc.status, exc.error_code) == (403, "NoMatchingRuleFound")
        else:
            raise AssertionError("the rules let a foreign document in")

        # Reads may be retried by the App's RetryPolicy when declared safe; writes never are.
        reads = user.mongo_client("mongodb-atlas", retry_reads=True).db("todo").collection("tasks")
        assert await reads.count() == 0
