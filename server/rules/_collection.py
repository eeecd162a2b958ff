"""Enforcement: a ``DocumentCollection`` that applies one user's rules to every action.

:class:`RuledCollection` has the store collection's interface, so the MongoDB
service and ``context.services`` in functions use it exactly like the raw one.

* Reads run the query with the filters' queries ANDed in, then keep only the
  documents the user may read, with unreadable fields removed, before the
  projection, the limit or an aggregation pipeline sees them.
* Writes are all-or-nothing. Documents the user cannot read do not exist for
  them (the write is narrowed to the readable ones). The store then computes
  the write without committing it (a *dry run* through the store's write guard),
  every pre- and post-image is checked, and only then is the write made, with a
  guard that refuses it if any affected document changed in between (then the
  whole check runs again).
* ``watch`` drops the events the user could not read and applies field-level
  reads to ``fullDocument`` and ``updateDescription``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs
from bson.objectid import ObjectId

from ..documents import Projection, document_matches, run_pipeline
from ._expressions import ExpressionEnv, FunctionHook
from ._policy import Policy, RuleBook, RuleDenied, _same_value, check_pipeline, check_query, merge_query

__all__ = ["RuleEnforcer", "RuledChangeStream", "RuledCollection", "WriteConflict", "user_document"]

T = TypeVar("T")
Pairs = list[tuple[dict[str, Any] | None, dict[str, Any] | None]]
Guard = Callable[[Pairs], None]

#: How often a write is re-checked when documents keep changing under it.
_ATTEMPTS = 8


class WriteConflict(RuleDenied):
    """The affected documents changed during every attempt to check and apply a write."""

    def __init__(self) -> None:
        super().__init__("conflict", "MongoDBError", "write conflict: the documents kept changing; retry")


class _DryRun(Exception):
    pass


class _Stale(Exception):
    pass


class _Recorder:
    def __init__(self) -> None:
        self.pairs: Pairs = []

    def __call__(self, pairs: Pairs) -> None:
        self.pairs = pairs
        raise _DryRun


class _NeedsAsync(Exception):
    pass


async def _no_function(name: str, args: list[Any]) -> Any:
    raise _NeedsAsync


def _run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (rule checks without ``%function``) to its end."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise _NeedsAsync


class _Verifier:
    """The real write's guard: the images checked must be the images written.

    If another write changed the documents in between, the new images are checked
    right here, on the store's worker, before anything is committed; only a rule that
    calls a function (which cannot run there) sends the whole check round again.
    """

    def __init__(self, checked: Pairs, policy: Policy) -> None:
        self._checked = checked
        self._policy = policy

    def __call__(self, pairs: Pairs) -> None:
        if len(pairs) == len(self._checked) and all(
            (pre is None and old is None) or (pre is not None and old is not None and _same_value(pre, old))
            for (pre, _), (old, _) in zip(pairs, self._checked, strict=True)
        ):
            return
        here = Policy(self._policy.rules, attrs.evolve(self._policy.env, function=_no_function))
        try:
            _run_now(_check_pairs(here, pairs))
        except _NeedsAsync:
            raise _Stale from None


async def _check_pairs(policy: Policy, pairs: Pairs) -> None:
    for pre, post in pairs:
        if pre is None:
            assert post is not None
            await policy.check_insert(post)
        elif post is None:
            await policy.check_delete(pre)
        else:
            await policy.check_update(pre, post)


def _no_lookup(name: str, filter: Mapping[str, Any]) -> list[dict[str, Any]]:
    raise RuleDenied.not_allowed("reading another collection in a pipeline")


class RuledCollection:
    """One collection as one (non-system) user may use it; see the module docstring."""

    def __init__(self, raw: Any, policy: Policy | RuleDenied) -> None:
        self._raw = raw
        self._policy = policy

    def __repr__(self) -> str:
        return f"<RuledCollection {self._raw!r}>"

    @property
    def policy(self) -> Policy:
        """The namespace's policy; raises the namespace's RuleDenied when it has no rule."""
        if isinstance(self._policy, RuleDenied):
            raise self._policy
        return self._policy

    async def _query(self, query: Mapping[str, Any] | None) -> tuple[dict[str, Any], Projection]:
        policy = self.policy
        if query is not None and not isinstance(query, Mapping):
            raise TypeError("a filter must be a document")
        check_query(query)
        queries, projection = await policy.filters()
        return merge_query(query, queries), Projection(projection)

    async def _readable(
        self, query: Mapping[str, Any] | None, sort: Any = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        merged, filter_projection = await self._query(query)
        out: list[dict[str, Any]] = []
        for doc in await self._raw.find(merged, sort=sort):
            view = await self.policy.readable(doc)
            if view is None:
                continue
            out.append(filter_projection.apply(view))
            if limit and len(out) >= limit:
                break
        return out

    # -- reads -----------------------------------------------------------------------------------

    async def find(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Readable matching documents, field rules applied, then projected and limited."""
        user_projection = Projection(projection)
        return [user_projection.apply(d) for d in await self._readable(filter, sort, limit)]

    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
    ) -> dict[str, Any] | None:
        """The first readable matching document, or None."""
        docs = await self.find(filter, projection=projection, sort=sort, limit=1)
        return docs[0] if docs else None

    async def count(self, filter: Mapping[str, Any] | None = None, *, limit: int | None = None) -> int:
        """How many readable documents match."""
        return len(await self._readable(filter, None, limit if limit and limit > 0 else None))

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The pipeline over the readable documents only, as the user may see them."""
        if not isinstance(pipeline, list | tuple):
            raise TypeError("a pipeline must be an array of stages")
        check_pipeline(pipeline)
        docs = await self._readable(None)
        stages = list(pipeline)
        compute = getattr(self._raw, "compute", None)
        if compute is not None:
            # The embedded store's worker: its time limit and nesting checks, as for a raw aggregate.
            result: list[dict[str, Any]] = await compute(
                lambda: run_pipeline(docs, stages, _no_lookup), queries=(stages,), passing=(RuleDenied,)
            )
            return result
        return await asyncio.to_thread(run_pipeline, docs, stages, _no_lookup)

    # -- inserts ---------------------------------------------------------------------------------

    async def insert_one(self, doc: Mapping[str, Any]) -> Any:
        """Insert ``doc`` if its role allows insert and write."""
        (prepared,) = await self._check_inserts([doc])
        return await self._raw.insert_one(prepared)

    async def insert_many(self, docs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert every document, or none if the rules refuse any of them."""
        prepared = await self._check_inserts(docs)
        return list(await self._raw.insert_many(prepared))

    async def _check_inserts(self, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        policy = self.policy
        prepared: list[dict[str, Any]] = []
        for doc in docs:
            if not isinstance(doc, Mapping):
                raise TypeError("a document must be an object")
            # The id is fixed now, so the document checked is the document stored.
            new = {
                "_id": doc["_id"] if "_id" in doc else ObjectId(),
                **{k: v for k, v in doc.items() if k != "_id"},
            }
            await policy.check_insert(new)
            prepared.append(new)
        return prepared

    # -- updates and deletes ---------------------------------------------------------------------

    async def _write(
        self, query: Mapping[str, Any], sort: Any, run: Callable[[dict[str, Any], Guard], Awaitable[T]]
    ) -> T:
        merged, _ = await self._query(query)
        policy = self.policy
        for _ in range(_ATTEMPTS):
            # Documents the user cannot read are not there for them: the write never reaches them.
            ids = [
                d["_id"]
                for d in await self._raw.find(merged, sort=sort)
                if await policy.readable(d) is not None
            ]
            narrowed = merge_query(merged, [{"_id": {"$in": ids}}])
            recorder = _Recorder()
            try:
                await run(narrowed, recorder)
            except _DryRun:
                pass
            await _check_pairs(policy, recorder.pairs)
            try:
                return await run(narrowed, _Verifier(recorder.pairs, policy))
            except _Stale:
                continue
        raise WriteConflict

    async def update_one(
        self,
        filter: Mapping[str, Any],
        update: Any,
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> Any:
        """Update the first readable match if the rules allow the result."""
        return await self._write(
            filter,
            None,
            lambda q, g: self._raw.update_one(q, update, upsert=upsert, array_filters=array_filters, guard=g),
        )

    async def update_many(
        self,
        filter: Mapping[str, Any],
        update: Any,
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> Any:
        """Update every readable match, or none if the rules refuse any of them."""
        return await self._write(
            filter,
            None,
            lambda q, g: self._raw.update_many(
                q, update, upsert=upsert, array_filters=array_filters, guard=g
            ),
        )

    async def delete_one(self, filter: Mapping[str, Any]) -> int:
        """Delete the first readable match if its role allows delete."""
        return int(await self._write(filter, None, lambda q, g: self._raw.delete_one(q, guard=g)))

    async def delete_many(self, filter: Mapping[str, Any]) -> int:
        """Delete every readable match, or none if the rules refuse any of them."""
        return int(await self._write(filter, None, lambda q, g: self._raw.delete_many(q, guard=g)))

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
        upsert: bool = False,
        return_new: bool = False,
    ) -> dict[str, Any] | None:
        """findOneAndUpdate with the write checked and the returned image read-filtered."""
        user_projection = Projection(projection)
        image = await self._write(
            filter,
            sort,
            lambda q, g: self._raw.find_one_and_update(
                q, update, sort=sort, upsert=upsert, return_new=return_new, guard=g
            ),
        )
        return await self._image(image, user_projection)

    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
        upsert: bool = False,
        return_new: bool = False,
    ) -> dict[str, Any] | None:
        """findOneAndReplace with the write checked and the returned image read-filtered."""
        user_projection = Projection(projection)
        image = await self._write(
            filter,
            sort,
            lambda q, g: self._raw.find_one_and_replace(
                q, replacement, sort=sort, upsert=upsert, return_new=return_new, guard=g
            ),
        )
        return await self._image(image, user_projection)

    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
    ) -> dict[str, Any] | None:
        """findOneAndDelete with the delete checked and the returned document read-filtered."""
        user_projection = Projection(projection)
        image = await self._write(
            filter, sort, lambda q, g: self._raw.find_one_and_delete(q, sort=sort, guard=g)
        )
        return await self._image(image, user_projection)

    async def _image(self, image: dict[str, Any] | None, projection: Projection) -> dict[str, Any] | None:
        if image is None:
            return None
        view = await self.policy.readable(image)
        if view is None:
            return None
        _, filter_projection = await self._query(None)
        return projection.apply(filter_projection.apply(view))

    # -- watch -----------------------------------------------------------------------------------

    def watch(
        self, *, ids: Sequence[Any] | None = None, filter: Mapping[str, Any] | None = None
    ) -> RuledChangeStream:
        """Change events of documents the user may read, field rules applied."""
        policy = self.policy
        check_query(filter)
        return RuledChangeStream(self._raw.watch(ids=ids, filter=filter, pre_images=True), policy)

    async def open_watch(
        self, *, ids: Sequence[Any] | None = None, filter: Mapping[str, Any] | None = None
    ) -> RuledChangeStream:
        """``watch`` with the filters evaluated first.

        Filters see no document, so one that cannot be evaluated fails the request
        that opens the stream, not the stream at its first event.
        """
        policy = self.policy
        check_query(filter)
        found, spec = await policy.filters()
        stream = RuledChangeStream(self._raw.watch(ids=ids, filter=filter, pre_images=True), policy)
        stream._filters = (found, Projection(spec))
        return stream


