// Runs the official Genesys Cloud JavaScript SDK (purecloud-platform-client-v2,
// pinned in package.json) against an apiusage server, the way its users call
// it: setGateway to point it at the server, loginClientCredentialsGrant, then
// all seven Usage API methods of UsageApi, polling every execution until it
// is Complete and checking its rows exactly against the expectation file.
//
// It is started by cmd/apiusage/jssdk_test.go, which runs the server, creates
// the organization and its clients, ingests known events and writes the
// expectation file. To run it by hand against a server of your own, set:
//
//   APIUSAGE_URL            the server's base URL, e.g. http://127.0.0.1:8080
//   APIUSAGE_CLIENT_ID      a client holding every organization permission
//   APIUSAGE_CLIENT_SECRET  its secret
//   APIUSAGE_EXPECT         the path of the expectation JSON (see below)
//
// The expectation file holds the requests to make and the rows each must
// return, in the contract's wire form (usage-api.md §3):
//
//   {"orgQueries":     [{"name", "body", "rows"}],
//    "simpleSearches": [{"name", "body", "pageSize", "rows"}],
//    "clientQueries":  [{"name", "clientId", "body", "rows"}],
//    "summaries":      [{"name", "clientId", "days"?, "rows"}],
//    "foreignClientId": "a client of another organization"}
//
// A missing variable or an empty list fails the run rather than skipping it.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import platformClient from 'purecloud-platform-client-v2';

// How long an execution may stay Running before the test gives up on it.
// It bounds the polling loop; it is not a performance assertion.
const pollLimitMs = 30_000;
const pollEveryMs = 50;

// The seven Usage API methods; the last test checks each was called.
const sevenMethods = [
  'postUsageQuery',
  'getUsageQueryExecutionIdResults',
  'postUsageSimplesearch',
  'getUsageSimplesearchExecutionIdResults',
  'postOauthClientUsageQuery',
  'getOauthClientUsageQueryResult',
  'getOauthClientUsageSummary',
];

