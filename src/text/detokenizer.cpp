// Streaming detokenizers (one per decoder style, as mlx-lm has): each emits only text that is
// final and valid UTF-8, and the concatenation of everything emitted equals
// Tokenizer::decode(all ids). The style is chosen from tokenizer.json's decoder:
//  - ByteLevel (GPT-2, Llama 3, Qwen): bytes accumulate and everything up to a trailing
//    incomplete UTF-8 sequence is emitted;
//  - SentencePiece chains (Replace / Metaspace / Strip per token, ByteFallback, Fuse, a leading
//    Strip; Llama 2, Mistral, Gemma): each token is decoded on its own, except runs of byte
//    tokens, which are held until the run ends (an invalid run decodes to one U+FFFD per byte);
//  - anything else: the whole sequence is re-decoded and the stable prefix emitted.
#include <functional>

#include "core/error.h"
#include "text/decoders.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

namespace hearth::text {
namespace {

// What a detokenizer needs from the tokenizer. Tokenizer::Impl is private to Tokenizer, so
// make_detokenizer() hands these over as closures that keep the shared state alive.
struct TokenSource {
  std::function<const std::string*(int32_t)> id_to_token;
  std::function<std::string(const std::vector<int32_t>&)> decode;
};

class ByteLevelStream final : public StreamingDetokenizer {
 public:
  explicit ByteLevelStream(TokenSource impl) : impl_(std::move(impl)) {}
  void add_token(int32_t id) override {
    const std::string* t = impl_.id_to_token(id);
    if (t == nullptr) return;
    ByteLevelDecoder::append_token_bytes(*t, pending_);
    const size_t keep = unicode::incomplete_suffix_length(pending_);
    ready_ +=
        unicode::from_utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - keep));
    pending_.erase(0, pending_.size() - keep);
  }
  std::string take_text() override { return std::exchange(ready_, {}); }
  std::string finalize() override {
    ready_ += unicode::from_utf8_lossy(pending_);
    pending_.clear();
    return take_text();
  }
  void reset() override {
    pending_.clear();
    ready_.clear();
  }

 private:
  TokenSource impl_;
  std::string pending_;  // bytes of an incomplete trailing character
  std::string ready_;
};

// The per-token stages before ByteFallback, and what follows it.
struct PieceChain {
  std::vector<const Decoder*> per_token;  // ReplaceDecoder, MetaspaceDecoder, StripDecoder
  bool byte_fallback = false;
  const StripDecoder* leading_strip = nullptr;  // a Strip after Fuse (start only)
};

// Recognizes chains this detokenizer reproduces exactly; nullopt otherwise.
std::optional<PieceChain> match_piece_chain(const Decoder* decoder) {
  std::vector<const Decoder*> flat;
  if (const auto* seq = dynamic_cast<const SequenceDecoder*>(decoder)) {
    for (const auto& d : seq->items()) flat.push_back(d.get());
  } else {
    flat.push_back(decoder);
  }
  PieceChain chain;
  enum { per_token, after_fallback, after_fuse } stage = per_token;
  bool meaningful = false;
  for (const Decoder* d : flat) {
    if (dynamic_cast<const ReplaceDecoder*>(d) || dynamic_cast<const MetaspaceDecoder*>(d)) {
      if (stage != per_token) return std::nullopt;
      chain.per_token.push_back(d);
      meaningful = true;
    } else if (const auto* s = dynamic_cast<const StripDecoder*>(d)) {
      if (stage == per_token) {
        chain.per_token.push_back(d);
      } else if (stage == after_fuse && s->stop() == 0 && chain.leading_strip == nullptr) {
        chain.leading_strip = s;
      } else {
        return std::nullopt;
      }
    } else if (dynamic_cast<const ByteFallbackDecoder*>(d)) {
      if (stage != per_token) return std::nullopt;
      chain.byte_fallback = true;
      stage = after_fallback;
      meaningful = true;
    } else if (dynamic_cast<const FuseDecoder*>(d)) {
      stage = after_fuse;
    } else {
      return std::nullopt;
    }
  }
  if (!meaningful) return std::nullopt;
  return chain;
}

