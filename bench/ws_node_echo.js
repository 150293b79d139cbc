// SPDX-License-Identifier: MIT
//
// ws_node_echo.js - the Node peer of the WebSocket benchmark
// (bench/run.sh): the npm `ws` package (tests/interop/node_modules, from
// `make interop-deps`) echoing every message with its type, no
// permessage-deflate (appsrv declines it too), a 1 MiB message cap like
// appsrv's default. Plain GET /plaintext answers "Hello, World!" so the
// script can tell it is up. Usage: node ws_node_echo.js PORT
'use strict';
const http = require('http');
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', 'tests', 'interop', 'node_modules', 'ws'));

const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 13 });
    res.end('Hello, World!');
});
server.keepAliveTimeout = 300000;
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(Number(process.argv[2] || 8080), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
