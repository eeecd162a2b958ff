"""The MongoDB service: ``functions/call`` with ``service`` set, onto the document store.

Argument and result shapes are App Services' (as realm-web and core send them). With ``ruled`` (every call of
an application user) the collection is wrapped in the caller's rules
(``appusers.server.rules``); rule denials become App Services errors: no rule
for the namespace and role-denied writes 403 ``NoMatchingRuleFound``, operators
and stages application users may not use 400 ``ArgumentsNotAllowed``.
Counts are typed for core-based clients: ``deletedCount``/``matchedCount``/
``modifiedCount`` as int32, ``count`` as int64.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bson.int64 import Int64

from ._errors import ApiError
from .rules import RuleDenied, RuleEvaluationError

__all__ = ["MONGO_ACTIONS", "call_mongo", "parse_target", "rule_error", "store_errors"]

log = logging.getLogger("appusers.server")

MONGO_ACTIONS = frozenset(
    {
        "find",
        "findOne",
        "insertOne",
        "insertMany",
        "updateOne",
        "updateMany",
        "deleteOne",
        "deleteMany",
        "aggregate",
        "count",
        "findOneAndUpdate",
        "findOneAndReplace",
        "findOneAndDelete",
    }
)


def store_errors() -> tuple[type[BaseException], ...]:
    """Exception types of the document store that mean "bad request", not "server bug"."""
    try:
        from .documents import DocumentStoreError
    except ImportError:  # pragma: no cover - the store ships with the server
        return (TypeError, ValueError)
    return (DocumentStoreError, TypeError, ValueError)


def parse_target(arguments: Any) -> Mapping[str, Any]:
    """The single argument object, with string ``database`` and ``collection``."""
    if not isinstance(arguments, list) or len(arguments) != 1 or not isinstance(arguments[0], Mapping):
        raise ApiError.invalid_parameter("expected a single argument object")
    arg = arguments[0]
    for key in ("database", "collection"):
        if not isinstance(arg.get(key), str) or not arg[key]:
            raise ApiError.invalid_parameter(f"expected {key!r} to be a non-empty string")
    return arg


def _doc(arg: Mapping[str, Any], key: str, *, required: bool = False) -> Any:
    if key not in arg or arg[key] is None:
        if required:
            raise ApiError.missing_parameter(key)
        return None
    value = arg[key]
    if not isinstance(value, Mapping):
        raise ApiError.invalid_parameter(f"expected {key!r} to be an object")
    return dict(value)


def _int(arg: Mapping[str, Any], key: str) -> int | None:
    value = arg.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError.invalid_parameter(f"expected {key!r} to be a non-negative integer")
    return int(value) or None  # 0 means "no limit" in MongoDB


def _bool(arg: Mapping[str, Any], key: str) -> bool:
    value = arg.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError.invalid_parameter(f"expected {key!r} to be a boolean")
    return value


def _list(arg: Mapping[str, Any], key: str, *, required: bool = False) -> list[Any] | None:
    value = arg.get(key)
    if value is None:
        if required:
            raise ApiError.missing_parameter(key)
        return None
    if not isinstance(value, list):
        raise ApiError.invalid_parameter(f"expected {key!r} to be an array")
    return value


def rule_error(exc: RuleDenied | RuleEvaluationError) -> ApiError:
    """The App Services error for a rule denial (status codes: see docs/rules.md)."""
    if isinstance(exc, RuleEvaluationError):
        return ApiError(400, "FunctionExecutionError", f"rule evaluation failed: {exc}")
    status = {"no_rule": 403, "denied": 403, "conflict": 409}.get(exc.kind, 400)
    return ApiError(status, exc.code, exc.message)


async def call_mongo(
    store: Any, action: str, arguments: Any, *, ruled: Callable[[Any, str, str], Any] | None = None
) -> Any:
    """Run one MongoDB action (under ``ruled``'s rules when given); the Python result to encode."""
    if action not in MONGO_ACTIONS:
        raise ApiError(404, "ServiceCommandNotFound", f"unknown MongoDB function {action!r}")
    arg = parse_target(arguments)
    try:
        coll = store.collection(arg["database"], arg["collection"])
        if ruled is not None:
            coll = ruled(coll, arg["database"], arg["collection"])
        return await _run(coll, action, arg)
    except ApiError:
        raise
    except (RuleDenied, RuleEvaluationError) as exc:
        raise rule_error(exc) from None
    except store_errors() as exc:
        raise ApiError(400, "MongoDBError", str(exc) or type(exc).__name__) from None


async def _run(coll: Any, action: str, arg: Mapping[str, Any]) -> Any:
    query = _doc(arg, "query") or {}
    if action == "find":
        return await coll.find(
            query, projection=_doc(arg, "project"), sort=_doc(arg, "sort"), limit=_int(arg, "limit")
        )
    if action == "findOne":
        return await coll.find_one(query, projection=_doc(arg, "project"), sort=_doc(arg, "sort"))
    if action == "count":
        return Int64(await coll.count(query, limit=_int(arg, "limit")))
    if action == "aggregate":
        pipeline = _list(arg, "pipeline", required=True)
        assert pipeline is not None
        if not all(isinstance(stage, Mapping) for stage in pipeline):
            raise ApiError.invalid_parameter("expected 'pipeline' to be an array of objects")
        return await coll.aggregate(pipeline)
    if action == "insertOne":
        document = _doc(arg, "document", required=True)
        return {"insertedId": await coll.insert_one(document)}
    if action == "insertMany":
        documents = _list(arg, "documents", required=True)
        assert documents is not None
        if not documents or not all(isinstance(d, Mapping) for d in documents):
            raise ApiError.invalid_parameter("expected 'documents' to be a non-empty array of objects")
        return {"insertedIds": list(await coll.insert_many([dict(d) for d in documents]))}
    if action in ("deleteOne", "deleteMany"):
        fn = coll.delete_one if action == "deleteOne" else coll.delete_many
        return {"deletedCount": int(await fn(query))}
    if action in ("updateOne", "updateMany"):
        update = arg.get("update")
        if isinstance(update, Mapping):
            update = dict(update)
        elif not isinstance(update, list):  # a pipeline update is a list of stages
            raise ApiError.missing_parameter("update")
        fn = coll.update_one if action == "updateOne" else coll.update_many
        result = await fn(
            query, update, upsert=_bool(arg, "upsert"), array_filters=_list(arg, "arrayFilters")
        )
        body: dict[str, Any] = {
            "matchedCount": int(result.matched_count),
            "modifiedCount": int(result.modified_count),
        }
        if result.upserted_id is not None:
            body["upsertedId"] = result.upserted_id
        return body
    filter_ = _doc(arg, "filter") or {}
    projection = _doc(arg, "projection")
    sort = _doc(arg, "sort")
    if action == "findOneAndDelete" or (action == "findOneAndReplace" and "update" not in arg):
        # realm-web 2.0.1 sends findOneAndDelete as findOneAndReplace without `update`.
        return await coll.find_one_and_delete(filter_, projection=projection, sort=sort)
    update = _doc(arg, "update", required=True)
    kwargs = {
        "projection": projection,
        "sort": sort,
        "upsert": _bool(arg, "upsert"),
        "return_new": _bool(arg, "returnNewDocument"),
    }
    if action == "findOneAndUpdate":
        return await coll.find_one_and_update(filter_, update, **kwargs)
    return await coll.find_one_and_replace(filter_, update, **kwargs)
