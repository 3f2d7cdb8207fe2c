// tokenizer.json decoders with HF `tokenizers` semantics (see decoders.h).
#include "text/decoders.h"

#include "core/error.h"
#include "text/unicode.h"

namespace hearth::text {

void ByteLevelDecoder::append_token_bytes(const std::string& token, std::string& out) {
  const auto& table = unicode::byte_level_table();
  const size_t mark = out.size();
  size_t pos = 0;
  while (pos < token.size()) {
    const char32_t c = unicode::next_code_point(token, pos);
    if (c >= table.char_to_byte.size() || table.char_to_byte[c] < 0) {
      out.resize(mark);
      out.append(token);
      return;
    }
    out.push_back(static_cast<char>(table.char_to_byte[c]));
  }
}

void ByteLevelDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::string bytes;
  for (const auto& t : tokens) append_token_bytes(t, bytes);
  tokens.assign(1, unicode::from_utf8_lossy(bytes));
}

std::string MetaspaceDecoder::decode_token(const std::string& token, size_t index) const {
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t start = pos;
    const char32_t c = unicode::next_code_point(token, pos);
    if (c == replacement_) {
      if (!(index == 0 && prepend_)) out.push_back(' ');
    } else {
      out.append(token, start, pos - start);
    }
  }
  return out;
}

void MetaspaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = decode_token(tokens[i], i);
}

int ByteFallbackDecoder::byte_of(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

std::vector<std::string> ByteFallbackDecoder::decode_run(const std::string& bytes) {
  if (unicode::is_valid_utf8(bytes)) return {bytes};
  return std::vector<std::string>(bytes.size(), "\xEF\xBF\xBD");
}

void ByteFallbackDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string run;
  const auto flush = [&] {
    if (run.empty()) return;
    for (auto& s : decode_run(run)) out.push_back(std::move(s));
    run.clear();
  };
  for (auto& t : tokens) {
    const int b = byte_of(t);
    if (b >= 0) {
      run.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens.swap(out);
}

void FuseDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::string all;
  for (const auto& t : tokens) all += t;
  tokens.assign(1, std::move(all));
}

std::string StripDecoder::strip(const std::string& token) const {
  // Work on char boundaries: HF strips chars equal to `content`.
  std::vector<size_t> bounds;
  size_t pos = 0;
  while (pos < token.size()) {
    bounds.push_back(pos);
    unicode::next_code_point(token, pos);
  }
  bounds.push_back(token.size());
  const size_t n = bounds.size() - 1;
  const auto char_at = [&](size_t i) {
    size_t p = bounds[i];
    return unicode::next_code_point(token, p);
  };
  size_t start_cut = 0;
  for (size_t i = 0; i < std::min(start_, n); ++i) {
    if (char_at(i) != content_) break;
    start_cut = i + 1;
  }
  size_t stop_cut = n;
  for (size_t i = 0; i < std::min(stop_, n); ++i) {
    const size_t index = n - i - 1;
    if (char_at(index) != content_) break;
    stop_cut = index;
  }
  if (stop_cut <= start_cut) return {};
  return token.substr(bounds[start_cut], bounds[stop_cut] - bounds[start_cut]);
}

void StripDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (auto& t : tokens) t = strip(t);
}

void ReplaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (auto& t : tokens) t = replace(t);
}

void SequenceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (const auto& d : items_) d->decode_chain(tokens);
}

namespace {

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else {
          t.insert(0, 1, ' ');
        }
      }
      if (cleanup_) t = cleanup(t);
    }
  }

 private:
  static std::string cleanup(std::string s) {
    static constexpr std::pair<const char*, const char*> kRules[] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
        {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
        {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) s = Pattern::from_string(from).replace_all(s, to);
    return s;
  }
  std::string prefix_;
  bool cleanup_;
};

// BPEDecoder: the end-of-word suffix becomes a space, except on the last token.
class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] =
          Pattern::from_string(suffix_).replace_all(tokens[i], i + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const JsonPath& path) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    const std::string scheme = json_string_or(j, "prepend_scheme", "always", path);
    bool prepend = scheme != "never";
    if (j.contains("add_prefix_space") && !json_bool_or(j, "add_prefix_space", true, path))
      prepend = false;
    return std::make_unique<MetaspaceDecoder>(json_char(j, "replacement", path), prepend);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(json_char(j, "content", path),
                                          static_cast<size_t>(json_int_or(j, "start", 0, path)),
                                          static_cast<size_t>(json_int_or(j, "stop", 0, path)));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(
        Pattern::from_json(json_field(j, "pattern", path), path.child("pattern").where()),
        json_string(j, "content", path));
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(json_string_or(j, "prefix", "##", path),
                                              json_bool_or(j, "cleanup", true, path));
  }
  if (type == "BPEDecoder")
    return std::make_unique<BpeDecoder>(json_string_or(j, "suffix", "</w>", path));
  if (type == "Sequence") {
    const auto& list = json_field(j, "decoders", path);
    if (!list.is_array()) path.fail("'decoders' must be an array");
    std::vector<std::unique_ptr<Decoder>> items;
    for (size_t i = 0; i < list.size(); ++i) {
      auto d = make_decoder(list[i], path.child("decoders").index(i));
      if (d) items.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  path.fail(fmt::format("unknown decoder type '{}'", type));
}

}  // namespace hearth::text
