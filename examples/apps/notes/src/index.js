// The notes app's resolvers: what its UI would call.
const Resolver = require('@forge/resolver').default;
const api = require('@forge/api');
const { route } = api;
const { kvs, WhereConditions } = require('@forge/kvs');
const { Queue } = require('@forge/events');

const resolver = new Resolver();
const queue = new Queue({ key: 'notes-queue' });

// Adds a note to a page: the note and the page's note counter change together.
resolver.define('note.add', async ({ payload, context }) => {
  const { pageId, text } = payload;
  const count = (await kvs.get(`count:${pageId}`)) ?? 0;
  const id = `note:${pageId}:${String(count + 1).padStart(4, '0')}`;
  await kvs
    .transact()
    .set(id, { text, by: context.accountId, at: new Date().toISOString() })
    .set(`count:${pageId}`, count + 1)
    .execute();
  return { id, count: count + 1 };
});

// The notes of a page, a page at a time.
resolver.define('note.list', async ({ payload }) => {
  let q = kvs
    .query()
    .where('key', WhereConditions.beginsWith(`note:${payload.pageId}:`))
    .limit(payload.limit ?? 10);
  if (payload.cursor) q = q.cursor(payload.cursor);
  const page = await q.getMany();
  return { notes: page.results.map((r) => ({ id: r.key, ...r.value })), cursor: page.nextCursor ?? null };
});

// Marks a page as reviewed in a content property, with the version Confluence expects.
resolver.define('page.mark', async ({ payload }) => {
  const { pageId } = payload;
  const pageRes = await api.asApp().requestConfluence(route`/wiki/api/v2/pages/${pageId}?body-format=storage`);
  if (!pageRes.ok) return { error: pageRes.status };
  const page = await pageRes.json();
  const propRes = await api.asApp().requestConfluence(route`/wiki/rest/api/content/${pageId}/property/notes-review`);
  const current = propRes.status === 200 ? await propRes.json() : null;
  const value = { reviewedVersion: page.version.number, title: page.title };
  const write = current
    ? await api.asApp().requestConfluence(route`/wiki/rest/api/content/${pageId}/property/notes-review`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value, version: { number: (payload.staleVersion ?? current.version.number) + 1 } }),
      })
    : await api.asApp().requestConfluence(route`/wiki/rest/api/content/${pageId}/property`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'notes-review', value }),
      });
  return { status: write.status, property: write.ok ? await write.json() : null };
});

// The page the calling byline item is shown on, as content apps find it: from the context's
// extension, not from the payload.
resolver.define('page.here', async ({ context }) => {
  const content = context.extension && context.extension.content;
  if (!content) return { error: 'not called from a page' };
  const res = await api.asApp().requestConfluence(route`/wiki/api/v2/pages/${content.id}`);
  const page = await res.json();
  return { pageId: content.id, title: page.title, space: context.extension.space.key };
});

// Hands work to the queue's consumer.
resolver.define('queue.push', async ({ payload }) => {
  await queue.push([{ body: { pageId: payload.pageId, kind: 'reindex' } }]);
  return { pushed: 1 };
});

// What the platform shows the app: the caller, virtual time, seeded randomness.
resolver.define('whoami', async ({ context }) => {
  const ctx = api.getAppContext();
  return {
    accountId: context.accountId,
    installationId: ctx.installationId,
    environmentType: ctx.environmentType,
    now: Date.now(),
    iso: new Date().toISOString(),
    random: Math.random(),
    uuid: require('crypto').randomUUID(),
    later: await new Promise((resolve) => setTimeout(() => resolve(Date.now()), 1500)),
  };
});

// Module state stays warm between invocations of one installation, as on the platform.
let calls = 0;
resolver.define('warm', () => ({ calls: ++calls }));

resolver.define('ping', () => 'pong');

// The web trigger's URL, as the app would show it to an admin to paste elsewhere.
resolver.define('hook.url', async () => {
  const url = await api.webTrigger.getUrl('notes-hook');
  const all = await api.webTrigger.queryUrls();
  await api.webTrigger.deleteUrl(url);
  let unknown;
  try {
    await api.webTrigger.getUrl('no-such-trigger');
  } catch (e) {
    unknown = e.message;
  }
  return { url, all, unknown };
});

// Tags are a custom entity; their code is TypeScript (src/tags.ts), built as the Forge CLI would.
const tags = require('./tags');
resolver.define('tag.add', ({ payload }) => tags.addTag(payload.pageId, payload.label, payload.weight));
resolver.define('tag.bad', ({ payload }) => tags.addBadTag(payload.pageId));
resolver.define('tag.list', ({ payload }) => tags.tagsOf(payload.pageId, payload.minWeight ?? 0));

exports.handler = resolver.getDefinitions();
