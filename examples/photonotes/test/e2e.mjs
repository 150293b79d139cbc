// SPDX-License-Identifier: MIT
// test/e2e.mjs BIN CERTDIR - the two-device scenario in Node: built-in
// fetch and the built-in WebSocket (node >= 20.10 --experimental-websocket),
// else the npm ws package the repo pins in tests/interop (make
// interop-deps); the dev CA comes in through NODE_EXTRA_CA_CERTS. Starts BIN over HTTPS on
// a free port with a fresh SQLite file, plays device A and device B of
// one user: register, log in twice, B listens on /v1/live, A creates and
// edits, B sees both live; a stale If-Match gets 412, none 428; 422 field
// errors; paging; logout refuses the token; a restart keeps the data.
// Every wait is bounded and says what it waited for; only the server this
// script started is killed; its temp dir is removed.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [bin, certs] = process.argv.slice(2);
let WebSocket = globalThis.WebSocket;
if (typeof WebSocket !== 'function') {
    try {
        WebSocket = createRequire(import.meta.url)('../../../tests/interop/node_modules/ws');
    } catch { /* neither */ }
}
if (!bin || !certs || typeof WebSocket !== 'function') {
    console.error('usage: NODE_EXTRA_CA_CERTS=CA node [--experimental-websocket] e2e.mjs BIN CERTDIR\n' +
                  '(a WebSocket: node >= 20.10, or make interop-deps for the npm ws package)');
    process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'photonotes-node-'));
let server = null;
let step = 'start';

function cleanup() {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
}
function fail(msg) {
    console.error(`e2e.mjs: FAIL at "${step}": ${msg}`);
    cleanup();
    process.exit(1);
}
const overall = setTimeout(() => fail('the whole scenario took over 150 s'), 150000);
function check(cond, msg) { if (!cond) fail(msg); }

// Waits for pred() to be true, polling; fails naming what it waited for.
async function waitFor(what, pred, ms = 20000) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (pred()) return;
        await new Promise(r => setTimeout(r, 20));
    }
    fail(`timed out after ${ms} ms waiting for ${what}`);
}

