"""The parsed rule model, in App Services' own shapes, and its parser.

A rule file is the JSON App Services exports (``rules.json`` of a namespace,
``default_rule.json`` of a service); the TOML config carries the same keys.
Parsing checks every key and type and names the offending key path
(``roles[0].fields.notes.read``) in :class:`RuleConfigError`, so a typo in a rule
is an error at start-up, never a silently open or closed collection.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "DefaultRule",
    "DocumentFilters",
    "Expression",
    "FieldRule",
    "NamespaceRule",
    "QueryFilter",
    "Role",
    "RuleConfigError",
    "parse_default_rule",
    "parse_namespace_rule",
]

#: A rule expression: ``true``, ``false`` or a JSON object (see ``_expressions``).
Expression = bool | Mapping[str, Any]

_NAME_MAX = 100


class RuleConfigError(ValueError):
    """A rule document of the wrong shape; the message names the key path."""


@attrs.frozen
class FieldRule:
    """``fields.<f>`` (and ``additional_fields``): read/write of one field; ``None`` = not set (false)."""

    read: bool | Mapping[str, Any] | None = None
    write: bool | Mapping[str, Any] | None = None
    fields: Mapping[str, FieldRule] = attrs.field(factory=dict)


@attrs.frozen
class DocumentFilters:
    """``document_filters``: gates a role's read/write; an unset value counts as true (non-Sync)."""

    read: bool | Mapping[str, Any] | None = None
    write: bool | Mapping[str, Any] | None = None


@attrs.frozen
class Role:
    """One role of a namespace (or of the default rule), as App Services defines it."""

    name: str
    apply_when: bool | Mapping[str, Any] = attrs.field(factory=dict)
    document_filters: DocumentFilters | None = None
    read: bool | Mapping[str, Any] | None = None
    write: bool | Mapping[str, Any] | None = None
    insert: bool | Mapping[str, Any] = True
    delete: bool | Mapping[str, Any] = True
    search: bool | Mapping[str, Any] = True
    fields: Mapping[str, FieldRule] = attrs.field(factory=dict)
    additional_fields: FieldRule | None = None


@attrs.frozen
class QueryFilter:
    """A filter: when ``apply_when`` holds, ``query`` and ``projection`` join every request."""

    name: str
    apply_when: bool | Mapping[str, Any] = attrs.field(factory=dict)
    query: Mapping[str, Any] = attrs.field(factory=dict)
    projection: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class NamespaceRule:
    """``<db>/<coll>/rules.json``; ``service`` None = every MongoDB service of the server."""

    database: str
    collection: str
    roles: tuple[Role, ...] = ()
    filters: tuple[QueryFilter, ...] = ()
    service: str | None = None


@attrs.frozen
class DefaultRule:
    """``default_rule.json``: roles for every namespace of the service without roles of its own."""

    roles: tuple[Role, ...] = ()
    filters: tuple[QueryFilter, ...] = ()
    service: str | None = None


# ---------------------------------------------------------------------------------------- parsing

_ROLE_KEYS = frozenset(
    {
        "name",
        "apply_when",
        "document_filters",
        "read",
        "write",
        "insert",
        "delete",
        "search",
        "fields",
        "additional_fields",
    }
)
_FILTER_KEYS = frozenset({"name", "apply_when", "query", "projection"})
_FIELD_KEYS = frozenset({"read", "write", "fields"})


def parse_namespace_rule(
    data: Any,
    *,
    service: str | None = None,
    database: str | None = None,
    collection: str | None = None,
    where: str = "rule",
) -> NamespaceRule:
    """A namespace rule from its JSON/TOML document.

    ``database``/``collection`` given (an export's directory path) win over the
    document's keys, which may then be absent; given both ways they must agree.
    Keys App Services exports that do not affect enforcement here (``schema``
    lives in its own file, ``_id``/``id`` are export bookkeeping) are accepted.
    """
    doc = _object(data, where)
    _known(doc, {"database", "collection", "roles", "filters", "service", "_id", "id"}, where)
    names: dict[str, str | None] = {"database": database, "collection": collection}
    for key, given in list(names.items()):
        value = doc.get(key)
        if value is not None and not (isinstance(value, str) and value):
            raise RuleConfigError(f"{where}.{key} must be a non-empty string")
        if given is not None and value is not None and value != given:
            raise RuleConfigError(f"{where}.{key} is {value!r} but the rule's path says {given!r}")
        names[key] = given if given is not None else value
        if names[key] is None:
            raise RuleConfigError(f"{where}.{key} is required")
    svc = doc.get("service", service)
    if svc is not None and not (isinstance(svc, str) and svc):
        raise RuleConfigError(f"{where}.service must be a non-empty string")
    db, coll = names["database"], names["collection"]
    assert db is not None and coll is not None
    return NamespaceRule(
        database=db,
        collection=coll,
        roles=_roles(doc.get("roles", []), f"{where}.roles"),
        filters=_filters(doc.get("filters", []), f"{where}.filters"),
        service=svc,
    )


