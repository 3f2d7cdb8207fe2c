// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json), producing exactly the ids the
// Rust `tokenizers` library produces, plus the chat template and special tokens of the model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "text/chat_template.h"

namespace hearth::text {

class StreamingDetokenizer;

class Tokenizer {
 public:
  // Loads tokenizer.json, tokenizer_config.json (optional), chat_template.jinja (optional) and
  // special_tokens_map.json (optional) from a model folder. Errors name the file and key.
  static Tokenizer from_dir(const std::filesystem::path& dir);

  // add_special_tokens runs the post-processor (BOS/EOS templates) as HF's encode does.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // including added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_token_id() const;
  // EOS ids from tokenizer_config (eos_token); generation_config.json ids are merged in by the
  // caller that loads the model.
  std::vector<int32_t> eos_token_ids() const;
  // {"bos_token": "<s>", "eos_token": "</s>", ...}: what the chat template sees.
  nlohmann::json special_tokens() const;

  // The chat template: tokenizer_config's chat_template (a string, or a list of named templates:
  // `name` picks one, "default" otherwise), or chat_template.jinja beside it.
  bool has_chat_template() const;
  std::string apply_chat_template(const nlohmann::ordered_json& messages,
                                  const ChatOptions& options,
                                  const std::optional<std::string>& name = std::nullopt) const;

  std::unique_ptr<StreamingDetokenizer> make_detokenizer() const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
  friend class StreamingDetokenizer;
};

// Turns a stream of token ids into text pieces: each piece is final (never a broken UTF-8
// sequence) and the concatenation of all pieces equals decode(all ids).
class StreamingDetokenizer {
 public:
  virtual ~StreamingDetokenizer() = default;
  virtual void add_token(int32_t id) = 0;
  // Text that became final since the last call.
  virtual std::string take_text() = 0;
  // Flushes what is left (end of generation) and returns it.
  virtual std::string finalize() = 0;
  virtual void reset() = 0;
};

}  // namespace hearth::text
