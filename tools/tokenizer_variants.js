// Synthetic tokenizer.json files for the reference tests, derived from the real package files:
// each swaps in components that the real tokenizers do not use, so that HF's Rust tokenizers can
// serve as the reference for them too. Used by tools/tokenizer_reference.js.
'use strict';
const fs = require('fs');
const path = require('path');

function load(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
}

const byteLevel = (addPrefixSpace, useRegex) => ({
  type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: useRegex,
});

function makeVariants(dirs) {
  const gpt2 = load(dirs.gpt2);
  const llama2 = load(dirs.llama2);
  const clone = (j) => JSON.parse(JSON.stringify(j));
  const out = [];
  const add = (name, base, patch) => out.push({ name, tokenizer: Object.assign(clone(base), patch) });

  add('gpt2-normalizers', gpt2, {
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'NFKD' }, { type: 'StripAccents' }, { type: 'Lowercase' },
      { type: 'Strip', strip_left: true, strip_right: true },
      { type: 'Replace', pattern: { Regex: '\\d{3,}' }, content: '#' },
    ] },
    pre_tokenizer: byteLevel(true, true),
  });
  add('gpt2-nfkc-split', gpt2, {
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'NFKC' }, { type: 'Prepend', prepend: ' ' },
      { type: 'Replace', pattern: { String: '  ' }, content: ' ' },
    ] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Digits', individual_digits: true },
      { type: 'Punctuation', behavior: 'Contiguous' },
      byteLevel(false, false),
    ] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>'] } },
    },
  });
  add('gpt2-splits', gpt2, {
    normalizer: { type: 'NFD' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { Regex: '[aeiouAEIOU]+' }, behavior: 'Contiguous', invert: true },
      { type: 'Split', pattern: { Regex: '[,.;]' }, behavior: 'Removed', invert: false },
      { type: 'Split', pattern: { String: 'th' }, behavior: 'Isolated', invert: false },
      { type: 'Digits', individual_digits: false },
      byteLevel(false, false),
    ] },
    post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 50256], cls: ['<|endoftext|>', 50256],
      trim_offsets: true, add_prefix_space: false },
  });
  add('gpt2-whitespace', gpt2, {
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, byteLevel(false, false)] },
  });
  add('gpt2-wssplit', gpt2, {
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Isolated' }, byteLevel(false, false),
    ] },
  });
  {
    const t = clone(gpt2);
    t.normalizer = { type: 'Lowercase' };
    const tok = (id, content, o) => Object.assign({ id, content, single_word: false, lstrip: false,
      rstrip: false, normalized: false, special: false }, o);
    t.added_tokens.push(
      tok(50257, 'hello', { single_word: true, lstrip: true, rstrip: true }),
      tok(50258, '<mask>', { lstrip: true, special: true }),
      tok(50259, 'World', { normalized: true }),
      tok(50260, '[NEW]', { rstrip: true, special: true }),
      tok(50261, ' the', {}),
      tok(50262, 'ing', { single_word: true, normalized: true }),
      tok(50263, '😀', { lstrip: true, rstrip: true, special: true }),
    );
    out.push({ name: 'gpt2-added', tokenizer: t });
  }
  add('llama2-metaspace', llama2, {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      { type: 'ByteFallback' }, { type: 'Fuse' },
    ] },
  });
  add('llama2-metaspace-split', llama2, {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
  });
  {
    // Unigram over Llama 2's pieces, scored by rank.
    const t = clone(llama2);
    const pieces = Object.entries(llama2.model.vocab).sort((a, b) => a[1] - b[1]);
    t.model = { type: 'Unigram', unk_id: 0, byte_fallback: true,
      vocab: pieces.map(([p, id]) => [p, id < 3 ? 0.0 : -Math.log(id + 1) - p.length * 0.01]) };
    t.normalizer = null;
    t.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
    out.push({ name: 'llama2-unigram', tokenizer: t });
  }
  {
    // WordPiece (BERT-style) with a vocabulary made from GPT-2's ASCII tokens.
    const vocab = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3, '[MASK]': 4 };
    let next = 5;
    for (const tok of Object.keys(gpt2.model.vocab)) {
      let piece = tok.startsWith('Ġ') ? tok.slice(1) : '##' + tok;
      if (!/^[\x21-\x7e#]+$/.test(piece) || piece === '##' || vocab[piece] !== undefined) continue;
      vocab[piece] = next++;
    }
    const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true });
    out.push({ name: 'gpt2-wordpiece', tokenizer: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [special(0, '[PAD]'), special(1, '[UNK]'), special(2, '[CLS]'), special(3, '[SEP]'),
        special(4, '[MASK]')],
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
        strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
        max_input_chars_per_word: 100, vocab },
    } });
    const words = {};
    let n = 0;
    for (const w of Object.keys(vocab)) if (!w.startsWith('##')) words[w] = n++;
    out.push({ name: 'gpt2-wordlevel', tokenizer: {
      version: '1.0', truncation: null, padding: null, added_tokens: [special(1, '[UNK]')],
      normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null,
      model: { type: 'WordLevel', vocab: words, unk_token: '[UNK]' },
    } });
  }
  return out;
}

module.exports = { makeVariants };
