// SPDX-License-Identifier: MIT
// json_lines.js FILE: JSON.parse on every line of FILE (JSON lines);
// prints "LINES n" and exits 0, or names the first bad line and exits 1.
'use strict';
const fs = require('fs');
const text = fs.readFileSync(process.argv[2], 'utf8');
const lines = text.split('\n');
if (lines.pop() !== '') {
    console.error('json_lines: no newline at the end');
    process.exit(1);
}
lines.forEach((l, i) => {
    try {
        const o = JSON.parse(l);
        if (typeof o !== 'object' || o === null || Array.isArray(o))
            throw new Error('not an object');
    } catch (e) {
        console.error(`json_lines: line ${i + 1}: ${e.message}: ${l}`);
        process.exit(1);
    }
});
console.log(`LINES ${lines.length}`);