const called = new Set();
let usage; // the SDK's UsageApi, wrapped to record the methods called
let expect; // the parsed expectation file

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set; this test needs a running apiusage server (see the top of usage.test.mjs)`);
  }
  return value;
}

// gatewayFor turns a base URL into the SDK's gateway settings. The SDK builds
// protocol://host[:port][/path] for both the API and the login service, and
// defaults the protocol to https, so every part is passed explicitly.
export function gatewayFor(baseURL) {
  const u = new URL(baseURL);
  const gateway = { host: u.hostname, protocol: u.protocol.replace(/:$/, '') };
  if (u.port) gateway.port = Number(u.port);
  const path = u.pathname.replace(/\/+$/, '');
  if (path) {
    gateway.path_params_api = path;
    gateway.path_params_login = path;
  }
  return gateway;
}

// recording wraps the UsageApi so that every method call is noted.
function recording(api) {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args) => {
        called.add(String(prop));
        return value.apply(target, args);
      };
    },
  });
}

// poll calls fetch until the execution is no longer Running and returns the
// Complete result; a Failed execution or any other status fails the test.
async function poll(what, fetch) {
  const deadline = Date.now() + pollLimitMs;
  for (;;) {
    const res = await fetch();
    assert.ok(res && typeof res === 'object', `${what}: got ${JSON.stringify(res)}, want a result object`);
    if (res.queryStatus === 'Complete') return res;
    assert.equal(res.queryStatus, 'Running', `${what}: queryStatus ${JSON.stringify(res.queryStatus)} (body ${JSON.stringify(res)}), want Running or Complete`);
    if (Date.now() > deadline) assert.fail(`${what}: still Running after ${pollLimitMs} ms`);
    await sleep(pollEveryMs);
  }
}

// checkExecution checks the answer that starts an execution.
function checkExecution(what, exec, resultsUri) {
  assert.equal(typeof exec?.executionId, 'string', `${what}: executionId in ${JSON.stringify(exec)}`);
  assert.notEqual(exec.executionId, '', `${what}: empty executionId`);
  assert.equal(exec.resultsUri, resultsUri(exec.executionId), `${what}: resultsUri`);
}

// rejectsWith checks that an SDK call fails with the contract's ErrorBody.
// The SDK rejects with the parsed body of the error response.
async function rejectsWith(what, promise, status, code, messagePart) {
  await assert.rejects(promise, (err) => {
    assert.ok(err && typeof err === 'object' && !(err instanceof Error), `${what}: rejected with ${err}, want an ErrorBody`);
    assert.equal(err.status, status, `${what}: status in ${JSON.stringify(err)}`);
    assert.equal(err.code, code, `${what}: code in ${JSON.stringify(err)}`);
    assert.equal(typeof err.message, 'string', `${what}: message in ${JSON.stringify(err)}`);
    if (messagePart) assert.ok(err.message.includes(messagePart), `${what}: message ${JSON.stringify(err.message)}, want it to contain ${JSON.stringify(messagePart)}`);
    return true;
  }, `${what}: want a ${status} ${code}`);
}

function nonEmpty(name, list) {
  assert.ok(Array.isArray(list) && list.length > 0, `expectation file: ${name} must be a non-empty list`);
  assert.ok(list.some((c) => c.rows.length > 0), `expectation file: some ${name} must expect rows`);
  return list;
}

before(async () => {
  const baseURL = requireEnv('APIUSAGE_URL');
  const clientId = requireEnv('APIUSAGE_CLIENT_ID');
  const clientSecret = requireEnv('APIUSAGE_CLIENT_SECRET');
  expect = JSON.parse(await readFile(requireEnv('APIUSAGE_EXPECT'), 'utf8'));

  const client = platformClient.ApiClient.instance;
  client.setGateway(gatewayFor(baseURL));
  const auth = await client.loginClientCredentialsGrant(clientId, clientSecret);
  assert.equal(typeof auth.accessToken, 'string', 'login: accessToken');
  assert.notEqual(auth.accessToken, '', 'login: empty accessToken');
  assert.ok(auth.tokenExpiryTime > Date.now(), `login: token expires at ${auth.tokenExpiryTimeString}, want a time in the future (expires_in)`);
  usage = recording(new platformClient.UsageApi());
});

test('organization queries: postUsageQuery and getUsageQueryExecutionIdResults', async (t) => {
  for (const c of nonEmpty('orgQueries', expect.orgQueries)) {
    await t.test(c.name, async () => {
      const exec = await usage.postUsageQuery(c.body);
      checkExecution(c.name, exec, (id) => `/api/v2/usage/query/${id}/results`);
      const res = await poll(c.name, () => usage.getUsageQueryExecutionIdResults(exec.executionId));
      assert.deepEqual(res.results ?? [], c.rows, `${c.name}: rows`);
      assert.equal(res.cursors, undefined, `${c.name}: a query result has no cursors`);
    });
  }
});

// Keys of a simple search's rows for its columns, and the count keys a row
// may only carry when they were asked for.
const countKeys = ['status200', 'status300', 'status400', 'status500', 'status429', 'requests'];

function project(row, keys) {
  return Object.fromEntries(keys.map((k) => [k, row[k]]));
}

test('simple searches: postUsageSimplesearch and getUsageSimplesearchExecutionIdResults, page by page', async (t) => {
  for (const c of nonEmpty('simpleSearches', expect.simpleSearches)) {
    await t.test(c.name, async () => {
      assert.ok(Number.isInteger(c.pageSize) && c.pageSize > 0, `${c.name}: pageSize ${c.pageSize}`);
      const exec = await usage.postUsageSimplesearch(c.body);
      checkExecution(c.name, exec, (id) => `/api/v2/usage/simplesearch/${id}/results`);

      const wantPages = Math.max(1, Math.ceil(c.rows.length / c.pageSize));
      const pages = [];
      let page = await poll(c.name, () => usage.getUsageSimplesearchExecutionIdResults(exec.executionId, { pageSize: c.pageSize }));
      for (;;) {
        pages.push(page.results ?? []);
        const after = page.cursors?.after;
        if (after === undefined) break;
        assert.equal(typeof after, 'string', `${c.name}: cursors.after ${JSON.stringify(after)}`);
        assert.ok(pages.length < wantPages, `${c.name}: page ${pages.length} has a cursor, want ${wantPages} pages in all`);
        page = await usage.getUsageSimplesearchExecutionIdResults(exec.executionId, { pageSize: c.pageSize, after });
        assert.equal(page.queryStatus, 'Complete', `${c.name}: page ${pages.length + 1} status`);
      }
      assert.equal(pages.length, wantPages, `${c.name}: pages of ${c.pageSize} for ${c.rows.length} rows`);
      pages.forEach((p, i) => {
        const want = i < pages.length - 1 ? c.pageSize : c.rows.length - c.pageSize * (pages.length - 1);
        assert.equal(p.length, want, `${c.name}: rows on page ${i + 1}`);
      });

      const got = pages.flat();
      const keys = c.rows.length > 0 ? Object.keys(c.rows[0]) : [];
      for (const row of got) {
        for (const k of countKeys) {
          if (!keys.includes(k)) assert.equal(row[k], undefined, `${c.name}: ${k} was not asked for, in ${JSON.stringify(row)}`);
        }
      }
      if (keys.includes('date')) {
        const dates = got.map((r) => r.date);
        assert.deepEqual(dates, [...dates].sort(), `${c.name}: rows ordered by date`);
      }
      // Rows within a day may come in any order; compare them as a multiset.
      const canon = (rows) => rows.map((r) => JSON.stringify(project(r, keys))).sort();
      assert.deepEqual(canon(got), canon(c.rows), `${c.name}: rows`);
    });
  }
});

test('client queries: postOauthClientUsageQuery and getOauthClientUsageQueryResult', async (t) => {
  for (const c of nonEmpty('clientQueries', expect.clientQueries)) {
    await t.test(c.name, async () => {
      const exec = await usage.postOauthClientUsageQuery(c.clientId, c.body);
      checkExecution(c.name, exec, (id) => `/api/v2/oauth/clients/${c.clientId}/usage/query/results/${id}`);
      // The SDK takes the execution id first, then the client id.
      const res = await poll(c.name, () => usage.getOauthClientUsageQueryResult(exec.executionId, c.clientId));
      assert.deepEqual(res.results ?? [], c.rows, `${c.name}: rows`);
    });
  }
});

test('client summaries: getOauthClientUsageSummary, read with getOauthClientUsageQueryResult', async (t) => {
  for (const c of nonEmpty('summaries', expect.summaries)) {
    await t.test(c.name, async () => {
      const opts = c.days === undefined ? {} : { days: c.days };
      const exec = await usage.getOauthClientUsageSummary(c.clientId, opts);
      checkExecution(c.name, exec, (id) => `/api/v2/oauth/clients/${c.clientId}/usage/query/results/${id}`);
      const res = await poll(c.name, () => usage.getOauthClientUsageQueryResult(exec.executionId, c.clientId));
      assert.deepEqual(res.results ?? [], c.rows, `${c.name}: rows`);
    });
  }
});

test('errors reach the SDK as ErrorBody rejections', async (t) => {
  const clientId = expect.clientQueries[0].clientId;
  await t.test('a bad interval is a 400 that quotes it', async () => {
    await rejectsWith('postUsageQuery', usage.postUsageQuery({ interval: '2020-02-30/2020-03-01' }), 400, 'bad.request', '2020-02-30/2020-03-01');
  });
  await t.test('a bad days is a 400', async () => {
    await rejectsWith('getOauthClientUsageSummary', usage.getOauthClientUsageSummary(clientId, { days: '0' }), 400, 'bad.request');
  });
  await t.test('an execution read through another endpoint is a 404', async () => {
    const exec = await usage.postUsageQuery({ interval: '2020-01-01/2020-01-02' });
    await rejectsWith('getOauthClientUsageQueryResult', usage.getOauthClientUsageQueryResult(exec.executionId, clientId), 404, 'not.found');
  });
  await t.test('an unknown execution is a 404', async () => {
    await rejectsWith('getUsageQueryExecutionIdResults', usage.getUsageQueryExecutionIdResults('00000000-0000-4000-8000-000000000000'), 404, 'not.found');
  });
  await t.test("another organization's client is a 404", async () => {
    assert.equal(typeof expect.foreignClientId, 'string', 'expectation file: foreignClientId');
    await rejectsWith('postOauthClientUsageQuery', usage.postOauthClientUsageQuery(expect.foreignClientId, { interval: '2020-01-01/2020-01-02' }), 404, 'not.found');
  });
  await t.test('a call without a token is a 401', async () => {
    const anonymous = new platformClient.ApiClientClass();
    anonymous.setGateway(gatewayFor(process.env.APIUSAGE_URL));
    const api = new platformClient.UsageApi(anonymous);
    await rejectsWith('postUsageQuery', api.postUsageQuery({ interval: '2020-01-01/2020-01-02' }), 401, 'authentication.required');
  });
  await t.test('a login with a wrong secret fails', async () => {
    const other = new platformClient.ApiClientClass();
    other.setGateway(gatewayFor(process.env.APIUSAGE_URL));
    await assert.rejects(other.loginClientCredentialsGrant(process.env.APIUSAGE_CLIENT_ID, 'not-the-secret'), (err) => {
      assert.ok([400, 401].includes(err?.response?.status), `login: status ${err?.response?.status}, want 400 or 401`);
      assert.equal(err.response.data?.error, 'invalid_client', `login: body ${JSON.stringify(err.response.data)}`);
      return true;
    });
  });
});

test('all seven Usage API methods were called', () => {
  for (const m of sevenMethods) {
    assert.ok(called.has(m), `UsageApi.${m} was not called (called: ${[...called].join(', ')})`);
  }
});
