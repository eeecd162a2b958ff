// Remote MongoDB through user.mongoClient("mongodb-atlas"): every collection operation
// realm-web offers, checked against the documents it should touch, plus `watch`.
import { assert, Realm, expectServiceError, makeApp, rejects, scenario, step } from "./_harness.mjs";

const { ObjectId, Decimal128 } = Realm.BSON;

await scenario(async () => {
  const { app, http } = makeApp();
  const user = await app.logIn(Realm.Credentials.anonymous());
  const mongo = user.mongoClient("mongodb-atlas");
  // The one namespace the server's settings open to every user (MONGODB_CONFIG in _scenarios.py).
  const collectionName = "items";
  const items = mongo.db("interop").collection(collectionName);
  const created = new Date("2024-01-31T12:00:00.123Z");
  let firstId;

  await step("mongo.insertOne", async () => {
    const result = await items.insertOne({ name: "apple", qty: 5, price: Decimal128.fromString("1.25"), created });
    assert.ok(result.insertedId instanceof ObjectId, "a generated _id comes back as an ObjectId");
    firstId = result.insertedId;
    return { insertedId: firstId.toHexString() };
  });

  await step("mongo.insertOne_with_id", async () => {
    const result = await items.insertOne({ _id: "custom-id", name: "kiwi", qty: 1 });
    assert.equal(result.insertedId, "custom-id", "a caller-chosen _id keeps its type");
    return result;
  });

  await step("mongo.insertMany", async () => {
    const result = await items.insertMany([
      { name: "banana", qty: 12, tags: ["yellow"] },
      { name: "cherry", qty: 40, tags: ["red", "small"] },
      { name: "date", qty: 7 },
    ]);
    assert.equal(result.insertedIds.length, 3);
    for (const id of result.insertedIds) {
      assert.ok(id instanceof ObjectId);
    }
    return { insertedIds: result.insertedIds.map((id) => id.toHexString()) };
  });

  await step("mongo.find_filter_projection_sort_limit", async () => {
    const docs = await items.find(
      { qty: { $gte: 5 } },
      { projection: { _id: 0, name: 1, qty: 1 }, sort: { qty: -1 }, limit: 3 },
    );
    assert.deepEqual(docs, [
      { name: "cherry", qty: 40 },
      { name: "banana", qty: 12 },
      { name: "date", qty: 7 },
    ]);
    const wire = http.log.findLast((e) => e.path.endsWith("/functions/call"));
    assert.equal(wire.contentType, "application/json");
    return docs;
  });

  await step("mongo.find_all_types_roundtrip", async () => {
    const docs = await items.find({ _id: firstId });
    assert.equal(docs.length, 1);
    const [doc] = docs;
    assert.ok(doc._id instanceof ObjectId && doc._id.equals(firstId));
    assert.ok(doc.created instanceof Date, "dates come back as Date");
    assert.equal(doc.created.getTime(), created.getTime(), "millisecond precision is kept");
    assert.ok(doc.price instanceof Decimal128, "Decimal128 comes back as Decimal128");
    assert.equal(doc.price.toString(), "1.25");
    return { created: doc.created.toISOString(), price: doc.price.toString() };
  });

  await step("mongo.findOne", async () => {
    const doc = await items.findOne({ name: "banana" }, { projection: { _id: 0, name: 1, tags: 1 } });
    assert.deepEqual(doc, { name: "banana", tags: ["yellow"] });
    const sorted = await items.findOne({}, { sort: { qty: 1 }, projection: { _id: 0, name: 1 } });
    assert.deepEqual(sorted, { name: "kiwi" });
    const missing = await items.findOne({ name: "durian" });
    assert.equal(missing, null);
    return { doc, sorted, missing };
  });

  await step("mongo.count", async () => {
    assert.equal(await items.count(), 5);
    assert.equal(await items.count({ qty: { $lt: 10 } }), 3);
    assert.equal(await items.count({}, { limit: 2 }), 2);
    return null;
  });

  await step("mongo.updateOne", async () => {
    const result = await items.updateOne({ name: "apple" }, { $inc: { qty: 1 }, $set: { ripe: true } });
    assert.deepEqual(result, { matchedCount: 1, modifiedCount: 1 });
    const doc = await items.findOne({ name: "apple" });
    assert.equal(doc.qty, 6);
    assert.equal(doc.ripe, true);
    const none = await items.updateOne({ name: "nothing" }, { $set: { x: 1 } });
    assert.deepEqual(none, { matchedCount: 0, modifiedCount: 0 });
    return result;
  });

  await step("mongo.updateOne_upsert", async () => {
    const result = await items.updateOne({ name: "fig" }, { $set: { qty: 3 } }, { upsert: true });
    assert.equal(result.matchedCount, 0);
    assert.equal(result.modifiedCount, 0);
    assert.ok(result.upsertedId instanceof ObjectId, "upsertedId is the new document's ObjectId");
    const doc = await items.findOne({ _id: result.upsertedId });
    assert.equal(doc.name, "fig");
    assert.equal(doc.qty, 3);
    return { upsertedId: result.upsertedId.toHexString() };
  });

  await step("mongo.updateMany", async () => {
    const result = await items.updateMany({ qty: { $lt: 10 } }, { $set: { low: true } });
    // apple(6), kiwi(1), date(7), fig(3)
    assert.deepEqual(result, { matchedCount: 4, modifiedCount: 4 });
    assert.equal(await items.count({ low: true }), 4);
    return result;
  });

  await step("mongo.updateMany_upsert", async () => {
    const result = await items.updateMany({ name: "grape" }, { $set: { qty: 50 } }, { upsert: true });
    assert.equal(result.matchedCount, 0);
    assert.ok(result.upsertedId instanceof ObjectId);
    assert.equal(await items.count({ name: "grape" }), 1);
    return { upsertedId: result.upsertedId.toHexString() };
  });

  await step("mongo.aggregate", async () => {
    const result = await items.aggregate([
      { $match: { qty: { $gte: 5 } } },
      { $group: { _id: "$low", total: { $sum: "$qty" }, n: { $sum: 1 } } },
      { $sort: { _id: 1 } },
    ]);
    // qty >= 5: apple 6 and date 7 are `low`; banana 12, cherry 40, grape 50 have no
    // `low` field (grouped under null, which sorts before true).
    assert.deepEqual(result, [
      { _id: null, total: 102, n: 3 },
      { _id: true, total: 13, n: 2 },
    ]);
    return result;
  });

  await step("mongo.findOneAndUpdate", async () => {
    const before = await items.findOneAndUpdate({ name: "banana" }, { $inc: { qty: 3 } }, { projection: { _id: 0, qty: 1 } });
    assert.deepEqual(before, { qty: 12 }, "returns the pre-image by default");
    const after = await items.findOneAndUpdate(
      { name: "banana" },
      { $inc: { qty: 3 } },
      { returnNewDocument: true, projection: { _id: 0, qty: 1 } },
    );
    assert.deepEqual(after, { qty: 18 }, "returnNewDocument gives the post-image");
    const upserted = await items.findOneAndUpdate(
      { name: "honeydew" },
      { $set: { qty: 2 } },
      { upsert: true, returnNewDocument: true },
    );
    assert.equal(upserted.name, "honeydew");
    assert.ok(upserted._id instanceof ObjectId);
    const missing = await items.findOneAndUpdate({ name: "nothing" }, { $set: { qty: 1 } });
    assert.equal(missing, null);
    return { before, after };
  });

  await step("mongo.findOneAndReplace", async () => {
    const before = await items.findOneAndReplace({ name: "date" }, { name: "date", qty: 70, replaced: true });
    assert.equal(before.qty, 7);
    assert.equal(before.replaced, undefined);
    const after = await items.findOne({ name: "date" }, { projection: { _id: 0 } });
    assert.deepEqual(after, { name: "date", qty: 70, replaced: true }, "replacement drops the old fields");
    const returned = await items.findOneAndReplace(
      { name: "date" },
      { name: "date", qty: 71 },
      { returnNewDocument: true, projection: { _id: 0 } },
    );
    assert.deepEqual(returned, { name: "date", qty: 71 });
    return { before: { qty: before.qty }, returned };
  });

  await step("mongo.findOneAndDelete", async () => {
    // realm-web 2.0.1 sends this as name "findOneAndReplace" without an `update` (spec §11.1).
    const countBefore = await items.count();
    const deleted = await items.findOneAndDelete({ name: "kiwi" });
    assert.ok(deleted, "returns the deleted document");
    assert.equal(deleted.name, "kiwi");
    assert.equal(await items.count(), countBefore - 1);
    assert.equal(await items.findOne({ name: "kiwi" }), null);
    const sortedDelete = await items.findOneAndDelete({ low: true }, { sort: { qty: -1 }, projection: { _id: 0, name: 1 } });
    // `low` is left on apple (6) and fig (3): the replacement above dropped date's.
    assert.deepEqual(sortedDelete, { name: "apple" }, "sort picks which document is deleted");
    return { deleted: deleted.name, sortedDelete };
  });

  await step("mongo.deleteOne", async () => {
    const result = await items.deleteOne({ name: "fig" });
    assert.deepEqual(result, { deletedCount: 1 });
    assert.deepEqual(await items.deleteOne({ name: "fig" }), { deletedCount: 0 });
    return result;
  });

  await step("mongo.deleteMany", async () => {
    const remaining = await items.count();
    const result = await items.deleteMany({ qty: { $gte: 0 } });
    assert.deepEqual(result, { deletedCount: remaining });
    assert.equal(await items.count(), 0);
    return { deletedCount: result.deletedCount };
  });

  // -- watch -----------------------------------------------------------------------
  // The stream request starts as soon as watch() is called; realm-web gives no signal
  // when the server has accepted it, so we wait until the recording fetch has seen the
  // 200 response head of the streaming GET before writing.
  const streamOpened = (count) => (log) =>
    log.filter((e) => e.method === "GET" && e.path.endsWith("/functions/call") && e.status === 200).length >= count;

  await step("mongo.watch_insert", async () => {
    const stream = items.watch();
    const firstEvent = stream.next();
    await http.waitFor(streamOpened(1));
    const streamEntry = http.log.findLast((e) => e.method === "GET" && e.path.endsWith("/functions/call"));
    assert.ok(streamEntry.query.startsWith("?baas_request="));
    assert.ok(streamEntry.contentType.startsWith("text/event-stream"), `content type ${streamEntry.contentType}`);
    const { insertedId } = await items.insertOne({ name: "watched", qty: 1, at: created });
    const { value: event, done } = await firstEvent;
    assert.equal(done, false);
    assert.equal(event.operationType, "insert");
    assert.ok(event.documentKey._id.equals(insertedId));
    assert.ok(event.fullDocument._id.equals(insertedId));
    assert.equal(event.fullDocument.name, "watched");
    assert.ok(event.fullDocument.at instanceof Date && event.fullDocument.at.getTime() === created.getTime());
    assert.deepEqual(event.ns, { db: "interop", coll: collectionName });
    await stream.return();
    return { operationType: event.operationType, ns: event.ns };
  });

  await step("mongo.watch_ids_update_delete", async () => {
    const { insertedId } = await items.insertOne({ name: "tracked", qty: 1 });
    await items.insertOne({ name: "untracked", qty: 1 });
    const stream = items.watch({ ids: [insertedId] });
    const next = stream.next();
    await http.waitFor(streamOpened(2));
    // A change to another document must not show up on this stream.
    await items.updateOne({ name: "untracked" }, { $set: { qty: 2 } });
    await items.updateOne({ _id: insertedId }, { $set: { qty: 2, note: "100% done\nreally" } });
    const { value: update } = await next;
    assert.equal(update.operationType, "update");
    assert.ok(update.documentKey._id.equals(insertedId));
    // The % and newline survive the server's SSE escaping.
    assert.deepEqual(update.updateDescription.updatedFields, { qty: 2, note: "100% done\nreally" });
    await items.deleteOne({ _id: insertedId });
    const { value: del } = await stream.next();
    assert.equal(del.operationType, "delete");
    assert.ok(del.documentKey._id.equals(insertedId));
    await stream.return();
    return { events: [update.operationType, del.operationType] };
  });

  await step("mongo.watch_filter", async () => {
    const stream = items.watch({ filter: { operationType: "insert", "fullDocument.tag": "wanted" } });
    const next = stream.next();
    await http.waitFor(streamOpened(3));
    await items.insertOne({ name: "noise", tag: "other" });
    await items.insertOne({ name: "signal", tag: "wanted" });
    const { value: event } = await next;
    assert.equal(event.fullDocument.name, "signal");
    await stream.return();
    return { name: event.fullDocument.name };
  });

  await step("mongo.bad_operator_fails", async () =>
    rejects(() => items.updateOne({}, { $notAnOperator: { a: 1 } }), (err) => expectServiceError(err, { status: "4xx" })),
  );

  await step("mongo.unknown_service_fails", async () =>
    rejects(
      () => user.mongoClient("no-such-service").db("interop").collection("x").findOne({}),
      (err) => expectServiceError(err, { status: "4xx" }),
    ),
  );
});
