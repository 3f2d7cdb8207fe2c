// tokenizer.json decoders (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece,
// BPEDecoder, Sequence). Declared here, not only in the .cpp, because the streaming detokenizer
// inspects the decoder chain to pick its strategy.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/components.h"
#include "text/regex.h"

namespace hearth::text {

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override;
  // The bytes one token stands for: each char mapped back through the GPT-2 table, or the
  // token's own UTF-8 when one of its chars is not in the table (as HF does).
  static void append_token_bytes(const std::string& token, std::string& out);
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepend)
      : replacement_(replacement), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens) const override;
  // Decodes the token at position `index` of the sequence.
  std::string decode_token(const std::string& token, size_t index) const;

 private:
  char32_t replacement_;
  bool prepend_;  // prepend_scheme != never: the first token loses its replacement chars
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override;
  // The byte of a "<0xXX>" token, or -1.
  static int byte_of(const std::string& token);
  // What a run of byte tokens decodes to: the UTF-8 string, or one U+FFFD per byte if invalid.
  static std::vector<std::string> decode_run(const std::string& bytes);
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override;
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override;
  std::string strip(const std::string& token) const;
  char32_t content() const { return content_; }
  size_t start() const { return start_; }
  size_t stop() const { return stop_; }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override;
  std::string replace(const std::string& token) const {
    return pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items)
      : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override;
  const std::vector<std::unique_ptr<Decoder>>& items() const { return items_; }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

}  // namespace hearth::text
