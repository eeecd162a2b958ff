// The npm Admin API client `atlas-app-services-admin-api` 1.5.6 against the appusers local server.
//
// Run by test_admin_npm.py with SERVER_URL, CLIENT_APP_ID, GROUP_ID, APP_OBJECT_ID,
// ADMIN_PUBLIC_KEY and ADMIN_PRIVATE_KEY in the environment. Each step prints one JSON line
// {"step", "ok", "detail"} and the first failing step ends the run (exit 1).
//
// Where the client works it is used as an application would: AtlasAppServicesClient
// (log-in with the key pair, then the app list with product=atlas, taking element [0]),
// its UsersApi, EmailApi, AppsApi and AdminApi. Where it does not, raw HTTP (fetch) does
// the call, and the step says so:
//   * adminListUsers(after, sort, desc) takes no groupId/appId and requests
//     /groups/%7BgroupId%7D/apps/%7BappId%7D/users (a 1.5.5 defect still in 1.5.6): the
//     step `users.list_client_defect` proves the defect is still there (404 from our server
//     for the literal path), `users.list_raw` lists users with fetch.
//   * The wrapper refreshes its token only 30 s before its assumed 30-minute lifetime, so
//     `session.refresh` drives AdminApi.adminCreateSession with the refresh token directly.
// Client-API calls (a user logging in, registering) are raw HTTP: they are not the admin
// client's business. Nothing printed contains a token or a key.

import assert from "node:assert/strict";
import process from "node:process";

import adminApi from "atlas-app-services-admin-api";

const { AtlasAppServicesClient, AdminApi, Configuration } = adminApi;

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    emit({ step: "environment", ok: false, detail: `missing environment variable ${name}` });
    process.exit(2);
  }
  return value;
};

function emit(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

const SERVER_URL = env("SERVER_URL").replace(/\/+$/, "");
const CLIENT_APP_ID = env("CLIENT_APP_ID");
const GROUP_ID = env("GROUP_ID");
const APP_OBJECT_ID = env("APP_OBJECT_ID");
const PUBLIC_KEY = env("ADMIN_PUBLIC_KEY");
const PRIVATE_KEY = env("ADMIN_PRIVATE_KEY");
const ADMIN_BASE = `${SERVER_URL}/api/admin/v3.0`;
const CLIENT_BASE = `${SERVER_URL}/api/client/v2.0`;
const PASSWORD = "s3cret-password";

class StepFailed extends Error {}

/** A JSON-friendly description of an error, without request headers (they hold tokens). */
function describe(err) {
  if (err?.isAxiosError) {
    return {
      type: "AxiosError",
      status: err.response?.status ?? null,
      body: err.response?.data ?? null,
      path: err.config?.url ? new URL(err.config.url).pathname : null,
    };
  }
  if (err instanceof assert.AssertionError) {
    return { type: "AssertionError", message: err.message, actual: err.actual ?? null, expected: err.expected ?? null };
  }
  return { type: err?.constructor?.name ?? typeof err, message: String(err?.message ?? err) };
}

async function step(name, fn) {
  try {
    const detail = await fn();
    emit({ step: name, ok: true, detail: detail ?? null });
    return detail;
  } catch (err) {
    emit({ step: name, ok: false, detail: describe(err) });
    throw new StepFailed(name);
  }
}

/** Expect an axios call to fail with `status`; the error body. */
async function failsWith(status, fn) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err?.isAxiosError, `expected an HTTP error, got ${err}`);
    assert.equal(err.response?.status, status, `status (body ${JSON.stringify(err.response?.data)})`);
    return err;
  }
  throw new assert.AssertionError({ message: `expected HTTP ${status}, but the call succeeded` });
}

async function raw(method, url, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, contentType: res.headers.get("content-type") };
}

const clientLogin = (email) =>
  raw("POST", `${CLIENT_BASE}/app/${CLIENT_APP_ID}/auth/providers/local-userpass/login`, {
    body: { username: email, password: PASSWORD },
  });

