"""Role resolution, filters and the read/write flowcharts of App Services' rules, per document.

A :class:`RuleBook` holds every rule of the server and finds the roles and
filters of one namespace; a :class:`Policy` applies them for one request (one
user, one :class:`ExpressionEnv`). Nothing here touches storage: callers hand in
documents and get back the readable view of a document, or a :class:`RuleDenied`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from bson.regex import Regex

from ._expressions import MISSING, ExpressionEnv, Scope, evaluate, expand
from ._model import DefaultRule, FieldRule, NamespaceRule, QueryFilter, Role

__all__ = [
    "REFUSED_QUERY_OPERATORS",
    "REFUSED_STAGES",
    "Policy",
    "RuleBook",
    "RuleDenied",
    "check_pipeline",
    "check_query",
]

#: Query operators application users may not use (App Services refuses them too).
REFUSED_QUERY_OPERATORS = frozenset(
    {
        "$expr",
        "$jsonSchema",
        "$regex",
        "$text",
        "$where",
        "$geoIntersects",
        "$geoWithin",
        "$near",
        "$nearSphere",
        "$bitsAllClear",
        "$bitsAllSet",
        "$bitsAnyClear",
        "$bitsAnySet",
    }
)
#: Aggregation stages (and system-only expression operators) application users may not use.
REFUSED_STAGES = frozenset(
    {
        "$collStats",
        "$facet",
        "$geoNear",
        "$graphLookup",
        "$indexStats",
        "$lookup",
        "$merge",
        "$out",
        "$unionWith",
        "$currentOp",
        "$listSessions",
        "$planCacheStats",
        "$documents",
        "$changeStream",
        "$search",
        "$searchMeta",
        "$function",
        "$accumulator",
        "$setIsSubset",
    }
)
_SYSTEM_DATABASES = frozenset({"admin", "local", "config"})


class RuleDenied(Exception):
    """A request the rules refuse. ``code`` is the App Services ``error_code``; ``kind`` says why.

    ``kind``: ``"no_rule"`` (namespace without rule), ``"denied"`` (a role refused a
    write), ``"not_allowed"`` (an operator or stage application users may not use).
    """

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message

    @classmethod
    def no_rule(cls, database: str, collection: str) -> RuleDenied:
        return cls(
            "no_rule", "NoMatchingRuleFound", f"no rule exists for namespace '{database}.{collection}'"
        )

    @classmethod
    def write(cls, action: str) -> RuleDenied:
        return cls("denied", "NoMatchingRuleFound", f"{action} not permitted")

    @classmethod
    def not_allowed(cls, what: str) -> RuleDenied:
        return cls("not_allowed", "ArgumentsNotAllowed", f"{what} is not allowed for application users")


@attrs.frozen
class NamespaceRules:
    """The roles and filters that govern one namespace."""

    roles: tuple[Role, ...]
    filters: tuple[QueryFilter, ...]


@attrs.frozen
class RuleBook:
    """Every namespace rule and default rule of the server (``service`` None = every service)."""

    rules: tuple[NamespaceRule, ...] = ()
    default_rules: tuple[DefaultRule, ...] = ()

    def lookup(self, service: str, database: str, collection: str) -> NamespaceRules:
        """The namespace's own roles, else the service's default roles; RuleDenied if neither exists."""
        if database in _SYSTEM_DATABASES:
            raise RuleDenied.no_rule(database, collection)
        own = _pick([r for r in self.rules if r.database == database and r.collection == collection], service)
        default = _pick(list(self.default_rules), service)
        if own is None and default is None:
            raise RuleDenied.no_rule(database, collection)
        # A collection with roles of its own never falls back to the default roles (App Services).
        if own is not None and (own.roles or default is None):
            return NamespaceRules(own.roles, own.filters)
        assert default is not None
        return NamespaceRules(default.roles, own.filters if own is not None else default.filters)


def _pick(candidates: Sequence[Any], service: str) -> Any:
    """The rule naming ``service`` beats one for every service."""
    exact = [c for c in candidates if c.service == service]
    if exact:
        return exact[0]
    every = [c for c in candidates if c.service is None]
    return every[0] if every else None


class Policy:
    """The rules of one namespace applied for one request."""

    def __init__(self, rules: NamespaceRules, env: ExpressionEnv) -> None:
        self.rules = rules
        self.env = env

    # -- filters ---------------------------------------------------------------------------------

    async def filters(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The queries and the merged projection of every filter whose ``apply_when`` holds.

        ``apply_when`` sees no document (filters run before any document is read).
        """
        queries: list[dict[str, Any]] = []
        projection: dict[str, int] = {}
        for item in self.rules.filters:
            if not await evaluate(item.apply_when, self.env):
                continue
            if item.query:
                query = await expand(item.query, self.env)
                # A filter whose expansion is missing (a user without that field) matches nothing.
                queries.append(query if not _has_missing(query) else {"_id": {"$in": []}})
            for key, flag in item.projection.items():
                if key in projection and projection[key] != flag:
                    raise RuleDenied(
                        "not_allowed", "InvalidParameter", f"filter projections conflict on {key!r}"
                    )
                projection[key] = flag
        if len({v for k, v in projection.items() if k != "_id"}) > 1:
            raise RuleDenied(
                "not_allowed", "InvalidParameter", "filter projections mix inclusion and exclusion"
            )
        return queries, projection

    # -- roles -----------------------------------------------------------------------------------

    async def role_for(self, scope: Scope) -> Role | None:
        """The first role (in order) whose ``apply_when`` holds for ``scope``'s ``%%root``."""
        for role in self.rules.roles:
            if await evaluate(role.apply_when, self.env, scope):
                return role
        return None

    # -- read flowchart --------------------------------------------------------------------------

    async def readable(self, doc: Mapping[str, Any], *, search: bool = False) -> dict[str, Any] | None:
        """``doc`` as the user may see it (unreadable fields removed), or None if it is not readable."""
        scope = Scope(root=doc, prev_root=doc)
        role = await self.role_for(scope)
        if role is None:
            return None
        if search and not await evaluate(role.search, self.env, scope):
            return None
        df = role.document_filters
        if df is not None and not (
            await _holds(df.read, self.env, scope, True) or await _holds(df.write, self.env, scope, True)
        ):
            return None
        read = await _optional(role.read, self.env, scope)
        write = await _optional(role.write, self.env, scope)
        if read is True or write is True:
            return dict(doc)
        if read is False:
            return None
        view = await self._read_fields(doc, role.fields, role.additional_fields, scope)
        if not view:
            return None
        if "_id" in doc:
            # The id of a readable document is always readable; it is how clients address it.
            view = {"_id": doc["_id"], **{k: v for k, v in view.items() if k != "_id"}}
        return view

    async def _read_fields(
        self,
        doc: Mapping[str, Any],
        fields: Mapping[str, FieldRule],
        additional: FieldRule | None,
        scope: Scope,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in doc.items():
            entry = fields.get(key, additional)
            if entry is None:
                continue
            here = attrs.evolve(scope, this=value, prev=value)
            if entry.read is not None or entry.write is not None:
                # A rule on an embedded document overrides the rules of its sub-fields.
                if await _holds(entry.read, self.env, here, False) or await _holds(
                    entry.write, self.env, here, False
                ):
                    out[key] = value
            elif entry.fields and isinstance(value, Mapping):
                sub = await self._read_fields(value, entry.fields, None, scope)
                if sub:
                    out[key] = sub
        return out

    # -- write flowchart -------------------------------------------------------------------------

    async def check_insert(self, doc: Mapping[str, Any]) -> None:
        """RuleDenied unless the new document passes its role's write and insert."""
        scope = Scope(root=doc)
        role = await self.role_for(scope)
        if role is None or not await self._may_write(role, scope, {}, doc, "insert"):
            raise RuleDenied.write("insert")

    async def check_update(self, pre: Mapping[str, Any], post: Mapping[str, Any]) -> None:
        """RuleDenied unless the roles of the document before AND after the write both allow it.

        Checking the role of the pre-image stops writes to other users' documents; the
        role of the post-image stops a write that moves a document out of the user's
        permission (``%%root`` moves).
        """
        scope = Scope(root=post, prev_root=pre)
        before = await self.role_for(Scope(root=pre, prev_root=pre))
        after = await self.role_for(scope)
        if before is None or after is None:
            raise RuleDenied.write("update")
        for role in (before,) if before is after else (before, after):
            if not await self._may_write(role, scope, pre, post, "update"):
                raise RuleDenied.write("update")

    async def check_delete(self, pre: Mapping[str, Any]) -> None:
        """RuleDenied unless the document's role allows deleting it."""
        scope = Scope(root=pre, prev_root=pre)
        role = await self.role_for(scope)
        if role is None or not await self._may_write(role, scope, pre, {}, "delete"):
            raise RuleDenied.write("delete")

    async def _may_write(
        self, role: Role, scope: Scope, pre: Mapping[str, Any], post: Mapping[str, Any], action: str
    ) -> bool:
        df = role.document_filters
        if df is not None and not await _holds(df.write, self.env, scope, True):
            return False
        if action == "delete" and not await evaluate(role.delete, self.env, scope):
            return False
        write = await _optional(role.write, self.env, scope)
        if write is False:
            return False
        if write is None and not await self._write_fields(
            pre, post, role.fields, role.additional_fields, scope
        ):
            return False
        return action != "insert" or await evaluate(role.insert, self.env, scope)

    async def _write_fields(
        self,
        pre: Mapping[str, Any],
        post: Mapping[str, Any],
        fields: Mapping[str, FieldRule],
        additional: FieldRule | None,
        scope: Scope,
        top: bool = True,
    ) -> bool:
        for key in list(pre) + [k for k in post if k not in pre]:
            before, after = pre.get(key, MISSING), post.get(key, MISSING)
            if top and key == "_id":
                continue  # set once on insert, never changed by an update
            if _same_value(before, after):
                continue
            entry = fields.get(key, additional)
            if entry is None:
                return False
            here = attrs.evolve(scope, this=after, prev=before)
            if entry.write is not None:
                if not await evaluate(entry.write, self.env, here):
                    return False
            elif (
                entry.fields
                and isinstance(before, Mapping | _MissingType)
                and isinstance(after, Mapping | _MissingType)
            ):
                sub_pre = before if isinstance(before, Mapping) else {}
                sub_post = after if isinstance(after, Mapping) else {}
                if not await self._write_fields(sub_pre, sub_post, entry.fields, None, scope, top=False):
                    return False
            else:
                return False
        return True


_MissingType = type(MISSING)


async def _optional(expr: Any, env: ExpressionEnv, scope: Scope) -> bool | None:
    return None if expr is None else await evaluate(expr, env, scope)


async def _holds(expr: Any, env: ExpressionEnv, scope: Scope, unset: bool) -> bool:
    return unset if expr is None else await evaluate(expr, env, scope)


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except Exception:  # values that refuse comparison count as changed
        return False


def _has_missing(value: Any) -> bool:
    if value is MISSING:
        return True
    if isinstance(value, Mapping):
        return any(_has_missing(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_missing(v) for v in value)
    return False


def merge_query(query: Mapping[str, Any] | None, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The request's query with every filter query ANDed in."""
    parts = [dict(query)] if query else []
    parts.extend(dict(f) for f in filters)
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def check_query(query: Any, where: str = "query") -> None:
    """RuleDenied for operators application users may not use (anywhere in ``query``)."""
    if isinstance(query, Regex | re.Pattern):
        raise RuleDenied.not_allowed(f"a regular expression in {where!r}")
    if isinstance(query, Mapping):
        for key, value in query.items():
            if key in REFUSED_QUERY_OPERATORS:
                raise RuleDenied.not_allowed(f"the query operator {key!r}")
            check_query(value, where)
    elif isinstance(query, list):
        for item in query:
            check_query(item, where)


def check_pipeline(pipeline: Sequence[Any]) -> None:
    """RuleDenied for stages and operators application users may not use in ``aggregate``."""

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in REFUSED_STAGES:
                    raise RuleDenied.not_allowed(f"the aggregation stage or operator {key!r}")
                if key in REFUSED_QUERY_OPERATORS:
                    raise RuleDenied.not_allowed(f"the query operator {key!r}")
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, Regex | re.Pattern):
            raise RuleDenied.not_allowed("a regular expression in a pipeline")

    walk(list(pipeline))
