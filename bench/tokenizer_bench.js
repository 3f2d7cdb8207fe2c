#!/usr/bin/env node
// HF `tokenizers` (Rust, npm tokenizers@0.23.2) side of the tokenizer benchmark. Splits TEXT into
// documents of about 4 KB at line boundaries, writes them to DOCS.json for the hearth side
// (bench/tokenizer_bench.cpp), encodes them one by one (single thread: each encode call is one
// sequence, awaited before the next) and prints MB/s like the C++ side.
// Usage: node bench/tokenizer_bench.js TOKENIZERS_PKG_DIR MODEL_DIR TEXT DOCS.json [passes]
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [pkg, modelDir, textFile, docsFile, passesArg] = process.argv.slice(2);
  const { Tokenizer } = require(path.resolve(pkg));
  const passes = Math.max(2, Number(passesArg || 5));
  const text = fs.readFileSync(textFile, 'utf8');
  const docs = [];
  let cur = '';
  for (const line of text.split(/(?<=\n)/)) {
    cur += line;
    if (Buffer.byteLength(cur) >= 4096) {
      docs.push(cur);
      cur = '';
    }
  }
  if (cur) docs.push(cur);
  fs.writeFileSync(docsFile, JSON.stringify(docs));
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);

  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const seconds = [];
  let tokens = 0;
  for (let p = 0; p < passes; p++) {
    tokens = 0;
    t0 = process.hrtime.bigint();
    for (const d of docs) tokens += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const warm = seconds.slice(1).sort((a, b) => a - b);
  const mb = bytes / 1e6;
  console.log(JSON.stringify({ impl: 'hf', bytes, docs: docs.length, tokens, load_s: +loadS.toFixed(3),
    cold_mbps: +(mb / seconds[0]).toFixed(2), warm_mbps: +(mb / warm[Math.floor(warm.length / 2)]).toFixed(2) }));
}

main().catch((e) => {
  console.error('tokenizer_bench.js:', e.message || e);
  process.exit(1);
});