def parse_default_rule(data: Any, *, service: str | None = None, where: str = "default_rule") -> DefaultRule:
    """A service's default rule from its JSON/TOML document (``roles``, ``filters``)."""
    doc = _object(data, where)
    _known(doc, {"roles", "filters", "service", "_id", "id"}, where)
    svc = doc.get("service", service)
    if svc is not None and not (isinstance(svc, str) and svc):
        raise RuleConfigError(f"{where}.service must be a non-empty string")
    return DefaultRule(
        roles=_roles(doc.get("roles", []), f"{where}.roles"),
        filters=_filters(doc.get("filters", []), f"{where}.filters"),
        service=svc,
    )


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RuleConfigError(f"{where} must be an object")
    for key in data:
        if not isinstance(key, str):
            raise RuleConfigError(f"{where} has a non-string key")
    return data


def _known(doc: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise RuleConfigError(f"{where}.{unknown[0]} is not a known key{hint}")


def _array(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise RuleConfigError(f"{where} must be an array")
    return value


def _name(doc: Mapping[str, Any], where: str) -> str:
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise RuleConfigError(f"{where}.name is required (a non-empty string)")
    if len(name) > _NAME_MAX:
        raise RuleConfigError(f"{where}.name is longer than {_NAME_MAX} characters")
    return name


def _roles(value: Any, where: str) -> tuple[Role, ...]:
    roles: list[Role] = []
    seen: set[str] = set()
    for i, item in enumerate(_array(value, where)):
        at = f"{where}[{i}]"
        doc = _object(item, at)
        _known(doc, _ROLE_KEYS, at)
        name = _name(doc, at)
        if name in seen:
            raise RuleConfigError(f"{at}.name {name!r} is not unique")
        seen.add(name)
        df = doc.get("document_filters")
        filters = None
        if df is not None:
            dfd = _object(df, f"{at}.document_filters")
            _known(dfd, {"read", "write"}, f"{at}.document_filters")
            filters = DocumentFilters(
                read=_optional_expr(dfd, "read", f"{at}.document_filters"),
                write=_optional_expr(dfd, "write", f"{at}.document_filters"),
            )
        additional = doc.get("additional_fields")
        roles.append(
            Role(
                name=name,
                apply_when=_expr(doc.get("apply_when", {}), f"{at}.apply_when"),
                document_filters=filters,
                read=_optional_expr(doc, "read", at),
                write=_optional_expr(doc, "write", at),
                insert=_expr(doc.get("insert", True), f"{at}.insert"),
                delete=_expr(doc.get("delete", True), f"{at}.delete"),
                search=_expr(doc.get("search", True), f"{at}.search"),
                fields=_fields(doc.get("fields", {}), f"{at}.fields"),
                additional_fields=None
                if additional is None
                else _field(additional, f"{at}.additional_fields"),
            )
        )
    return tuple(roles)


def _fields(value: Any, where: str) -> dict[str, FieldRule]:
    doc = _object(value, where)
    out: dict[str, FieldRule] = {}
    for key, item in doc.items():
        if not key or key.startswith("$") or "." in key:
            raise RuleConfigError(f"{where}.{key} is not a valid field name")
        out[key] = _field(item, f"{where}.{key}")
    return out


def _field(value: Any, where: str) -> FieldRule:
    doc = _object(value, where)
    _known(doc, _FIELD_KEYS, where)
    return FieldRule(
        read=_optional_expr(doc, "read", where),
        write=_optional_expr(doc, "write", where),
        fields=_fields(doc.get("fields", {}), f"{where}.fields"),
    )


def _filters(value: Any, where: str) -> tuple[QueryFilter, ...]:
    out: list[QueryFilter] = []
    for i, item in enumerate(_array(value, where)):
        at = f"{where}[{i}]"
        doc = _object(item, at)
        _known(doc, _FILTER_KEYS, at)
        query = doc.get("query", {})
        projection = doc.get("projection", {})
        _object(query, f"{at}.query")
        from ._expressions import check_query

        try:
            check_query(query, f"{at}.query")
        except ValueError as exc:
            raise RuleConfigError(str(exc)) from None
        _object(projection, f"{at}.projection")
        for key, flag in projection.items():
            if isinstance(flag, bool) or flag not in (0, 1):
                raise RuleConfigError(f"{at}.projection.{key} must be 0 or 1")
        if len({int(v) for k, v in projection.items() if k != "_id"}) > 1:
            raise RuleConfigError(f"{at}.projection mixes inclusion and exclusion")
        out.append(
            QueryFilter(
                name=_name(doc, at),
                apply_when=_expr(doc.get("apply_when", {}), f"{at}.apply_when"),
                query=dict(query),
                projection={k: int(v) for k, v in projection.items()},
            )
        )
    return tuple(out)


def _optional_expr(doc: Mapping[str, Any], key: str, where: str) -> bool | Mapping[str, Any] | None:
    if key not in doc or doc[key] is None:
        return None
    return _expr(doc[key], f"{where}.{key}")


def _expr(value: Any, where: str) -> bool | Mapping[str, Any]:
    if isinstance(value, bool):
        return value
    if not isinstance(value, Mapping):
        raise RuleConfigError(f"{where} must be true, false or an expression object")
    from ._expressions import check_expression

    try:
        check_expression(value)
    except ValueError as exc:
        raise RuleConfigError(f"{where}: {exc}") from None
    return value