class RuledChangeStream:
    """A change stream that sends only what the user could read."""

    def __init__(self, inner: Any, policy: Policy) -> None:
        self._inner = inner
        self._policy = policy
        # For next_nowait: the same rules, but a %function call stops the synchronous attempt.
        self._sync_policy = Policy(policy.rules, attrs.evolve(policy.env, function=_no_function))
        self._filters: tuple[list[dict[str, Any]], Projection] | None = None
        self._held: dict[str, Any] | None = None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self._held is not None:
                event, self._held = self._held, None
            else:
                event = await self._inner.__anext__()
            shown = await self._show(event, self._policy)
            if shown is not None:
                return shown

    def next_nowait(self) -> dict[str, Any] | None:
        """The next buffered event the user may see, ``None`` if there is none yet (as the inner stream).

        The SSE handler drains a stream through this without a task per event. An
        event whose check needs a ``%function`` (which cannot run synchronously)
        is held for ``__anext__``, so the order of events is kept.
        """
        inner_next = getattr(self._inner, "next_nowait", None)
        if inner_next is None or self._held is not None:
            return None
        while True:
            event: dict[str, Any] | None = inner_next()
            if event is None:
                return None
            try:
                shown = _run_now(self._show(event, self._sync_policy))
            except _NeedsAsync:
                self._held = event
                return None
            if shown is not None:
                return shown

    async def _show(self, event: dict[str, Any], policy: Policy) -> dict[str, Any] | None:
        """``event`` as the user may see it, or None; ``event`` is changed only once nothing can suspend."""
        if self._filters is None:
            found, spec = await policy.filters()
            self._filters = (found, Projection(spec))
        queries, projection = self._filters
        before = event.get("fullDocumentBeforeChange")
        image = before if event.get("operationType") == "delete" else event.get("fullDocument")
        if not isinstance(image, dict) or not all(document_matches(q, image) for q in queries):
            return None
        view = await policy.readable(image)
        if view is None:
            return None
        view = projection.apply(view)
        description = event.get("updateDescription")
        # A removed field is no longer in the post-image: it shows if the pre-image showed it.
        shown = (
            await policy.readable(before)
            if isinstance(description, dict) and isinstance(before, dict)
            else None
        )
        event.pop("fullDocumentBeforeChange", None)
        if "fullDocument" in event:
            event["fullDocument"] = view
        if isinstance(description, dict):
            description["updatedFields"] = {
                k: v for k, v in description.get("updatedFields", {}).items() if k.split(".")[0] in view
            }
            description["removedFields"] = [
                k
                for k in description.get("removedFields", [])
                if shown is not None and k.split(".")[0] in shown
            ]
        return event

    def add_fail_callback(self, callback: Callable[[Exception], object]) -> None:
        """The inner stream's failure callback (its reader fell behind), when it has one.

        Its byte budget bounds what a stalled reader costs; this lets the SSE
        handler cut a reader that never comes back for the error event.
        """
        add = getattr(self._inner, "add_fail_callback", None)
        if add is not None:
            add(callback)

    async def aclose(self) -> None:
        await self._inner.aclose()


