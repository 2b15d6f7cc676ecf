// The notes app's triggers: page events, the hourly schedule and the queue's consumer.
const { kvs } = require('@forge/kvs');

// Remembers the latest version seen of every page created or updated.
exports.onPage = async (event) => {
  const { id, version } = event.content;
  await kvs.set(`seen:${id}`, { version: version.number, by: event.atlassianId, at: Date.now() });
};

// Counts its own runs.
exports.hourly = async () => {
  const runs = (await kvs.get('hourly:runs')) ?? 0;
  await kvs.set('hourly:runs', runs + 1);
  return { statusCode: 204 };
};

// Records what the queue delivered.
exports.consume = async (event) => {
  await kvs.set(`consumed:${event.body.pageId}`, { kind: event.body.kind, jobId: event.jobId });
};

// The lifecycle event after an install.
exports.installed = async (event) => {
  await kvs.set('installed', { installation: event.id, version: event.app.version });
};

// A static web trigger (which keeps the app eligible): records what it was asked and picks
// the manifest's answer.
exports.hook = async (request) => {
  await kvs.set('hook:last', {
    method: request.method,
    page: (request.queryParameters.page || [])[0] || null,
    token: (request.headers['x-token'] || [])[0] || null,
  });
  return { outputKey: 'accepted' };
};
