"""Rules from a TOML file: a field-level role that shows a field but keeps it read-only."""

from pathlib import Path

from appusers import App, Credentials
from appusers.errors import ServiceError
from appusers.server import LocalServer, load_config

CONFIG = """
[[rules]]
database = "shop"
collection = "orders"

[[rules.roles]]
name = "owner"
apply_when = { owner_id = "%%user.id" }
fields = { status = { read = true, write = false } }
additional_fields = { read = true, write = true }

[[rules.filters]]
name = "mine"
apply_when = {}
query = { owner_id = "%%user.id" }
"""


async def main(workdir: Path) -> None:
    (workdir / "server.toml").write_text(CONFIG)
    config = load_config(workdir / "server.toml")
    async with LocalServer(config=config) as server, App(server.app_id, base_url=server.url) as app:
        ana = await app.log_in(Credentials.anonymous())
        orders = ana.mongo_client("mongodb-atlas").db("shop").collection("orders")

        # An insert writes every field: `status` is read-only, so the insert without it passes...
        order = await orders.insert_one({"owner_id": ana.id, "item": "tea"})
        await orders.update_one({"_id": order.inserted_id}, {"$set": {"item": "coffee"}})
        try:  # ... and a write to `status` is refused, with nothing applied.
            await orders.update_one({"_id": order.inserted_id}, {"$set": {"status": "paid", "item": "x"}})
        except ServiceError as exc:
            assert exc.error_code == "NoMatchingRuleFound"
        assert [o["item"] for o in await orders.find({})] == ["coffee"]

        try:  # this file has rules only for shop.orders: everything else is denied
            await ana.mongo_client("mongodb-atlas").db("shop").collection("other").find({})
        except ServiceError as exc:
            assert "no rule exists for namespace 'shop.other'" in str(exc)
        else:
            raise AssertionError("a namespace without a rule was readable")
