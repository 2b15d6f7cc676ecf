// Builds the app's Custom UI into the resource folder the manifest declares
// (`resources: [{key: ui, path: static/ui}]`): index.html, app.js and app.css. One bundle
// serves every module; the view follows `moduleKey` from `view.getContext()`.
//
//   node build.mjs          build, print each file's size and the gzip-compressed total
//
// The bundle must stay under 300 KB gzip-compressed (issue #15); the build fails above it.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'static', 'ui');
const LIMIT = 300 * 1024;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Approvals</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
<script defer src="app.js"></script>
</head>
<body>
<div id="root"></div>
</body>
</html>
`;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: join(here, 'src', 'main.jsx') },
  outdir: out,
  bundle: true,
  minify: true,
  // A classic script, run after the platform's bridge script that comes first in <head>.
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'none',
  logLevel: 'warning',
});
writeFileSync(join(out, 'index.html'), HTML);

let total = 0;
const rows = ['index.html', 'app.js', 'app.css'].map((name) => {
  const bytes = readFileSync(join(out, name));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  return `  ${name.padEnd(11)} ${kb(bytes.length).padStart(9)}  ${kb(gz).padStart(9)} gzip`;
});
console.log(`UI built into ${relative(process.cwd(), out) || '.'}:\n${rows.join('\n')}`);
console.log(`  total       ${kb(total).padStart(21)} gzip (limit ${kb(LIMIT)})`);
if (total > LIMIT) {
  // Nothing over the limit stays behind: a later build must not find it "up to date".
  rmSync(out, { recursive: true, force: true });
  console.error(`the UI bundle is ${kb(total)} gzip-compressed, over the ${kb(LIMIT)} limit`);
  process.exit(1);
}

function kb(n) {
  return `${(n / 1024).toFixed(1)} KB`;
}
