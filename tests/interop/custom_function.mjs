// Custom-function login (Credentials.function): the demo "authenticate" function maps
// {"username": ...} to an identity id; the same username is the same user, and a
// payload the function rejects fails the login.
import { assert, Realm, expectServiceError, makeApp, rejects, scenario, step } from "./_harness.mjs";

await scenario(async () => {
  const { app, http } = makeApp();
  const username = `fn-${Date.now().toString(36)}`;
  let user;

  await step("function.login", async () => {
    // Extra typed fields travel as canonical EJSON; the server must accept them.
    user = await app.logIn(
      Realm.Credentials.function({ username, pin: 1234, device: new Realm.BSON.ObjectId(), when: new Date() }),
    );
    assert.match(user.id, /^[0-9a-f]{24}$/);
    assert.equal(user.providerType, "custom-function");
    assert.deepEqual(user.identities, [{ id: username, providerType: "custom-function" }]);
    const login = http.log.findLast((e) => e.path.endsWith("/auth/providers/custom-function/login"));
    assert.equal(login.status, 200);
    return { userId: user.id, identities: user.identities };
  });

  await step("function.whoami", async () => {
    const me = await user.functions.whoami();
    assert.equal(me.id, user.id);
    assert.deepEqual(
      me.identities.map((i) => [i.id, i.provider_type]),
      [[username, "custom-function"]],
    );
    return me;
  });

  await step("function.same_payload_same_user", async () => {
    const { app: other } = makeApp();
    const again = await other.logIn(Realm.Credentials.function({ username }));
    assert.equal(again.id, user.id);
    return { userId: again.id };
  });

  await step("function.other_payload_other_user", async () => {
    const other = await app.logIn(Realm.Credentials.function({ username: `${username}-2` }));
    assert.notEqual(other.id, user.id);
    return { userId: other.id };
  });

  await step("function.rejected_payload_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.function({ username, reject: true })),
      (err) => expectServiceError(err, { status: 401 }),
    ),
  );

  await step("function.invalid_payload_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.function({ nickname: "no username" })),
      (err) => expectServiceError(err, { status: 401 }),
    ),
  );
});