async function start() {
    server = spawn(bin, ['--port', '0', '--db', join(dir, 'notes.db'), '--threads', '2',
                         '--photo-dir', join(dir, 'photos'), '--tls-cert', join(certs, 'server.pem'), '--tls-key', join(certs, 'server.key')],
                   { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '', port = 0;
    server.stderr.on('data', d => {
        err += d;
        const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(err);
        if (m) port = Number(m[1]);
    });
    await waitFor(`the "listening on" line (stderr so far: ${JSON.stringify(err)})`,
                  () => port > 0 || server.exitCode !== null);
    check(port > 0, `server exited ${server.exitCode}: ${err}`);
    return `https://127.0.0.1:${port}`;
}

async function stop() {
    server.kill('SIGTERM');
    await waitFor('the server to exit after SIGTERM', () => server.exitCode !== null, 15000);
    check(server.exitCode === 0, `server exit status ${server.exitCode}`);
}

let base;
async function api(method, path, { token, body, headers = {}, device } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (device) h['X-Device-ID'] = device;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(base + path, { method, headers: h,
                                         body: body !== undefined ? JSON.stringify(body) : undefined,
                                         signal: AbortSignal.timeout(20000) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, json, text };
}
function expect(r, status, what) {
    check(r.status === status, `${what}: status ${r.status}, expected ${status}: ${r.text}`);
    return r;
}

base = await start();
step = 'register and log in twice';
const user = `node${process.pid}`;
expect(await api('POST', '/v1/auth/register', { body: { username: user, password: 'correct horse' } }), 201, 'register');
expect(await api('POST', '/v1/auth/register', { body: { username: user, password: 'correct horse' } }), 409, 'register again');
expect(await api('POST', '/v1/auth/login', { body: { username: user, password: 'wrong password' } }), 401, 'bad password');
const a = expect(await api('POST', '/v1/auth/login', { body: { username: user, password: 'correct horse' } }), 200, 'login A').json.token;
const b = expect(await api('POST', '/v1/auth/login', { body: { username: user, password: 'correct horse' } }), 200, 'login B').json.token;
check(/^[0-9a-f]{64}$/.test(a) && a !== b, `tokens ${a} ${b}`);

step = 'device B opens the WebSocket (token as a subprotocol)';
const events = [];
const ws = new WebSocket(base.replace('https', 'wss') + '/v1/live', ['photonotes.v1', `bearer.${b}`]);
ws.onmessage = m => events.push(JSON.parse(m.data));
await waitFor('{"type":"ready"} on the WebSocket', () => events.some(e => e.type === 'ready'));
check(ws.protocol === 'photonotes.v1', `selected subprotocol ${ws.protocol}`);

step = 'device A creates a note, B sees it live';
const c = expect(await api('POST', '/v1/notes', { token: a, device: 'phone-A', body: { title: 'Milk', body: '2 litres' } }), 201, 'create');
const id = c.json.id;
check(c.headers.get('etag') === '"1"' && c.headers.get('location') === `/v1/notes/${id}`,
      `ETag ${c.headers.get('etag')} Location ${c.headers.get('location')}`);
await waitFor(`note.created ${id} from phone-A on B's WebSocket (got ${JSON.stringify(events)})`,
              () => events.some(e => e.type === 'note.created' && e.id === id && e.device === 'phone-A' && e.note.title === 'Milk'));

step = 'A edits with If-Match, B sees it; B edits with the stale ETag';
const u = expect(await api('PUT', `/v1/notes/${id}`, { token: a, device: 'phone-A', headers: { 'If-Match': '"1"' },
                                                     body: { title: 'Milk', body: '3 litres' } }), 200, 'update');
check(u.headers.get('etag') === '"2"' && u.json.version === 2, `after update: ${u.text}`);
await waitFor('note.updated version 2 on B', () => events.some(e => e.type === 'note.updated' && e.note && e.note.version === 2));
const stale = expect(await api('PUT', `/v1/notes/${id}`, { token: b, headers: { 'If-Match': '"1"' },
                                                         body: { title: 'Milk', body: 'from B' } }), 412, 'stale If-Match');
check(stale.json.error.code === 'version_mismatch' && stale.headers.get('etag') === '"2"', `412 body ${stale.text}`);
expect(await api('PUT', `/v1/notes/${id}`, { token: b, body: { title: 'x', body: 'y' } }), 428, 'no If-Match');
const bad = expect(await api('POST', '/v1/notes', { token: b, body: { title: '', extra: 1 } }), 422, 'invalid note');
check(bad.json.error.fields.title && bad.json.error.fields.body && bad.json.error.fields.extra, `422 fields ${bad.text}`);
const again = expect(await api('GET', `/v1/notes/${id}`, { token: b, headers: { 'If-None-Match': '"2"' } }), 304, 'If-None-Match');

step = 'paging with the cursor';
for (let i = 0; i < 5; i++)
    expect(await api('POST', '/v1/notes', { token: b, body: { title: `n${i}`, body: '' } }), 201, `create n${i}`);
const seen = [];
let cursor = null;
for (let pages = 0; pages < 10; pages++) {
    const q = `/v1/notes?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
    const p = expect(await api('GET', q, { token: b }), 200, q);
    seen.push(...p.json.notes.map(n => n.id));
    cursor = p.json.next_cursor;
    if (!cursor) break;
}
check(seen.length === 6 && new Set(seen).size === 6 && seen[0] > seen[5], `paged ids ${seen}`);
expect(await api('GET', '/v1/notes?cursor=garbage', { token: b }), 422, 'bad cursor');

step = 'a 5 MB photo: upload, live event, download, interrupted download resumed with Range';
const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(5 * 1024 * 1024 - 4)]);
const sha = createHash('sha256').update(jpeg).digest('hex');
const form = new FormData();
form.append('caption', 'the fridge');
form.append('photo', new Blob([jpeg], { type: 'image/jpeg' }), 'fridge.jpg');
const up = await fetch(`${base}/v1/notes/${id}/photos`, { method: 'POST', body: form, signal: AbortSignal.timeout(60000),
                                                         headers: { Authorization: `Bearer ${a}`, 'X-Device-ID': 'phone-A' } });
const photo = await up.json();
check(up.status === 201 && photo.sha256 === sha && photo.size === jpeg.length && photo.type === 'image/jpeg',
      `upload: ${up.status} ${JSON.stringify(photo)}`);
await waitFor('photo.added on B', () => events.some(e => e.type === 'photo.added' && e.photo.id === photo.id));
const full = await fetch(base + photo.url, { headers: { Authorization: `Bearer ${b}` }, signal: AbortSignal.timeout(60000) });
const etag = full.headers.get('etag');
check(full.status === 200 && etag, `download ${full.status}`);
const got = [];
let have = 0;
const reader = full.body.getReader();
while (have < 1024 * 1024) { // the radio drops after about 1 MB
    const { value, done } = await reader.read();
    if (done) break;
    got.push(Buffer.from(value));
    have += value.length;
}
await reader.cancel();
const rest = await fetch(base + photo.url, { headers: { Authorization: `Bearer ${b}`, Range: `bytes=${have}-`, 'If-Range': etag },
                                             signal: AbortSignal.timeout(60000) });
check(rest.status === 206 && rest.headers.get('content-range') === `bytes ${have}-${jpeg.length - 1}/${jpeg.length}`,
      `resume: ${rest.status} ${rest.headers.get('content-range')}`);
got.push(Buffer.from(await rest.arrayBuffer()));
check(createHash('sha256').update(Buffer.concat(got)).digest('hex') === sha, 'the resumed download differs');
const cached = await fetch(base + photo.url, { headers: { Authorization: `Bearer ${b}`, 'If-None-Match': etag } });
check(cached.status === 304, `If-None-Match on the photo: ${cached.status}`);
const txt = new FormData();
txt.append('photo', new Blob(['just text, not a photo at all']), 'notes.txt');
const refused = await fetch(`${base}/v1/notes/${id}/photos`, { method: 'POST', body: txt, headers: { Authorization: `Bearer ${a}` } });
check(refused.status === 415, `a text file as a photo: ${refused.status}`);
const file = join(dir, 'photos', `${photo.id}.photo`);
check(existsSync(file), `${file} missing after the upload`);
expect(await api('DELETE', photo.url, { token: a }), 204, 'delete the photo');
expect(await api('GET', photo.url, { token: b }), 404, 'the deleted photo');
check(!existsSync(file), `${file} still there after DELETE`);

step = 'delete, unknown token on the WebSocket, logout';
expect(await api('DELETE', `/v1/notes/${seen[0]}`, { token: a, device: 'phone-A' }), 204, 'delete');
await waitFor('note.deleted on B', () => events.some(e => e.type === 'note.deleted' && e.id === seen[0]));
const unknown = new WebSocket(base.replace('https', 'wss') + `/v1/live?token=${'0'.repeat(64)}`);
let closeCode = 0;
unknown.onclose = e => { closeCode = e.code; };
await waitFor('close 4401 for an unknown token', () => closeCode !== 0);
check(closeCode === 4401, `close code ${closeCode}`);
expect(await api('POST', '/v1/auth/logout', { token: a }), 204, 'logout');
expect(await api('GET', '/v1/notes', { token: a }), 401, 'the token after logout');
expect(await api('GET', '/v1/notes', { token: b }), 200, 'the other device still in');

step = 'restart: the data and B\'s session survive';
let wsClosed = false;
ws.onclose = () => { wsClosed = true; };
await stop();
await waitFor('the WebSocket to close when the server stops', () => wsClosed);
base = await start();
const r = expect(await api('GET', `/v1/notes/${id}`, { token: b }), 200, 'read after restart');
check(r.json.body === '3 litres' && r.json.version === 2, `after restart: ${r.text}`);
expect(await api('GET', '/v1/notes', { token: a }), 401, 'the logged-out token after restart');
await stop();
clearTimeout(overall);
cleanup();
console.log('e2e.mjs: ok (register, login x2, live create/update/delete over WebSocket, 412/428/422, paging, 5 MB photo up/down/Range resume, logout, restart)');
