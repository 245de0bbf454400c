// Usage: node validate-hls.mjs <playlist file>...
//
// Parses each playlist with hls-parser (an independent implementation of RFC 8216bis and
// Apple's LL-HLS rules) in strict mode, where any rule broken is an error, and prints one JSON
// line: {"<file>": "ok" | "<error>", ...}. Exit status 0 when it ran (the caller judges).
import { readFileSync } from 'node:fs';
import HLS from 'hls-parser';

HLS.setOptions({ strictMode: true, silent: true });
const result = {};
for (const file of process.argv.slice(2)) {
  try {
    HLS.parse(readFileSync(file, 'utf8'));
    result[file] = 'ok';
  } catch (e) {
    result[file] = String(e && e.message ? e.message : e);
  }
}
process.stdout.write(JSON.stringify(result) + '\n');
