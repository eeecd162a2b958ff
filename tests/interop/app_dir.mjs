// An `appservices pull` export (tests/server/appdir_export) served by the local server, used by
// realm-web as it would use the App Services app: values and environment in functions, private
// functions unknown to clients but callable through context.functions.execute, can_evaluate,
// context.request without credentials, authentication triggers, a JavaScript-only function.
import { assert, Realm, expectServiceError, makeApp, rejects, scenario, step } from "./_harness.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

await scenario(async () => {
  const { app } = makeApp();
  let user;

  await step("appdir.anonymous_login", async () => {
    user = await app.logIn(Realm.Credentials.anonymous());
    assert.match(user.id, /^[0-9a-f]{24}$/);
    return { userId: user.id };
  });

  await step("appdir.values_and_environment", async () => {
    const greeting = await user.functions.greet("Ana");
    assert.deepEqual(greeting, {
      greeting: "Hello, Ana!",
      support: "help@tasktracker.example.com",
      hasMailerToken: true,
      missing: null,
      environment: "development",
      apiBase: "https://dev.tasktracker.example.com",
    });
    assert.equal(await user.callFunction("utils/shout", "quiet"), "QUIET");
    return greeting;
  });

  await step("appdir.private_is_unknown", async () => {
    const privateError = await rejects(
      () => user.functions.secretSauce(1),
      (err) => expectServiceError(err, { status: 404, errorCode: "FunctionNotFound" }),
    );
    const unknownError = await rejects(
      () => user.functions.noSuchFunction(1),
      (err) => expectServiceError(err, { status: 404, errorCode: "FunctionNotFound" }),
    );
    return { privateError, unknownError };
  });

  await step("appdir.execute_private", async () => {
    const result = await user.functions.callSecret(1, "two");
    assert.deepEqual(result, { outerSystem: false, inner: { system: true, caller: user.id, args: [1, "two"] } });
    return result;
  });

  await step("appdir.can_evaluate_refused", async () =>
    rejects(
      () => user.functions.adminReport(),
      (err) => {
        expectServiceError(err, { status: 400, errorCode: "FunctionExecutionError" });
        assert.match(err.message, /rule not matched for function "adminReport"/);
      },
    ),
  );

  await step("appdir.request_without_credentials", async () => {
    const seen = await user.functions.whoCalls();
    const names = Object.keys(seen.headers).map((name) => name.toLowerCase());
    assert.equal(seen.user, user.id);
    assert.ok(!names.includes("authorization"), `headers: ${names}`);
    assert.ok(!JSON.stringify(seen).includes(user.accessToken), "the access token reached the function");
    return { headers: names.sort() };
  });

  await step("appdir.auth_triggers", async () => {
    // Triggers run after the log-in, in the background: poll (bounded) for both events.
    let events = [];
    for (let attempt = 0; attempt < 50 && events.length < 2; attempt += 1) {
      events = await user.functions.myAuthEvents();
      if (events.length < 2) await sleep(100);
    }
    // The triggers of one log-in run concurrently: compare in a fixed order.
    events.sort((a, b) => a.operationType.localeCompare(b.operationType));
    assert.deepEqual(
      events.map((e) => [e.operationType, e.providers, e.user.id, e.system]),
      [
        ["CREATE", ["anon-user"], user.id, true],
        ["LOGIN", ["anon-user"], user.id, true],
      ],
    );
    return events.map((e) => e.operationType);
  });

  await step("appdir.javascript_only_function", async () =>
    rejects(
      () => user.functions.legacyReport(),
      (err) => {
        expectServiceError(err, { status: 400, errorCode: "FunctionExecutionError" });
        assert.match(err.message, /only a JavaScript source \(legacyReport\.js\)/);
      },
    ),
  );
});