async function main() {
  const stamp = Date.now().toString(36);
  const client = new AtlasAppServicesClient({
    publicKey: PUBLIC_KEY,
    privateKey: PRIVATE_KEY,
    baseUrl: ADMIN_BASE,
    groupId: GROUP_ID,
  });

  // --- session and app (client) --------------------------------------------------------
  await step("client.initialize", async () => {
    await client.initialize();
    assert.equal(client.appId, APP_OBJECT_ID);
    assert.equal(client.clientAppId, CLIENT_APP_ID);
    assert.equal(client.groupId, GROUP_ID);
    return { appId: client.appId, clientAppId: client.clientAppId };
  });

  const users = await client.atlasUsersApi();
  const email = await client.atlasEmailApi();
  const apps = await client.atlasAppsApi();
  const g = client.groupId;
  const a = client.appId;

  await step("apps.list", async () => {
    const res = await apps.adminListApplications(g, "atlas");
    assert.equal(res.status, 200);
    assert.equal(res.data.length, 1);
    for (const key of ["_id", "client_app_id", "name", "group_id", "domain_id", "product"]) {
      assert.ok(key in res.data[0], `app field ${key}`);
    }
    return { count: res.data.length, name: res.data[0].name };
  });

  // --- users (client) --------------------------------------------------------------------
  const made = `made-${stamp}@example.com`;
  const created = await step("users.create", async () => {
    const res = await users.adminCreateUser(g, a, { email: made, password: PASSWORD });
    assert.equal(res.status, 201);
    assert.equal(res.data.data.email, made);
    assert.deepEqual(res.data.identities.map((i) => i.provider_type), ["local-userpass"]);
    return { userId: res.data._id };
  });

  await step("users.get", async () => {
    const res = await users.adminGetUser(g, a, created.userId);
    assert.equal(res.status, 200);
    assert.equal(res.data._id, created.userId);
    assert.equal(res.data.disabled, false);
    assert.equal(typeof res.data.creation_date, "number");
    return { type: res.data.type };
  });

  await step("users.list_client_defect", async () => {
    // Raw HTTP would be wrong here: this step documents the client's own defect.
    const err = await failsWith(404, () => users.adminListUsers());
    const path = new URL(err.config.url).pathname;
    assert.ok(path.includes("%7BgroupId%7D"), `the client filled the path this time: ${path}`);
    return { requested: path };
  });

  // The client's wrapper keeps its token private, so raw calls log in on their own.
  const adminLogin = await raw("POST", `${ADMIN_BASE}/auth/providers/mongodb-cloud/login`, {
    body: { username: PUBLIC_KEY, apiKey: PRIVATE_KEY },
  });
  const adminToken = adminLogin.body?.access_token;
  const appPath = `${ADMIN_BASE}/groups/${g}/apps/${a}`;

  await step("users.list_raw", async () => {
    assert.equal(adminLogin.status, 200);
    const res = await raw("GET", `${appPath}/users`, { token: adminToken });
    assert.equal(res.status, 200);
    assert.equal(res.contentType, "application/json");
    assert.ok(res.body.some((u) => u._id === created.userId));
    const next = await raw("GET", `${appPath}/users?after=${res.body.at(-1)._id}`, { token: adminToken });
    assert.deepEqual(next.body, []);
    return { count: res.body.length };
  });

  await step("users.disable", async () => {
    const before = await clientLogin(made);
    assert.equal(before.status, 200);
    const res = await users.adminDisableUser(g, a, created.userId);
    assert.equal(res.status, 204);
    // At once: the old access token, the refresh token and a new log-in are refused.
    const profile = await raw("GET", `${CLIENT_BASE}/auth/profile`, { token: before.body.access_token });
    assert.equal(profile.status, 401);
    assert.equal(profile.body.error_code, "UserDisabled");
    const refresh = await raw("POST", `${CLIENT_BASE}/auth/session`, { token: before.body.refresh_token });
    assert.equal(refresh.body.error_code, "UserDisabled");
    const login = await clientLogin(made);
    assert.equal(login.status, 401);
    assert.equal(login.body.error_code, "UserDisabled");
    assert.equal((await users.adminGetUser(g, a, created.userId)).data.disabled, true);
    return { loginAfterDisable: login.body.error_code };
  });

  await step("users.enable", async () => {
    const res = await users.adminEnableUser(g, a, created.userId);
    assert.equal(res.status, 204);
    const login = await clientLogin(made);
    assert.equal(login.status, 200);
    return { userId: login.body.user_id };
  });

  await step("users.logout", async () => {
    const login = await clientLogin(made);
    const res = await users.adminUserLogout(g, a, created.userId);
    assert.equal(res.status, 204);
    const refresh = await raw("POST", `${CLIENT_BASE}/auth/session`, { token: login.body.refresh_token });
    assert.equal(refresh.status, 401);
    assert.equal(refresh.body.error_code, "InvalidSession");
    return { refreshAfterLogout: refresh.status };
  });

  // --- pending users (client) ---------------------------------------------------------------
  const pendingA = `pending-a-${stamp}@example.com`;
  const pendingB = `pending-b-${stamp}@example.com`;
  await step("pending.list", async () => {
    for (const address of [pendingA, pendingB]) {
      const reg = await raw("POST", `${CLIENT_BASE}/app/${CLIENT_APP_ID}/auth/providers/local-userpass/register`, {
        body: { email: address, password: PASSWORD },
      });
      assert.equal(reg.status, 201);
    }
    const res = await users.adminListPendingUsers(g, a);
    assert.equal(res.status, 200);
    const ids = res.data.map((p) => p.login_ids[0].id);
    assert.ok(ids.includes(pendingA) && ids.includes(pendingB), `pending: ${ids}`);
    return { count: res.data.length };
  });

  await step("pending.confirm", async () => {
    assert.equal((await clientLogin(pendingA)).status, 401);
    const res = await email.adminConfirmPendingUser(g, a, pendingA);
    assert.equal(res.status, 204);
    assert.equal((await clientLogin(pendingA)).status, 200);
    return null;
  });

  await step("pending.delete", async () => {
    const res = await users.adminDeletePendingEmailPasswordUser(g, a, pendingB);
    assert.equal(res.status, 204);
    const list = await users.adminListPendingUsers(g, a);
    assert.ok(!list.data.some((p) => p.login_ids[0].id === pendingB));
    await failsWith(404, () => users.adminDeletePendingEmailPasswordUser(g, a, pendingB));
    return { remaining: list.data.length };
  });

  await step("users.delete", async () => {
    const res = await users.adminDeleteUser(g, a, created.userId);
    assert.equal(res.status, 204);
    const err = await failsWith(404, () => users.adminGetUser(g, a, created.userId));
    assert.equal(err.response.data.error_code, "UserNotFound");
    await failsWith(404, () => users.adminDisableUser(g, a, created.userId));
    return null;
  });

  // --- admin session (AdminApi) -------------------------------------------------------------
  await step("session.refresh", async () => {
    // The wrapper would only refresh after ~29.5 minutes: call adminCreateSession directly.
    const base = { basePath: ADMIN_BASE };
    const login = await new AdminApi(new Configuration(base)).adminLogin("mongodb-cloud", {
      username: PUBLIC_KEY,
      apiKey: PRIVATE_KEY,
    });
    assert.equal(login.status, 200);
    const withRefresh = new AdminApi(new Configuration({ ...base, accessToken: login.data.refresh_token }));
    const fresh = await withRefresh.adminCreateSession();
    assert.equal(fresh.status, 201);
    const appsApi = new adminApi.AppsApi(new Configuration({ ...base, accessToken: fresh.data.access_token }));
    assert.equal((await appsApi.adminListApplications(GROUP_ID, "atlas")).data[0]._id, APP_OBJECT_ID);
    // An access token where the refresh token belongs is refused with App Services' wording.
    const withAccess = new AdminApi(new Configuration({ ...base, accessToken: fresh.data.access_token }));
    const wrong = await failsWith(401, () => withAccess.adminCreateSession());
    assert.match(wrong.response.data.error, /incorrect token type/);
    const deleted = await withRefresh.adminDeleteSession();
    assert.equal(deleted.status, 204);
    await failsWith(401, () => withRefresh.adminCreateSession());
    await failsWith(401, () => appsApi.adminListApplications(GROUP_ID, "atlas"));
    return null;
  });

  await step("session.wrong_key", async () => {
    const bad = new AtlasAppServicesClient({
      publicKey: PUBLIC_KEY,
      privateKey: "wrong-private-key",
      baseUrl: ADMIN_BASE,
      groupId: GROUP_ID,
    });
    const err = await failsWith(401, () => bad.initialize());
    return { errorCode: err.response.data.error_code };
  });

  await step("session.client_token_refused", async () => {
    const anon = await raw("POST", `${CLIENT_BASE}/app/${CLIENT_APP_ID}/auth/providers/anon-user/login`, { body: {} });
    assert.equal(anon.status, 200);
    const asAdmin = new adminApi.UsersApi(new Configuration({ basePath: ADMIN_BASE, accessToken: anon.body.access_token }));
    await failsWith(401, () => asAdmin.adminGetUser(g, a, anon.body.user_id));
    const other = await failsWith(404, () => users.adminGetUser("0".repeat(24), a, anon.body.user_id));
    return { otherGroup: other.response.data.error_code };
  });
}

let code = 0;
try {
  await main();
} catch (err) {
  if (!(err instanceof StepFailed)) {
    emit({ step: "harness", ok: false, detail: describe(err) });
    code = 3;
  } else {
    code = 1;
  }
}
process.exit(code);
