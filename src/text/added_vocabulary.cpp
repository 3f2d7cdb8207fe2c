// HF's AddedVocabulary: special and added tokens split out of the text before the model, with
// lstrip / rstrip / single_word / normalized handled as `tokenizers` 0.23 does.
#include "core/error.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace hearth::text {
namespace {

// Rust regex \w at the end / start of a string (single_word boundaries).
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return unicode::is_word_char(unicode::next_code_point(s, start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t pos = 0;
  return unicode::is_word_char(unicode::next_code_point(s, pos));
}

// Start of the trailing run of whitespace of `s` (\s*$).
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!unicode::is_whitespace(unicode::next_code_point(s, pos))) break;
    end = start;
  }
  return end;
}

// Length of the leading run of whitespace of `s` (^\s*).
size_t leading_space_length(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t next = pos;
    if (!unicode::is_whitespace(unicode::next_code_point(s, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::insert(const AddedToken& token, int32_t id, const Normalizer* normalizer) {
  if (const auto old = by_id_.find(id);
      old != by_id_.end() && old->second.content != token.content) {
    by_content_.erase(old->second.content);
  }
  std::string pattern = token.content;
  decode_text_.erase(id);
  if (token.normalized && normalizer != nullptr) {
    normalizer->normalize(pattern);
    if (pattern != token.content) decode_text_[id] = pattern;
  }
  by_content_[token.content] = id;
  if (token.special) special_.insert(token.content);
  by_id_[id] = token;
  (token.normalized ? normalized_trie_ : raw_trie_).insert(pattern, id);
}

void AddedVocabulary::add(const std::vector<AddedToken>& tokens, const Model& model,
                          const Normalizer* normalizer) {
  const auto model_size = static_cast<int32_t>(model.vocab_size());
  int32_t next_id = model_size;
  if (!by_id_.empty()) {
    int32_t max_id = -1;
    for (const auto& [id, _] : by_id_) max_id = std::max(max_id, id);
    next_id = (max_id >= model_size || model_size == 0) ? max_id + 1 : model_size;
  }
  for (const auto& token : tokens) {
    if (token.content.empty()) continue;
    int32_t id;
    if (const auto existing = token_to_id(token.content)) {
      id = *existing;
    } else if (const auto in_model = model.token_to_id(token.content)) {
      id = *in_model;
    } else {
      id = next_id++;
    }
    insert(token, id, normalizer);
  }
}

void AddedVocabulary::add_with_id(const AddedToken& token, int32_t id,
                                  const Normalizer* normalizer) {
  if (token.content.empty() || by_content_.count(token.content) != 0) return;
  insert(token, id, normalizer);
}

void AddedVocabulary::split(std::string_view text, bool normalized_set,
                            std::vector<Match>& out) const {
  out.clear();
  const ByteTrie& trie = normalized_set ? normalized_trie_ : raw_trie_;
  size_t start_offset = 0;
  size_t pos = 0;
  if (!trie.empty()) {
    while (pos < text.size()) {
      if (!trie.may_start(static_cast<unsigned char>(text[pos]))) {
        ++pos;
        continue;
      }
      size_t best_len = 0;
      int32_t best_id = -1;
      trie.for_each_prefix(text.substr(pos), [&](size_t len, int32_t id) {
        best_len = len;
        best_id = id;
      });
      if (best_id < 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + best_len;
      // Like the Aho-Corasick iterator HF uses, the search resumes after this match even when
      // single_word rejects it.
      pos = stop;
      const AddedToken& token = by_id_.at(best_id);
      if (token.single_word) {
        const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
        const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
      if (token.rstrip) stop += leading_space_length(text.substr(stop));
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, best_id});
      start_offset = stop;
    }
  }
  if (start_offset != text.size()) out.push_back({start_offset, text.size(), -1});
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int32_t id) const {
  if (const auto it = decode_text_.find(id); it != decode_text_.end()) return &it->second;
  if (const auto it = by_id_.find(id); it != by_id_.end()) return &it->second.content;
  return nullptr;
}

bool AddedVocabulary::is_special_content(std::string_view content) const {
  return special_.find(content) != special_.end();
}

bool AddedVocabulary::is_special_id(int32_t id) const {
  const auto it = by_id_.find(id);
  return it != by_id_.end() && it->second.special;
}

}  // namespace hearth::text
