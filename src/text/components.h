// Internal interfaces of the tokenizer pipeline (normalizer -> pre-tokenizer -> model ->
// post-processor, and decoders), each built from its tokenizer.json object. Mirrors the stages of
// HF `tokenizers`, without the offset bookkeeping that hearth does not need.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hearth::text {

// Where a JSON value sits, for error messages: "tokenizer.json: ... at
// pre_tokenizer.pretokenizers[2]".
struct JsonPath {
  std::string file;  // e.g. "/models/qwen3/tokenizer.json"
  std::string key;   // e.g. "pre_tokenizer.pretokenizers[2]"

  JsonPath child(std::string_view name) const {
    return {file, key.empty() ? std::string(name) : key + "." + std::string(name)};
  }
  JsonPath index(size_t i) const { return {file, key + "[" + std::to_string(i) + "]"}; }
  // "file at key", for messages of helpers (regex compilation) that add their own text.
  std::string where() const { return file + " at " + (key.empty() ? "<root>" : key); }
  // Throws a `format` error "file: message at key".
  [[noreturn]] void fail(const std::string& message) const;
};

// Typed accessors that fail with a `format` error naming the file and key.
const nlohmann::json& json_field(const nlohmann::json& obj, std::string_view name,
                                 const JsonPath& path);
std::string json_string(const nlohmann::json& obj, std::string_view name, const JsonPath& path);
std::string json_string_or(const nlohmann::json& obj, std::string_view name,
                           const std::string& fallback, const JsonPath& path);
bool json_bool_or(const nlohmann::json& obj, std::string_view name, bool fallback,
                  const JsonPath& path);
int64_t json_int_or(const nlohmann::json& obj, std::string_view name, int64_t fallback,
                    const JsonPath& path);
std::string json_type(const nlohmann::json& obj, const JsonPath& path);
// A single character given as a JSON string (Metaspace replacement, Strip content).
char32_t json_char(const nlohmann::json& obj, std::string_view name, const JsonPath& path);

// One piece of text between pre-tokenization steps. `at_start` is true when the piece begins at
// offset 0 of the original input (Metaspace's prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits or rewrites `pieces` in place; empty pieces are dropped by the caller.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized word (non-empty).
  virtual void tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual const std::string* id_to_token(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Model> make_model(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Model> make_bpe_model(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Model> make_wordpiece_model(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Model> make_wordlevel_model(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Model> make_unigram_model(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const JsonPath& path);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const JsonPath& path);

}  // namespace hearth::text
