// The Unigram (SentencePiece) model of tokenizer.json: Viterbi best segmentation over the piece
// scores, unknown characters scored min_score - 10 and fused, optional byte fallback; the same
// procedure as HF `tokenizers`' Unigram::encode_optimized.
#include <cmath>

#include "core/error.h"
#include "text/byte_trie.h"
#include "text/components.h"
#include "text/unicode.h"
#include "text/vocab.h"

namespace hearth::text {
namespace {

// SentencePiece's penalty for an unknown character relative to the lowest piece score.
constexpr double kUnkPenalty = 10.0;

class Unigram final : public Model {
 public:
  Unigram(const nlohmann::json& j, const JsonPath& path) {
    const auto& vocab = json_field(j, "vocab", path);
    if (!vocab.is_array()) path.child("vocab").fail("must be a list of [piece, score]");
    double min_score = INFINITY;
    scores_.reserve(vocab.size());
    for (size_t i = 0; i < vocab.size(); ++i) {
      const auto& e = vocab[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
        path.child("vocab").index(i).fail("must be [piece, score]");
      }
      const auto& piece = e[0].get_ref<const std::string&>();
      const double score = e[1].get<double>();
      vocab_.add(piece, static_cast<int32_t>(i));
      trie_.insert(piece, static_cast<int32_t>(i));
      scores_.push_back(score);
      min_score = std::min(min_score, score);
    }
    unk_score_ = min_score - kUnkPenalty;
    const int64_t unk = json_int_or(j, "unk_id", -1, path);
    if (unk >= static_cast<int64_t>(vocab.size())) path.child("unk_id").fail("out of range");
    if (unk >= 0) unk_id_ = static_cast<int32_t>(unk);
    byte_fallback_ = json_bool_or(j, "byte_fallback", false, path);
  }

  void tokenize(std::string_view s, std::vector<int32_t>& out) const override {
    struct Node {
      int32_t id = -1;
      double score = 0;
      int64_t starts_at = -1;
    };
    std::vector<Node> best(s.size() + 1);
    size_t pos = 0;
    while (pos < s.size()) {
      const double till_here = best[pos].score;
      const size_t char_len = unicode::sequence_length(static_cast<unsigned char>(s[pos]));
      bool has_single = false;
      trie_.for_each_prefix(s.substr(pos), [&](size_t len, int32_t id) {
        Node& target = best[pos + len];
        const double candidate = scores_[static_cast<size_t>(id)] + till_here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {id, candidate, static_cast<int64_t>(pos)};
        }
        if (len == char_len) has_single = true;
      });
      if (!has_single) {
        Node& target = best[pos + char_len];
        const double candidate = unk_score_ + till_here;
        if (target.starts_at < 0 || candidate > target.score) {
          if (!unk_id_)
            fail(ErrorCode::invalid_argument, "Unigram: unknown character and no unk_id");
          target = {*unk_id_, candidate, static_cast<int64_t>(pos)};
        }
      }
      pos += char_len;
    }
    // Walk back, fusing runs of unknowns into one piece.
    std::vector<std::pair<size_t, size_t>> pieces;
    size_t end = s.size();
    size_t unk_start = 0, unk_end = 0;
    bool in_unk = false;
    while (end > 0) {
      const Node& node = best[end];
      const auto start = static_cast<size_t>(node.starts_at);
      if (unk_id_ && node.id == *unk_id_) {
        if (!in_unk) unk_end = end;
        in_unk = true;
        unk_start = start;
      } else {
        if (in_unk) pieces.emplace_back(unk_start, unk_end);
        in_unk = false;
        pieces.emplace_back(start, end);
      }
      end = start;
    }
    if (in_unk) pieces.emplace_back(unk_start, unk_end);
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
      const std::string_view piece = s.substr(it->first, it->second - it->first);
      if (const auto id = vocab_.find(piece)) {
        out.push_back(*id);
        continue;
      }
      if (byte_fallback_) {
        std::vector<int32_t> bytes;
        for (const char c : piece) {
          const auto id = vocab_.find(fmt::format("<0x{:02X}>", static_cast<unsigned char>(c)));
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == piece.size()) {
          out.insert(out.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (!unk_id_) fail(ErrorCode::invalid_argument, "Unigram: unknown piece and no unk_id");
      out.push_back(*unk_id_);
    }
  }

  std::optional<int32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }

 private:
  Vocab vocab_;
  ByteTrie trie_;
  std::vector<double> scores_;
  double unk_score_ = 0;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
};

}  // namespace

std::unique_ptr<Model> make_unigram_model(const nlohmann::json& j, const JsonPath& path) {
  return std::make_unique<Unigram>(j, path);
}

}  // namespace hearth::text
