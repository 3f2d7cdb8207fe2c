// hearth::text::Tokenizer: loads tokenizer.json and runs HF `tokenizers`' pipeline — added tokens
// split out, normalizer, pre-tokenizer, model, post-processor — and the decoder chain.
#include "text/tokenizer.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace hearth::text {

std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required && !std::filesystem::exists(path)) return std::nullopt;
    fail(std::filesystem::exists(path) ? ErrorCode::io : ErrorCode::not_found,
         "{}: cannot open file", path.string());
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::format, "{}: malformed JSON: {}", path.string(), e.what());
  }
}

namespace {

AddedToken parse_added_token(const nlohmann::json& j, const JsonPath& path) {
  AddedToken t;
  t.content = json_string(j, "content", path);
  t.special = json_bool_or(j, "special", false, path);
  t.single_word = json_bool_or(j, "single_word", false, path);
  t.lstrip = json_bool_or(j, "lstrip", false, path);
  t.rstrip = json_bool_or(j, "rstrip", false, path);
  t.normalized = json_bool_or(j, "normalized", !t.special, path);
  return t;
}

}  // namespace

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  const auto build = [&]() -> std::shared_ptr<Impl> {
    auto impl = std::make_shared<Impl>();
    const auto file = dir / "tokenizer.json";
    impl->file = file.string();
    const nlohmann::json j = *read_json_file(file, true);
    if (!j.is_object()) fail(ErrorCode::format, "{}: expected a JSON object", impl->file);
    const JsonPath root{impl->file, ""};
    if (const auto v = j.find("version"); v != j.end() && (!v->is_string() || *v != "1.0")) {
      root.child("version").fail(fmt::format("unknown tokenizer version {}", v->dump()));
    }
    const auto get = [&](const char* key) -> const nlohmann::json& {
      static const nlohmann::json kNull;
      const auto it = j.find(key);
      return it == j.end() ? kNull : *it;
    };
    impl->normalizer = make_normalizer(get("normalizer"), root.child("normalizer"));
    impl->pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"), root.child("pre_tokenizer"));
    if (get("model").is_null()) root.fail("missing key 'model'");
    impl->model = make_model(get("model"), root.child("model"));
    impl->post_processor = make_post_processor(get("post_processor"), root.child("post_processor"));
    impl->decoder = make_decoder(get("decoder"), root.child("decoder"));
    // truncation and padding are per-call options in transformers (off by default); not applied.

    const auto& added = get("added_tokens");
    if (!added.is_null()) {
      if (!added.is_array()) root.child("added_tokens").fail("must be an array");
      std::vector<AddedToken> tokens;
      for (size_t i = 0; i < added.size(); ++i) {
        tokens.push_back(parse_added_token(added[i], root.child("added_tokens").index(i)));
      }
      impl->added.add(tokens, *impl->model, impl->normalizer.get());
    }
    impl->load_config(dir);
    return impl;
  };
  try {
    return Tokenizer(build());
  } catch (const nlohmann::json::exception& e) {
    // A value of the wrong JSON type that no accessor checked: still a clear error, no crash.
    fail(ErrorCode::format,
         "{}: unexpected JSON value in tokenizer.json or tokenizer_config.json: {}", dir.string(),
         e.what());
  }
}

void Tokenizer::Impl::encode(std::string_view input, bool add_special_tokens,
                             std::vector<int32_t>& out) const {
  // HF takes Rust strings (valid UTF-8); repair anything else the same way Rust's lossy
  // conversion does instead of failing.
  std::string repaired;
  if (!unicode::is_valid_utf8(input)) {
    repaired = unicode::from_utf8_lossy(input);
    input = repaired;
  }
  std::vector<AddedVocabulary::Match> raw, norm;
  std::vector<Piece> pieces;
  std::string normalized;
  added.split(input, false, raw);
  for (const auto& r : raw) {
    if (r.id >= 0) {
      out.push_back(r.id);
      continue;
    }
    if (r.end == r.start) continue;
    normalized.assign(input.substr(r.start, r.end - r.start));
    if (normalizer) normalizer->normalize(normalized);
    added.split(normalized, true, norm);
    for (const auto& n : norm) {
      if (n.id >= 0) {
        out.push_back(n.id);
        continue;
      }
      if (n.end == n.start) continue;
      pieces.clear();
      pieces.push_back({normalized.substr(n.start, n.end - n.start), r.start == 0 && n.start == 0});
      if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
      for (const auto& p : pieces) {
        if (!p.text.empty()) model->tokenize(p.text, out);
      }
    }
  }
  if (post_processor) post_processor->process(out, add_special_tokens);
}

const std::string* Tokenizer::Impl::id_to_token(int32_t id) const {
  if (const auto* t = added.id_to_token(id)) return t;
  return model->id_to_token(id);
}

std::optional<int32_t> Tokenizer::Impl::token_to_id(std::string_view token) const {
  if (const auto id = added.token_to_id(token)) return id;
  return model->token_to_id(token);
}

std::string Tokenizer::Impl::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string* t = id_to_token(id);
    if (t == nullptr) continue;  // unknown ids are dropped, as HF does
    if (skip_special_tokens && added.is_special_content(*t)) continue;
    tokens.push_back(*t);
  }
  if (!decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, add_special_tokens, ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->decode(ids, skip_special_tokens);
}

int64_t Tokenizer::vocab_size() const {
  int64_t n = impl_->model->vocab_size();
  for (const auto& [id, token] : impl_->added.tokens()) {
    const std::string* in_model = impl_->model->id_to_token(id);
    if (in_model == nullptr || *in_model != token.content) ++n;
  }
  return n;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const auto* t = impl_->id_to_token(id)) return *t;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return impl_->added.is_special_id(id);
}

std::optional<int32_t> Tokenizer::bos_token_id() const {
  const auto bos = impl_->special("bos_token");
  if (!bos) return std::nullopt;
  return impl_->token_to_id(*bos);
}

std::vector<int32_t> Tokenizer::eos_token_ids() const {
  std::vector<int32_t> ids;
  if (const auto eos = impl_->special("eos_token")) {
    if (const auto id = impl_->token_to_id(*eos)) ids.push_back(*id);
  }
  return ids;
}

nlohmann::json Tokenizer::special_tokens() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, token] : impl_->named_special) j[name] = token;
  return j;
}

bool Tokenizer::has_chat_template() const {
  return !impl_->templates.empty();
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

}  // namespace hearth::text
