// The BPE model of tokenizer.json: byte-level (GPT-2 / Llama 3 / Qwen) and SentencePiece-style
// (byte_fallback, fuse_unk, unk_token), ignore_merges, both merges encodings and
// continuing_subword_prefix / end_of_word_suffix. Merging follows HF `tokenizers`: the adjacent
// pair of lowest merge rank is merged first, the leftmost among equal ranks, driven by a binary
// heap over a linked list of symbols, so a word costs O(n log n). Results for words shorter than
// kCacheMaxWordBytes are cached, as HF does.
#include <algorithm>
#include <mutex>
#include <queue>

#include "core/error.h"
#include "text/components.h"
#include "text/unicode.h"
#include "text/vocab.h"

namespace hearth::text {
namespace {

// HF caches up to 10,000 words shorter than 256 bytes (utils/cache.rs); same limits here.
constexpr size_t kCacheCapacity = 10'000;
constexpr size_t kCacheMaxWordBytes = 256;
// Code points below this (the BMP: scripts, CJK, SentencePiece's U+2581, all GPT-2 byte-level
// characters) get their single-character ids from a table instead of a string-hash lookup.
constexpr char32_t kCharTableSize = 0x10000;
// SentencePiece's word-start marker U+2581, in UTF-8.
constexpr std::string_view kMetaspace = "\xE2\x96\x81";

// Open-addressing hash map (a, b) -> (rank, new_id) for the merges; far faster than
// std::unordered_map for 64-bit keys on the hot path.
class MergeMap {
 public:
  void build(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{kEmpty, 0});
    mask_ = cap - 1;
  }
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    const uint64_t key = pack(a, b);
    size_t i = slot(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
    slots_[i] = {key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(new_id)};
  }
  // Returns false when (a, b) is not a merge.
  bool find(int32_t a, int32_t b, uint32_t& rank, int32_t& new_id) const {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) {
        rank = static_cast<uint32_t>(s.value >> 32);
        new_id = static_cast<int32_t>(s.value & 0xFFFFFFFFu);
        return true;
      }
      if (s.key == kEmpty) return false;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot(uint64_t key) const { return ((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  struct Slot {
    uint64_t key;
    uint64_t value;  // rank << 32 | new_id
  };
  std::vector<Slot> slots_;  // key and value side by side: one cache miss per probe
  size_t mask_ = 0;
};

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
  int32_t left_id, right_id;  // the pair when queued
  // std::priority_queue pops the largest: invert so the lowest rank, then leftmost, comes first.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

class Bpe final : public Model {
 public:
  Bpe(const nlohmann::json& j, const JsonPath& path) {
    const auto& vocab = json_field(j, "vocab", path);
    if (!vocab.is_object()) path.child("vocab").fail("must be an object of token -> id");
    vocab_.reserve(vocab.size());
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_integer())
        path.child("vocab").fail(fmt::format("id of '{}' is not an integer", token));
      vocab_.add(token, id.get<int32_t>());
    }
    prefix_ = json_string_or(j, "continuing_subword_prefix", "", path);
    suffix_ = json_string_or(j, "end_of_word_suffix", "", path);
    fuse_unk_ = json_bool_or(j, "fuse_unk", false, path);
    byte_fallback_ = json_bool_or(j, "byte_fallback", false, path);
    ignore_merges_ = json_bool_or(j, "ignore_merges", false, path);
    if (const auto it = j.find("dropout"); it != j.end() && !it->is_null()) {
      if (!it->is_number() || it->get<double>() != 0.0) {
        path.child("dropout").fail("BPE dropout is not supported (inference only)");
      }
    }
    if (const auto unk = json_string_or(j, "unk_token", "", path); !unk.empty()) {
      // An unk_token missing from the vocab is accepted, as HF does; unknown chars are dropped.
      unk_id_ = vocab_.find(unk);
    }
    load_merges(json_field(j, "merges", path), path.child("merges"));
    // SentencePiece-style BPE (no pre-tokenizer) sees whole texts as one word; cutting them at
    // word starts is exact when merges cannot cross the cut. That needs: no ignore_merges (it
    // looks the whole word up), no affixes (they depend on word ends), U+2581 in the vocab (so
    // unknown characters cannot fuse across a cut), and no merge glueing a character to a
    // following U+2581, except the characters listed in glued_before_metaspace_ (Gemma 3 has one:
    // ">▁</"), before which no cut is made.
    split_at_metaspace_ = !ignore_merges_ && prefix_.empty() && suffix_.empty() &&
                          vocab_.find(kMetaspace).has_value();
    std::sort(glued_before_metaspace_.begin(), glued_before_metaspace_.end());

    char_ids_.assign(kCharTableSize, -1);
    for (const auto& [token, id] : vocab_.map()) {
      if (token.empty() ||
          unicode::sequence_length(static_cast<unsigned char>(token[0])) != token.size())
        continue;
      size_t pos = 0;
      const char32_t c = unicode::next_code_point(token, pos);
      if (c < kCharTableSize) char_ids_[c] = id;
    }
    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      if (const auto id = vocab_.find(fmt::format("<0x{:02X}>", b))) byte_ids_[b] = *id;
    }
  }

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (word.empty()) return;
    if (ignore_merges_) {
      if (const auto id = vocab_.find(word)) {
        out.push_back(*id);
        return;
      }
    }
    if (split_at_metaspace_) {
      // Cut before each U+2581 that starts a word; no merge crosses these cuts (checked at load),
      // so the pieces merge exactly as the whole word would, and short pieces hit the cache.
      size_t begin = 0;
      for (size_t i = 1; i + 2 < word.size(); ++i) {
        if (word.compare(i, 3, kMetaspace) != 0) continue;
        size_t prev = i - 1;
        while (prev > 0 && (static_cast<unsigned char>(word[prev]) & 0xC0) == 0x80) --prev;
        size_t pos = prev;
        const char32_t c = unicode::next_code_point(word, pos);
        if (c != 0x2581 && !std::binary_search(glued_before_metaspace_.begin(),
                                               glued_before_metaspace_.end(), c)) {
          tokenize_piece(word.substr(begin, i - begin), out);
          begin = i;
        }
        i += 2;
      }
      tokenize_piece(word.substr(begin), out);
      return;
    }
    tokenize_piece(word, out);
  }

