// Model dispatch for tokenizer.json's "model" object, and the small models: WordPiece (BERT) and
// WordLevel, with HF `tokenizers` semantics. BPE lives in model_bpe.cpp, Unigram in
// model_unigram.cpp.
#include "core/error.h"
#include "text/components.h"
#include "text/unicode.h"
#include "text/vocab.h"

namespace hearth::text {
namespace {

Vocab read_vocab_object(const nlohmann::json& j, const JsonPath& path) {
  const auto& v = json_field(j, "vocab", path);
  if (!v.is_object()) path.child("vocab").fail("must be an object of token -> id");
  Vocab vocab;
  vocab.reserve(v.size());
  for (const auto& [token, id] : v.items()) {
    if (!id.is_number_integer())
      path.child("vocab").fail(fmt::format("id of '{}' is not an integer", token));
    vocab.add(token, id.get<int32_t>());
  }
  return vocab;
}

class WordPiece final : public Model {
 public:
  WordPiece(const nlohmann::json& j, const JsonPath& path)
      : vocab_(read_vocab_object(j, path)),
        unk_(json_string_or(j, "unk_token", "[UNK]", path)),
        prefix_(json_string_or(j, "continuing_subword_prefix", "##", path)),
        max_chars_(static_cast<size_t>(json_int_or(j, "max_input_chars_per_word", 100, path))) {}

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    size_t chars = 0;
    for (size_t pos = 0; pos < word.size(); unicode::next_code_point(word, pos)) ++chars;
    const size_t first = out.size();
    if (chars <= max_chars_) {
      // Greedy longest-match-first from the left, as BERT's WordPiece.
      std::string candidate;
      size_t start = 0;
      while (start < word.size()) {
        size_t end = word.size();
        std::optional<int32_t> found;
        while (start < end) {
          candidate.clear();
          if (start > 0) candidate = prefix_;
          candidate.append(word.substr(start, end - start));
          if ((found = vocab_.find(candidate))) break;
          --end;
          while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
        }
        if (!found) break;
        out.push_back(*found);
        start = end;
      }
      if (start == word.size()) return;
    }
    out.resize(first);
    const auto unk = vocab_.find(unk_);
    if (!unk)
      fail(ErrorCode::invalid_argument, "WordPiece: unk_token '{}' is not in the vocab", unk_);
    out.push_back(*unk);
  }
  std::optional<int32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }

 private:
  Vocab vocab_;
  std::string unk_, prefix_;
  size_t max_chars_;
};

class WordLevel final : public Model {
 public:
  WordLevel(const nlohmann::json& j, const JsonPath& path)
      : vocab_(read_vocab_object(j, path)), unk_(json_string_or(j, "unk_token", "", path)) {}
  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (const auto id = vocab_.find(word)) {
      out.push_back(*id);
    } else if (const auto unk = vocab_.find(unk_)) {
      out.push_back(*unk);
    } else {
      fail(ErrorCode::invalid_argument,
           "WordLevel: '{}' is not in the vocab and there is no unk_token", word);
    }
  }
  std::optional<int32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }

 private:
  Vocab vocab_;
  std::string unk_;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece_model(const nlohmann::json& j, const JsonPath& path) {
  return std::make_unique<WordPiece>(j, path);
}

std::unique_ptr<Model> make_wordlevel_model(const nlohmann::json& j, const JsonPath& path) {
  return std::make_unique<WordLevel>(j, path);
}

std::unique_ptr<Model> make_model(const nlohmann::json& j, const JsonPath& path) {
  if (!j.is_object()) path.fail("'model' must be an object");
  std::string type;
  if (j.contains("type")) {
    type = json_type(j, path);
  } else if (j.contains("merges")) {
    type = "BPE";  // old files omit the type; HF then tries each model in turn
  } else if (j.contains("vocab") && j["vocab"].is_array()) {
    type = "Unigram";
  } else if (j.contains("continuing_subword_prefix")) {
    type = "WordPiece";
  } else {
    type = "WordLevel";
  }
  if (type == "BPE") return make_bpe_model(j, path);
  if (type == "WordPiece") return make_wordpiece_model(j, path);
  if (type == "WordLevel") return make_wordlevel_model(j, path);
  if (type == "Unigram") return make_unigram_model(j, path);
  path.fail(fmt::format("unknown model type '{}'", type));
}

}  // namespace hearth::text