@attrs.frozen
class RuleEnforcer:
    """The server's rules plus the app's values and environment: hands out ruled collections."""

    book: RuleBook = attrs.field(factory=RuleBook)
    values: Mapping[str, Any] = attrs.field(factory=dict)
    environment: Mapping[str, Any] = attrs.field(factory=lambda: {"tag": "", "values": {}})

    def collection(
        self,
        raw: Any,
        *,
        service: str,
        database: str,
        collection: str,
        user: Mapping[str, Any],
        request: Mapping[str, Any] | None = None,
        function: FunctionHook | None = None,
    ) -> RuledCollection:
        """``raw`` under the rules of ``service``/``database``/``collection`` for ``user`` (a ``%%user``)."""
        env = ExpressionEnv(
            user=user,
            values=self.values,
            environment=self.environment,
            request=request or {},
            function=function,
        )
        return self.with_env(raw, service=service, database=database, collection=collection, env=env)

    def with_env(
        self, raw: Any, *, service: str, database: str, collection: str, env: ExpressionEnv
    ) -> RuledCollection:
        """``raw`` under the rules of the namespace, with ``env`` as the expressions' world."""
        try:
            rules = self.book.lookup(service, database, collection)
        except RuleDenied as denied:
            return RuledCollection(raw, denied)
        return RuledCollection(raw, Policy(rules, env))


def user_document(
    *,
    id: str,
    type: str,
    data: Mapping[str, Any],
    custom_data: Mapping[str, Any],
    identities: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """``%%user``: ``{id, type, data, custom_data, identities: [{id, provider_type}]}``."""
    return {
        "id": id,
        "type": type,
        "data": dict(data),
        "custom_data": dict(custom_data),
        "identities": [
            {
                "id": i.get("id"),
                "provider_type": i.get("provider_type"),
                "providerType": i.get("provider_type"),
            }
            for i in identities
        ],
    }