  void tokenize_piece(std::string_view word, std::vector<int32_t>& out) const {
    const bool cacheable = word.size() < kCacheMaxWordBytes;
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      if (cache_.size() < kCacheCapacity) {
        cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
      }
    }
  }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }

 private:
  void load_merges(const nlohmann::json& merges, const JsonPath& path) {
    if (!merges.is_array()) path.fail("must be an array");
    merges_.build(merges.size());
    std::string a, b;
    uint32_t rank = 0;
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& m = merges[i];
      if (m.is_string()) {
        // "a b": exactly one space (HF's legacy format; '#version' lines are skipped).
        const auto& line = m.get_ref<const std::string&>();
        if (line.rfind("#version", 0) == 0) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
          path.index(i).fail(
              fmt::format("bad merge '{}': expected two tokens separated by one space", line));
        }
        a = line.substr(0, sp);
        b = line.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        path.index(i).fail("a merge must be \"a b\" or [\"a\", \"b\"]");
      }
      const auto a_id = vocab_.find(a);
      const auto b_id = vocab_.find(b);
      if (!a_id || !b_id) {
        path.index(i).fail(fmt::format("merge token '{}' is not in the vocab", !a_id ? a : b));
      }
      if (b.size() < prefix_.size())
        path.index(i).fail("merge shorter than continuing_subword_prefix");
      const auto new_id = vocab_.find(a + b.substr(prefix_.size()));
      if (!new_id) {
        path.index(i).fail(
            fmt::format("merged token '{}{}' is not in the vocab", a, b.substr(prefix_.size())));
      }
      merges_.insert(*a_id, *b_id, rank++, *new_id);
      note_glued_metaspace(a + b.substr(prefix_.size()));
    }
  }

  // Records characters that a merge result joins to a following U+2581.
  void note_glued_metaspace(std::string_view merged) {
    for (size_t i = merged.find(kMetaspace, 1); i != std::string_view::npos;
         i = merged.find(kMetaspace, i + 3)) {
      size_t prev = i - 1;
      while (prev > 0 && (static_cast<unsigned char>(merged[prev]) & 0xC0) == 0x80) --prev;
      size_t pos = prev;
      const char32_t c = unicode::next_code_point(merged, pos);
      if (c != 0x2581 && std::find(glued_before_metaspace_.begin(), glued_before_metaspace_.end(),
                                   c) == glued_before_metaspace_.end()) {
        glued_before_metaspace_.push_back(c);
      }
    }
  }

  // Splits `word` into its initial symbols (characters, with byte fallback and unk handling),
  // then applies the merges; appends the resulting ids.
  void merge_word(std::string_view word, std::vector<int32_t>& out) const {
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    const auto add = [&](int32_t id) {
      const auto n = static_cast<int32_t>(symbols.size());
      symbols.push_back({id, n - 1, n + 1, false});
    };
    std::optional<int32_t> pending_unk;  // an unk not yet added (kept to fuse the next one)
    const bool affixes = !prefix_.empty() || !suffix_.empty();
    std::string piece;
    size_t pos = 0;
    while (pos < word.size()) {
      const size_t start = pos;
      const char32_t c = unicode::next_code_point(word, pos);
      std::optional<int32_t> id;
      std::string_view s = word.substr(start, pos - start);
      if (!affixes && c < kCharTableSize) {
        if (char_ids_[c] >= 0) id = char_ids_[c];
      } else {
        piece.clear();
        if (start != 0) piece += prefix_;
        piece.append(s);
        if (pos == word.size()) piece += suffix_;
        s = piece;
        id = vocab_.find(s);
      }
      if (id) {
        if (pending_unk) {
          add(*pending_unk);
          pending_unk.reset();
        }
        add(*id);
        continue;
      }
      if (byte_fallback_ && std::all_of(s.begin(), s.end(), [&](char b) {
            return byte_ids_[static_cast<unsigned char>(b)] >= 0;
          })) {
        // As in HF, a pending unk is not flushed before the bytes.
        for (const char b : s) add(byte_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
      if (unk_id_) {
        if (pending_unk && !fuse_unk_) add(*pending_unk);
        pending_unk = *unk_id_;
      }
    }
    if (pending_unk) add(*pending_unk);
    if (symbols.empty()) return;
    symbols.back().next = -1;

    std::vector<Candidate> heap_storage;
    heap_storage.reserve(symbols.size());
    std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(heap_storage));
    uint32_t rank;
    int32_t new_id;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      if (merges_.find(symbols[i].id, symbols[i + 1].id, rank, new_id)) {
        queue.push({rank, static_cast<int32_t>(i), new_id, symbols[i].id, symbols[i + 1].id});
      }
    }
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<size_t>(top.pos)];
      if (left.removed || left.next < 0) continue;
      Symbol& right = symbols[static_cast<size_t>(left.next)];
      // Skip entries made stale by an earlier merge of either symbol. HF re-looks the pair up and
      // compares the merged id; comparing the pair's ids is equivalent and cheaper, because a
      // symbol only changes by absorbing its right neighbour, so a changed pair covers more text
      // and can never yield the same token again.
      if (left.id != top.left_id || right.id != top.right_id) continue;
      left.id = top.new_id;
      right.removed = true;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0 &&
          merges_.find(symbols[static_cast<size_t>(left.prev)].id, left.id, rank, new_id)) {
        queue.push({rank, left.prev, new_id, symbols[static_cast<size_t>(left.prev)].id, left.id});
      }
      if (left.next >= 0 &&
          merges_.find(left.id, symbols[static_cast<size_t>(left.next)].id, rank, new_id)) {
        queue.push({rank, top.pos, new_id, left.id, symbols[static_cast<size_t>(left.next)].id});
      }
    }
    for (const auto& s : symbols) {
      if (!s.removed) out.push_back(s.id);
    }
  }

  Vocab vocab_;
  MergeMap merges_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::optional<int32_t> unk_id_;
  std::vector<int32_t> char_ids_;
  bool split_at_metaspace_ = false;
  std::vector<char32_t> glued_before_metaspace_;  // sorted
  std::array<int32_t, 256> byte_ids_{};

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace

std::unique_ptr<Model> make_bpe_model(const nlohmann::json& j, const JsonPath& path) {
  return std::make_unique<Bpe>(j, path);
}

}  // namespace hearth::text
