// BSON types through a function call: ObjectId, Date, Decimal128 and 64-bit Long go to
// the demo `echo` function (which returns its arguments as a list) and must come back
// equal, both as realm-web decodes them and as the exact EJSON on the wire.
//
// realm-web quirk (not a server issue): it decodes responses with EJSON's relaxed rules,
// so every {"$numberLong"} becomes a JS number and values above 2^53 lose precision
// there. The exact int64 round trip is therefore asserted on the raw response body,
// parsed with EJSON in canonical mode.
import { assert, Realm, makeApp, scenario, step } from "./_harness.mjs";

const { ObjectId, Decimal128, Long, Int32, Double, EJSON, UUID, Binary } = Realm.BSON;

await scenario(async () => {
  const { app, raw, http } = makeApp();
  const user = await app.logIn(Realm.Credentials.anonymous());

  const oid = new ObjectId();
  const date = new Date("2024-02-29T23:59:59.999Z");
  const decimal = Decimal128.fromString("1234567890.123456789012345678901234");
  const bigLong = Long.fromString("9007199254740993"); // 2^53 + 1: not representable as a double
  const negLong = Long.fromString("-9223372036854775808"); // int64 minimum
  const smallLong = Long.fromNumber(42);
  const uuid = new UUID("0f8fad5b-d9cb-469f-a165-70867728950e");

  const lastFunctionBody = () => {
    const bodies = raw.bodies.filter((b) => b.path.endsWith("/functions/call"));
    return bodies[bodies.length - 1].text;
  };

  await step("bson.request_is_canonical", async () => {
    // What realm-web sends for these values (the server must read canonical EJSON).
    const body = EJSON.serialize({ arguments: [oid, date, decimal, bigLong, 5, 2.5] }, { relaxed: false });
    assert.deepEqual(body.arguments[3], { $numberLong: "9007199254740993" });
    assert.deepEqual(body.arguments[4], { $numberInt: "5" });
    return body.arguments;
  });

  let result;
  await step("bson.echo_call", async () => {
    result = await user.functions.echo(oid, date, decimal, bigLong, smallLong, negLong, 5, 2.5, "text", true, null);
    assert.ok(Array.isArray(result), "echo returns its arguments as an array");
    assert.equal(result.length, 11);
    const call = http.log.findLast((e) => e.path.endsWith("/functions/call"));
    assert.equal(call.contentType, "application/json");
    return { length: result.length };
  });

  await step("bson.objectid", async () => {
    assert.ok(result[0] instanceof ObjectId, `expected ObjectId, got ${typeof result[0]}`);
    assert.ok(result[0].equals(oid));
    return result[0].toHexString();
  });

  await step("bson.date", async () => {
    assert.ok(result[1] instanceof Date, "expected a Date");
    assert.equal(result[1].getTime(), date.getTime(), "millisecond precision is kept");
    return result[1].toISOString();
  });

  await step("bson.decimal128", async () => {
    assert.ok(result[2] instanceof Decimal128, "expected a Decimal128");
    assert.equal(result[2].toString(), decimal.toString());
    return result[2].toString();
  });

  await step("bson.long_as_realm_web_decodes_it", async () => {
    // Relaxed decoding: int64 -> JS number.
    assert.equal(typeof result[3], "number");
    assert.equal(result[3], Number(bigLong.toString()), "nearest double of 2^53+1");
    assert.equal(result[4], 42);
    assert.equal(result[5], -9223372036854775808);
    assert.equal(result[6], 5);
    assert.equal(result[7], 2.5);
    assert.deepEqual(result.slice(8), ["text", true, null]);
    return result.slice(3, 8);
  });

  await step("bson.long_exact_on_the_wire", async () => {
    const text = lastFunctionBody();
    const wire = EJSON.parse(text, { relaxed: false });
    assert.ok(wire[3] instanceof Long, `int64 must come back as $numberLong, body: ${text.slice(0, 400)}`);
    assert.ok(wire[3].equals(bigLong), `2^53+1 must survive exactly, got ${wire[3]}`);
    assert.ok(wire[4] instanceof Long && wire[4].equals(smallLong), "a small int64 stays int64, not int32");
    assert.ok(wire[5] instanceof Long && wire[5].equals(negLong), "int64 minimum survives");
    assert.ok(wire[6] instanceof Int32, "an int32 stays int32");
    assert.ok(wire[7] instanceof Double, "a double stays double");
    assert.ok(wire[0] instanceof ObjectId && wire[0].equals(oid));
    assert.ok(wire[2] instanceof Decimal128 && wire[2].toString() === decimal.toString());
    // Dates: canonical {"$date": {"$numberLong": ...}} (what core-based clients need).
    const plain = JSON.parse(text);
    assert.deepEqual(plain[1], { $date: { $numberLong: String(date.getTime()) } });
    return { wire: plain.slice(0, 8) };
  });

  await step("bson.nested_document", async () => {
    const doc = {
      id: oid,
      when: { at: date, history: [date, new Date(0)] },
      amounts: [decimal, bigLong, 7],
      uuid,
      bytes: new Binary(Buffer.from([0, 1, 2, 250]), 0),
      text: "100% done\nnext",
    };
    const [back] = await user.functions.echo(doc);
    assert.ok(back.id instanceof ObjectId && back.id.equals(oid));
    assert.ok(back.when.at instanceof Date && back.when.at.getTime() === date.getTime());
    assert.deepEqual(back.when.history.map((d) => d.getTime()), [date.getTime(), 0]);
    assert.ok(back.amounts[0] instanceof Decimal128 && back.amounts[0].toString() === decimal.toString());
    assert.equal(back.amounts[2], 7);
    assert.equal(back.text, "100% done\nnext");
    assert.ok(back.uuid instanceof Binary, "UUID comes back as binary subtype 4");
    assert.equal(back.uuid.sub_type, 4);
    assert.equal(back.uuid.toUUID().toHexString(), uuid.toHexString());
    assert.ok(back.bytes instanceof Binary);
    assert.deepEqual([...back.bytes.buffer], [0, 1, 2, 250]);
    const [wire] = EJSON.parse(lastFunctionBody(), { relaxed: false });
    assert.ok(wire.amounts[1] instanceof Long && wire.amounts[1].equals(bigLong), "nested int64 exact");
    return { keys: Object.keys(back) };
  });

  await step("bson.sum_mixed_numbers", async () => {
    // int32 + double + int64 arguments are numbers to the server.
    const total = await user.functions.sum(2, 2.5, Long.fromNumber(10));
    assert.equal(total, 14.5);
    return total;
  });
});
