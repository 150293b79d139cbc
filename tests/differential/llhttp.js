// SPDX-License-Identifier: MIT
// llhttp.js - the reference side of the differential parser test (run.sh):
// Node's own HTTP server (llhttp, strict: insecureHTTPParser false) on
// 127.0.0.1, port 0. For each file named on the command line a raw TCP
// socket writes the whole file, half-closes, and the first request the
// server's handler sees (method, url, rawHeaders, body) or the parse error
// (clientError) is printed as one JSON line, the same shape as dump.c:
//   {"file":..,"ok":true,"method":..,"target":..,"headers":[[n,v],..],"body_hex":..}
//   {"file":..,"ok":false,"status":"HPE_...|incomplete|timeout"}
// Strings are latin1 (one char per wire byte). Bounded: PER_INPUT_MS per
// input, TOTAL_MS overall (then the remaining inputs are "timeout").
'use strict';
const http = require('http');
const net = require('net');
const fs = require('fs');

const PER_INPUT_MS = 1000;
const TOTAL_MS = 50000;
const t0 = Date.now();

// The state of the input being run; each server-side socket is bound to
// the state current when it connected, so a late event from an earlier
// input's connection can never be taken for this one's.
let cur = null; // { done(result), req, chunks, reply }

const server = http.createServer({
  insecureHTTPParser: false,
  requireHostHeader: true,
  joinDuplicateHeaders: false,
  maxHeaderSize: 16384,
});

function okResult(st) {
  const req = st.req;
  let more;
  while ((more = req.read()) !== null) st.chunks.push(more);
  const h = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    h.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  return {
    ok: true, status: 0, method: req.method, target: req.url, headers: h,
    body_hex: Buffer.concat(st.chunks).toString('hex'),
  };
}

server.on('connection', (sock) => { sock.diffState = cur; });

server.on('request', (req, res) => {
  const st = req.socket.diffState;
  if (!st || st.req) return; // only the first request of the payload counts
  st.req = req;
  req.on('data', (d) => st.chunks.push(d));
  req.on('end', () => st.done(okResult(st)));
  req.on('close', () => {
    if (req.complete) st.done(okResult(st));
    else st.done({ ok: false, status: 'incomplete' });
  });
  res.on('error', () => {});
});

// CONNECT is handed to this event with the raw socket instead of being
// served as a request: the tunnel is no HTTP request the handler sees.
server.on('connect', (req, sock) => {
  const st = sock.diffState;
  if (st && !st.req) st.done({ ok: false, status: 'CONNECT-tunnel' });
  sock.destroy();
});

server.on('clientError', (err, sock) => {
  const st = sock.diffState;
  if (st) {
    if (st.req && st.req.complete) st.done(okResult(st)); // error is in a later request
    else if (st.req) st.done({ ok: false, status: 'body:' + (err.code || 'error') });
    else if (err.code === 'HPE_INVALID_EOF_STATE') st.done({ ok: false, status: 'incomplete' });
    else st.done({ ok: false, status: err.code || String(err) });
  }
  sock.destroy();
});

function runOne(file) {
  return new Promise((resolve) => {
    const data = fs.readFileSync(file);
    if (Date.now() - t0 > TOTAL_MS) return resolve({ ok: false, status: 'timeout' });
    let finished = false;
    const sock = net.connect(server.address().port, '127.0.0.1');
    const st = {
      req: null, chunks: [], reply: '',
      done(r) {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        sock.destroy();
        // let the server-side socket teardown settle before the next input
        setImmediate(() => resolve(r));
      },
    };
    cur = st;
    const timer = setTimeout(() => st.done(
      st.req && st.req.complete ? okResult(st)
        : { ok: false, status: data.length ? 'timeout' : 'incomplete' }), PER_INPUT_MS);
    sock.on('error', () => {});
    // Node's http layer answers some requests itself (e.g. 400 for a
    // missing Host) without calling the handler: keep what the client got.
    sock.on('data', (d) => { st.reply += d.toString('latin1'); });
    const orEnd = () => {
      if (st.req && st.req.complete) return okResult(st);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(st.reply);
      return { ok: false, status: m && !st.req ? 'http-' + m[1] : 'incomplete' };
    };
    sock.on('close', () => setTimeout(() => st.done(orEnd()), 200));
    sock.on('connect', () => sock.end(data));
  });
}

server.listen(0, '127.0.0.1', async () => {
  for (const f of process.argv.slice(2)) {
    const r = await runOne(f);
    cur = null;
    process.stdout.write(JSON.stringify(Object.assign({ file: f }, r)) + '\n');
  }
  server.close();
  process.exit(0);
});