class PieceStream final : public StreamingDetokenizer {
 public:
  PieceStream(TokenSource impl, PieceChain chain)
      : impl_(std::move(impl)), chain_(std::move(chain)) {
    reset();
  }
  void add_token(int32_t id) override {
    const std::string* t = impl_.id_to_token(id);
    if (t == nullptr) return;
    std::string s = *t;
    for (const Decoder* d : chain_.per_token) {
      if (const auto* r = dynamic_cast<const ReplaceDecoder*>(d)) {
        s = r->replace(s);
      } else if (const auto* m = dynamic_cast<const MetaspaceDecoder*>(d)) {
        s = m->decode_token(s, index_);
      } else {
        s = static_cast<const StripDecoder*>(d)->strip(s);
      }
    }
    ++index_;
    if (chain_.byte_fallback) {
      if (const int b = ByteFallbackDecoder::byte_of(s); b >= 0) {
        run_.push_back(static_cast<char>(b));
        return;
      }
      flush_run();
    }
    emit(s);
  }
  std::string take_text() override { return std::exchange(ready_, {}); }
  std::string finalize() override {
    flush_run();
    return take_text();
  }
  void reset() override {
    index_ = 0;
    run_.clear();
    ready_.clear();
    strip_left_ = chain_.leading_strip ? chain_.leading_strip->start() : 0;
  }

 private:
  void flush_run() {
    if (run_.empty()) return;
    for (const auto& s : ByteFallbackDecoder::decode_run(run_)) emit(s);
    run_.clear();
  }
  // Appends final text, dropping up to strip_left_ leading `content` chars of the whole output.
  void emit(std::string_view s) {
    size_t pos = 0;
    while (strip_left_ > 0 && pos < s.size()) {
      size_t next = pos;
      if (unicode::next_code_point(s, next) != chain_.leading_strip->content()) {
        strip_left_ = 0;
        break;
      }
      pos = next;
      --strip_left_;
    }
    ready_.append(s.substr(pos));
  }

  TokenSource impl_;
  PieceChain chain_;
  size_t index_ = 0;
  size_t strip_left_ = 0;
  std::string run_;  // bytes of the current run of <0xXX> tokens
  std::string ready_;
};

// Re-decodes everything each time and emits the part that can no longer change: text before a
// trailing U+FFFD (possibly an incomplete character) or trailing whitespace (decoders clean up
// spaces before punctuation). O(n) per token; used only for unusual decoders.
class NaiveStream final : public StreamingDetokenizer {
 public:
  explicit NaiveStream(TokenSource impl) : impl_(std::move(impl)) {}
  void add_token(int32_t id) override {
    ids_.push_back(id);
    const std::string text = impl_.decode(ids_);
    size_t stable = text.size();
    while (stable > 0) {
      size_t start = stable - 1;
      while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      size_t p = start;
      const char32_t c = unicode::next_code_point(text, p);
      if (c != 0xFFFD && !unicode::is_whitespace(c)) break;
      stable = start;
    }
    if (stable > emitted_ && text.compare(0, emitted_, done_) == 0) {
      ready_.append(text, emitted_, stable - emitted_);
      done_.assign(text, 0, stable);
      emitted_ = stable;
    }
  }
  std::string take_text() override { return std::exchange(ready_, {}); }
  std::string finalize() override {
    const std::string text = impl_.decode(ids_);
    if (text.compare(0, emitted_, done_) == 0) ready_.append(text, emitted_);
    emitted_ = text.size();
    done_ = text;
    return take_text();
  }
  void reset() override {
    ids_.clear();
    ready_.clear();
    done_.clear();
    emitted_ = 0;
  }

 private:
  TokenSource impl_;
  std::vector<int32_t> ids_;
  std::string done_;  // text emitted so far
  size_t emitted_ = 0;
  std::string ready_;
};

}  // namespace

std::unique_ptr<StreamingDetokenizer> Tokenizer::make_detokenizer() const {
  const Decoder* d = impl_->decoder.get();
  TokenSource source{
      [impl = impl_](int32_t id) { return impl->id_to_token(id); },
      [impl = impl_](const std::vector<int32_t>& ids) { return impl->decode(ids, false); }};
  if (d != nullptr) {
    const Decoder* single = d;
    if (const auto* seq = dynamic_cast<const SequenceDecoder*>(d);
        seq && seq->items().size() == 1) {
      single = seq->items()[0].get();
    }
    if (dynamic_cast<const ByteLevelDecoder*>(single))
      return std::make_unique<ByteLevelStream>(std::move(source));
    if (auto chain = match_piece_chain(d))
      return std::make_unique<PieceStream>(std::move(source), std::move(*chain));
  }
  return std::make_unique<NaiveStream>(std::move(source));
}

}  // namespace hearth::text
