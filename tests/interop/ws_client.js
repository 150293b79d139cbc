// SPDX-License-Identifier: MIT
//
// ws_client.js - interoperability of appsrv's WebSocket endpoints with
// Node clients: the npm `ws` package (mode "ws", from node_modules here) or
// Node's own WebSocket (mode "builtin": Node 22+, or 20 with
// --experimental-websocket). Run by tests/test_ws_interop.c against the
// CLI: node ws_client.js MODE PORT. Echo of text (also non-ASCII), binary,
// 64 KiB and 1 MiB messages on /ws; a close with code and reason; for ws,
// a ping answered by a pong and a message over the server's cap (1009);
// the /ws/room broadcast with three members. Prints one line per check
// and exits 0 when all passed; every wait is bounded.
'use strict';

const mode = process.argv[2];
const port = process.argv[3];
const base = `ws://127.0.0.1:${port}`;
const WS = mode === 'ws' ? require('ws') : globalThis.WebSocket;
if (typeof WS !== 'function') {
    console.error('no WebSocket client for mode ' + mode);
    process.exit(2);
}
setTimeout(() => { console.error('timed out'); process.exit(1); }, 20000).unref();

function open(path) {
    return new Promise((resolve, reject) => {
        const ws = new WS(base + path);
        ws.binaryType = 'arraybuffer';
        ws.queue = [];
        ws.waiters = [];
        ws.onmessage = (ev) => {
            const w = ws.waiters.shift();
            if (w) w(ev.data); else ws.queue.push(ev.data);
        };
        ws.onopen = () => resolve(ws);
        ws.onerror = (e) => reject(new Error('error on ' + path + ': ' + (e.message || e.type)));
    });
}

function next(ws) {
    if (ws.queue.length) return Promise.resolve(ws.queue.shift());
    return new Promise((resolve) => ws.waiters.push(resolve));
}

function closed(ws) {
    return new Promise((resolve) => { ws.onclose = (ev) => resolve(ev); });
}

function same(a, b) {
    if (typeof a === 'string' || typeof b === 'string') return a === b;
    const x = Buffer.from(a), y = Buffer.from(b);
    return x.equals(y);
}

function check(cond, what) {
    if (!cond) { console.error('FAIL ' + what); process.exit(1); }
    console.log('ok ' + what);
}

async function main() {
    const ws = await open('/ws');
    const big = new Uint8Array(65536).map((_, i) => (i * 7) & 255);
    const texts = ['hello', 'κόσμε €😀', '', 'x'.repeat(1 << 20)];
    for (const t of texts) {
        ws.send(t);
        const got = await next(ws);
        check(typeof got === 'string' && got === t, `${mode}: text echo of ${t.length} chars`);
    }
    for (const b of [new Uint8Array([0, 1, 2, 255]), big]) {
        ws.send(b);
        const got = await next(ws);
        check(got instanceof ArrayBuffer && same(got, b), `${mode}: binary echo of ${b.length} bytes`);
    }
    if (mode === 'ws') {
        const pong = new Promise((resolve) => ws.once('pong', resolve));
        ws.ping(Buffer.from('are you there'));
        check(same(await pong, Buffer.from('are you there')), 'ws: ping answered with the payload');
    }
    const c = closed(ws);
    ws.close(4000, 'bye');
    const ev = await c;
    check(ev.code === 4000, `${mode}: close 4000 echoed (got ${ev.code})`);

    if (mode === 'ws') {
        const w2 = await open('/ws');
        const c2 = closed(w2);
        w2.send(Buffer.alloc((1 << 20) + 1));
        const e2 = await c2;
        check(e2.code === 1009, `ws: message over the cap closed with 1009 (got ${e2.code})`);
    }

    const room = [await open('/ws/room'), await open('/ws/room'), await open('/ws/room')];
    for (let i = 0; i < room.length; i++) room[i].send('from ' + i);
    for (let i = 0; i < room.length; i++) {
        const got = [await next(room[i]), await next(room[i]), await next(room[i])].sort();
        check(got.join('|') === 'from 0|from 1|from 2', `${mode}: room member ${i} got all three`);
    }
    for (const r of room) { const cl = closed(r); r.close(1000); await cl; }
    console.log('all ok');
}

main().catch((e) => { console.error('FAIL ' + e.stack); process.exit(1); });
