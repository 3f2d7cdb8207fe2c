// Internal state of hearth::text::Tokenizer: the pipeline built from tokenizer.json, the added
// vocabulary, and what tokenizer_config.json adds (special tokens, chat templates). Shared by
// tokenizer.cpp, tokenizer_config.cpp, tokenizer_chat.cpp and detokenizer.cpp.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "text/byte_trie.h"
#include "text/components.h"
#include "text/tokenizer.h"
#include "text/vocab.h"

namespace hearth::text {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// HF's AddedVocabulary: tokens matched in the text before the model runs. Tokens with
// normalized=false are matched in the raw text, the others in the normalized text (against their
// own normalized form).
class AddedVocabulary {
 public:
  // Adds tokens as HF's add_tokens does: the id is the model's when the content is in its vocab,
  // otherwise the next free id after the model vocabulary and earlier added tokens.
  void add(const std::vector<AddedToken>& tokens, const Model& model, const Normalizer* normalizer);
  // Adds one token with a given id (added_tokens_decoder of tokenizer_config.json).
  void add_with_id(const AddedToken& token, int32_t id, const Normalizer* normalizer);

  struct Match {
    size_t start, end;
    int32_t id;  // -1: plain text between tokens
  };
  // Splits `text` into tokens and text ranges (HF find_matches, leftmost-longest).
  void split(std::string_view text, bool normalized_set, std::vector<Match>& out) const;
  bool has_normalized() const { return !normalized_trie_.empty(); }
  bool has_raw() const { return !raw_trie_.empty(); }

  std::optional<int32_t> token_to_id(std::string_view content) const;
  // The token text for decoding (its normalized form when it was normalized).
  const std::string* id_to_token(int32_t id) const;
  bool is_special_content(std::string_view content) const;
  bool is_special_id(int32_t id) const;
  size_t size() const { return by_id_.size(); }
  const std::unordered_map<int32_t, AddedToken>& tokens() const { return by_id_; }

 private:
  void insert(const AddedToken& token, int32_t id, const Normalizer* normalizer);

  std::unordered_map<int32_t, AddedToken> by_id_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> by_content_;
  std::unordered_map<int32_t, std::string> decode_text_;  // id -> normalized content
  std::unordered_set<std::string, StringHash, std::equal_to<>> special_;
  ByteTrie raw_trie_, normalized_trie_;
};

struct Tokenizer::Impl {
  std::string file;  // tokenizer.json path, for messages
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  AddedVocabulary added;

  // Named special tokens as transformers 5 keeps them (special_tokens_map): bos_token,
  // eos_token, unk_token, sep_token, pad_token, cls_token, mask_token and model-specific ones
  // (other "*_token" keys, extra_special_tokens given as a dict), from tokenizer_config.json and
  // special_tokens_map.json.
  std::map<std::string, std::string> named_special;
  // Chat templates by name; a single template is "default". Files (chat_template.jinja,
  // additional_chat_templates/NAME.jinja) replace tokenizer_config.json's chat_template.
  std::map<std::string, std::string> templates;
  std::string template_origin;

  std::optional<std::string> special(const std::string& name) const {
    const auto it = named_special.find(name);
    if (it == named_special.end()) return std::nullopt;
    return it->second;
  }

  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
  // Token text of an id (added vocabulary first, as HF), or nullptr for unknown ids.
  const std::string* id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;

  // tokenizer_config.json, special_tokens_map.json and chat_template.jinja in `dir`.
  void load_config(const std::filesystem::path& dir);
};

// Reads a JSON file; a missing file is `not_found` (when required) and bad JSON a `format` error,
// both naming the file.
std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path, bool required);

}  // namespace hearth::text
