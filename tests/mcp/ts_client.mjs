// The official TypeScript MCP SDK's client, driving `mender mcp-proxy`
// for tests/mcp/test_ts_client.py. It gathers facts and prints them as one
// JSON report on stdout; the pytest test makes the assertions.
//
//   node ts_client.mjs PLAN_JSON
//
// PLAN_JSON: {
//   "sdk": "v1" | "v2",          // @modelcontextprotocol/sdk 1.x, or @modelcontextprotocol/client 2.x
//   "era": "legacy" | "2026-07-28", // v2 only: the handshake, or the pinned stateless era
//   "proxy": {"url": URL, "token": T} | {"command": C, "args": [...]},
//   "direct": {"url": URL} | {"command": C, "args": [...]},   // the same server, without mender
//   "clients": N,                  // how many clients at once (0: none)
//   "interactive": bool            // sampling and elicitation (handshake era only)
// }
//
// Run from beside the installed SDKs (target/mcp-tools/npm/), so that their
// imports resolve; logs go to stderr.

const plan = JSON.parse(process.argv[2]);

// What the clients offer, as a desktop host would: server-everything lists
// its sampling, elicitation and roots tools only to a client that has them.
const CAPABILITIES = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
const SAMPLED = 'sampled by the TypeScript client';
const ELICITED = 'Grace Hopper';

/** The two SDK generations behind one small surface. */
async function sdk(generation) {
  if (generation === 'v1') {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const types = await import('@modelcontextprotocol/sdk/types.js');
    const schemas = {
      'sampling/createMessage': types.CreateMessageRequestSchema,
      'elicitation/create': types.ElicitRequestSchema,
      'roots/list': types.ListRootsRequestSchema,
    };
    return {
      client: () => new Client({ name: 'mender-ts-test', version: '1.0.0' }, { capabilities: CAPABILITIES }),
      handle: (client, method, fn) => client.setRequestHandler(schemas[method], fn),
      callTool: (client, params, options) => client.callTool(params, undefined, options),
      http: (url, headers) => new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }),
      stdio: (command, args) => new StdioClientTransport({ command, args, stderr: 'ignore' }),
      protocol: (client) => client.transport?.protocolVersion ?? null,
    };
  }
  const { Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client');
  const { StdioClientTransport } = await import('@modelcontextprotocol/client/stdio');
  return {
    client: (era) =>
      new Client(
        { name: 'mender-ts-test', version: '2.0.0' },
        {
          capabilities: CAPABILITIES,
          versionNegotiation: { mode: era === 'legacy' ? 'legacy' : { pin: era } },
        },
      ),
    handle: (client, method, fn) => client.setRequestHandler(method, fn),
    callTool: (client, params, options) => client.callTool(params, options),
    http: (url, headers) => new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }),
    stdio: (command, args) => new StdioClientTransport({ command, args, stderr: 'ignore' }),
    protocol: (client) => client.getNegotiatedProtocolVersion() ?? null,
  };
}

const api = await sdk(plan.sdk);

async function connect(target, era) {
  const client = api.client(era);
  api.handle(client, 'sampling/createMessage', async () => ({
    role: 'assistant',
    content: { type: 'text', text: SAMPLED },
    model: 'test-model',
  }));
  api.handle(client, 'elicitation/create', async () => ({ action: 'accept', content: { name: ELICITED } }));
  api.handle(client, 'roots/list', async () => ({ roots: [{ uri: 'file:///srv/ts-root', name: 'ts root' }] }));
  const transport = target.url
    ? api.http(target.url, target.token ? { Authorization: `Bearer ${target.token}` } : {})
    : api.stdio(target.command, target.args ?? []);
  await client.connect(transport);
  return client;
}

/** Every listing, each sorted by name (or URI), as plain JSON. */
async function listings(client) {
  const byKey = (items) => [...items].sort((a, b) => (a.name ?? a.uri ?? '').localeCompare(b.name ?? b.uri ?? ''));
  return {
    tools: byKey((await client.listTools()).tools),
    prompts: byKey((await client.listPrompts()).prompts),
    resources: byKey((await client.listResources()).resources),
    resourceTemplates: byKey((await client.listResourceTemplates()).resourceTemplates),
  };
}

const text = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

async function progressCall(client, steps, duration) {
  const seen = [];
  const result = await api.callTool(
    client,
    { name: 'trigger-long-running-operation', arguments: { duration, steps } },
    { onprogress: (p) => seen.push(p.progress) },
  );
  return { isError: result.isError ?? false, text: text(result), progress: seen };
}

/** A long call aborted once its first progress arrives: how the client saw
 * it end, how long after the abort, and that the gateway still serves. */
async function cancelled(client) {
  const controller = new AbortController();
  let firstProgress;
  const started = new Promise((resolve) => (firstProgress = resolve));
  const call = api.callTool(
    client,
    { name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 } },
    { signal: controller.signal, onprogress: () => firstProgress() },
  );
  const outcome = call.then(
    (r) => ({ answered: true, text: text(r) }),
    (e) => ({ answered: false, error: String(e?.name ?? e) + ': ' + String(e?.message ?? '') }),
  );
  await Promise.race([started, outcome]);
  const abortedAt = Date.now();
  controller.abort('the test gave up');
  const ended = await outcome;
  const after = await api.callTool(client, { name: 'echo', arguments: { message: 'after the cancel' } });
  return { ...ended, endedAfterMs: Date.now() - abortedAt, echoAfter: text(after) };
}

/** `n` clients at once, each with its own echo messages and its own long
 * operation (2..4 steps): what each received. */
async function many(n) {
  const agent = async (i) => {
    const client = await connect(plan.proxy, plan.era);
    try {
      const echoes = [];
      for (let k = 0; k < 3; k++) {
        echoes.push(text(await api.callTool(client, { name: 'echo', arguments: { message: `ts client ${i} call ${k}` } })));
      }
      const slow = await progressCall(client, 2 + (i % 3), 1);
      return { client: i, echoes, slow };
    } finally {
      await client.close();
    }
  };
  return Promise.all(Array.from({ length: n }, (_, i) => agent(i)));
}

const report = {};
{
  const direct = await connect(plan.direct, 'legacy');
  report.direct = await listings(direct);
  await direct.close();
}
const client = await connect(plan.proxy, plan.era);
try {
  report.protocol = api.protocol(client);
  report.proxy = await listings(client);
  report.progress = await progressCall(client, 4, 1);
  if (plan.interactive) {
    const sampled = await api.callTool(client, { name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 5 } });
    report.sampling = { isError: sampled.isError ?? false, text: text(sampled) };
    const elicited = await api.callTool(client, { name: 'trigger-elicitation-request', arguments: {} });
    report.elicitation = { isError: elicited.isError ?? false, text: text(elicited) };
  }
  report.cancel = await cancelled(client);
} finally {
  await client.close();
}
report.many = plan.clients > 0 ? await many(plan.clients) : [];
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
