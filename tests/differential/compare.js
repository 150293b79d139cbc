// SPDX-License-Identifier: MIT
// compare.js - joins dump.c's and llhttp.js's JSON lines (run.sh) by file,
// prints one table row per input and the totals, and exits 1 on an
// UNEXPLAINED disagreement:
//   - both accept but method, target (llhttp's without a '#fragment', which
//     appsrv drops: RFC 9110 §7.1), headers (values trimmed) or body differ;
//   - only one side accepts and no allowlisted class in README.md matches.
// Allowlist rows in README.md look like
//   | `class-id` | appsrv | `` /regex/flags `` | RFC justification |
// where the side is the one that ACCEPTS and the JavaScript regex is tried
// on the payload as a latin1 string. Inside the table a '|' of the regex is
// written '\|' (GFM escaping); a literal '|' byte is written \x7c.
// Usage: node compare.js appsrv.jsonl llhttp.jsonl README.md PAYLOAD_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const [appsrvFile, nodeFile, readme, payloadDir] = process.argv.slice(2);
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const key = (f) => path.basename(f);
const A = new Map(lines(appsrvFile).map((r) => [key(r.file), r]));
const L = new Map(lines(nodeFile).map((r) => [key(r.file), r]));

const classes = [];
for (const row of fs.readFileSync(readme, 'utf8').split('\n')) {
  const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
  if (cells.length < 5 || cells[0] !== '') continue;
  const id = /^`([\w-]+)`$/.exec(cells[1]);
  const re = /^`+ ?\/(.*)\/([a-z]*) ?`+$/.exec(cells[3]);
  if (!id || !/^(appsrv|llhttp)$/.test(cells[2]) || !re) continue;
  classes.push({ id: id[1], side: cells[2], re: new RegExp(re[1].replace(/\\\|/g, '|'), re[2]) });
}
if (!classes.length) { console.error('compare.js: no allowlist rows in ' + readme); process.exit(2); }

const trim = (s) => s.replace(/^[ \t]+|[ \t]+$/g, '');
// The fragment is not part of the target URI (RFC 9110 §7.1): appsrv's
// target ends before the first '#', llhttp's url keeps it.
const noFragment = (t) => t.replace(/#[\s\S]*$/, '');
function diff(a, b) {
  const d = [];
  if (a.method !== b.method) d.push(`method ${JSON.stringify(a.method)} vs ${JSON.stringify(b.method)}`);
  if (a.target !== noFragment(b.target)) d.push(`target ${JSON.stringify(a.target)} vs ${JSON.stringify(b.target)}`);
  const ha = JSON.stringify(a.headers.map(([n, v]) => [n, trim(v)]));
  const hb = JSON.stringify(b.headers.map(([n, v]) => [n, trim(v)]));
  if (ha !== hb) d.push(`headers ${ha} vs ${hb}`);
  if (a.body_hex !== b.body_hex) d.push(`body ${a.body_hex} vs ${b.body_hex}`);
  return d;
}

const n = { inputs: 0, both_accept: 0, both_reject: 0, only_appsrv: 0, only_llhttp: 0, unexplained: 0 };
const byClass = {};
const rows = [];
for (const [k, a] of A) {
  const b = L.get(k);
  n.inputs++;
  let verdict; let note = '';
  if (!b) { verdict = 'MISSING'; n.unexplained++; note = 'no llhttp result'; }
  else if (a.ok && b.ok) {
    n.both_accept++;
    const d = diff(a, b);
    if (d.length) { verdict = 'DIFFER'; n.unexplained++; note = d.join('; '); }
    else verdict = 'agree';
  } else if (!a.ok && !b.ok) {
    n.both_reject++; verdict = 'agree'; note = `${a.status} / ${b.status}`;
  } else {
    const side = a.ok ? 'appsrv' : 'llhttp';
    n[a.ok ? 'only_appsrv' : 'only_llhttp']++;
    const payload = fs.readFileSync(path.join(payloadDir, k)).toString('latin1');
    const c = classes.find((c) => c.side === side && c.re.test(payload));
    const other = a.ok ? b.status : a.status;
    if (c) { verdict = 'explained'; note = `only ${side} [${c.id}] (other: ${other})`; byClass[c.id] = (byClass[c.id] || 0) + 1; }
    else { verdict = 'UNEXPLAINED'; n.unexplained++; note = `only ${side} accepts (other: ${other})`; }
  }
  rows.push([k, a.ok ? 'accept' : `reject(${a.status})`, b ? (b.ok ? 'accept' : `reject(${b.status})`) : '-', verdict, note]);
}

const w = [0, 0, 0, 0];
for (const r of rows) for (let i = 0; i < 4; i++) w[i] = Math.max(w[i], r[i].length);
const pad = (s, i) => s + ' '.repeat(w[i] - s.length);
console.log([pad('input', 0), pad('appsrv', 1), pad('llhttp', 2), pad('verdict', 3), 'note'].join('  '));
for (const r of rows) console.log([pad(r[0], 0), pad(r[1], 1), pad(r[2], 2), pad(r[3], 3), r[4]].join('  '));
console.log(`\n${n.inputs} inputs: ${n.both_accept} both accept, ${n.both_reject} both reject, ` +
  `${n.only_appsrv} only appsrv, ${n.only_llhttp} only llhttp; ${n.unexplained} unexplained`);
for (const [id, c] of Object.entries(byClass)) console.log(`  explained class ${id}: ${c}`);
process.exit(n.unexplained ? 1 : 0);
