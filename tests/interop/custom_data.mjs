// Custom user data: written by the demo `set_custom_data` function (and directly through
// the MongoDB service), delivered in the access token's `user_data` claim, and seen by
// realm-web after user.refreshCustomData().
import { assert, Realm, makeApp, scenario, step } from "./_harness.mjs";

// The claim may carry a number as plain JSON or as a canonical wrapper (spec §14.3
// allows both); the last step checks what realm-web users actually get.
const numberOf = (value) =>
  value !== null && typeof value === "object" ? Number(value.$numberInt ?? value.$numberLong ?? value.$numberDouble) : value;

await scenario(async () => {
  const { app } = makeApp();
  const since = new Date("2024-01-31T12:00:00.000Z");
  let user;

  await step("custom_data.initially_empty", async () => {
    user = await app.logIn(Realm.Credentials.anonymous());
    assert.deepEqual(user.customData, {}, "no custom-data document yet -> {}");
    return user.customData;
  });

  await step("custom_data.set_via_function", async () => {
    const stored = await user.functions.set_custom_data({ plan: "pro", credits: 5, since });
    assert.equal(stored.plan, "pro");
    assert.equal(stored.user_id, user.id);
    // The access token in hand predates the write: nothing changes until a refresh.
    assert.deepEqual(user.customData, {});
    return stored;
  });

  await step("custom_data.refresh", async () => {
    const data = await user.refreshCustomData();
    assert.equal(data.plan, "pro");
    assert.equal(numberOf(data.credits), 5);
    assert.equal(data.user_id, user.id);
    // realm-web does not EJSON-decode the claim: a date stays its canonical wrapper.
    assert.deepEqual(data.since, { $date: { $numberLong: String(since.getTime()) } });
    assert.deepEqual(user.customData, data);
    return data;
  });

  await step("custom_data.whoami_sees_it", async () => {
    const me = await user.functions.whoami();
    assert.equal(me.custom_data.plan, "pro");
    return me.custom_data;
  });

  await step("custom_data.merge", async () => {
    await user.functions.set_custom_data({ credits: 6 });
    const data = await user.refreshCustomData();
    assert.equal(data.plan, "pro", "fields not named are kept");
    assert.equal(numberOf(data.credits), 6);
    return data;
  });

  await step("custom_data.write_through_mongo", async () => {
    const collection = user.mongoClient("mongodb-atlas").db("appusers").collection("custom_data");
    const result = await collection.updateOne({ user_id: user.id }, { $set: { plan: "team" } });
    assert.equal(result.matchedCount, 1);
    const data = await user.refreshCustomData();
    assert.equal(data.plan, "team", "user_data is built from the current document at issue time");
    return data;
  });

  await step("custom_data.other_user_isolated", async () => {
    const { app: other } = makeApp();
    const stranger = await other.logIn(Realm.Credentials.anonymous());
    assert.deepEqual(stranger.customData, {});
    assert.deepEqual(await stranger.refreshCustomData(), {});
    return null;
  });

  await step("custom_data.numbers_are_plain_json", async () => {
    // realm-web does not EJSON-decode user_data: a canonical {"$numberInt": "6"} reaches
    // the app as an object, so `user.customData.credits + 1` would be "[object Object]1".
    // Dates have to stay canonical for core-based SDKs; numbers need no wrapper for any
    // client (core reads plain integers as int64 and other numbers as double).
    const data = user.customData;
    assert.equal(typeof data.credits, "number", `credits arrived as ${JSON.stringify(data.credits)}`);
    return { credits: data.credits };
  });
});
