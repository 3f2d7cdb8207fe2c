// tokenizer.json pre-tokenizers (ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace,
// WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit, Sequence) with the split behaviours of HF
// `tokenizers` (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous; invert).
#include "core/error.h"
#include "text/components.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace hearth::text {
namespace {

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

Behavior parse_behavior(const nlohmann::json& j, const JsonPath& path, Behavior fallback) {
  const auto it = j.find("behavior");
  if (it == j.end() || it->is_null()) return fallback;
  const std::string b = it->is_string() ? it->get<std::string>() : it->dump();
  if (b == "Removed") return Behavior::removed;
  if (b == "Isolated") return Behavior::isolated;
  if (b == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (b == "MergedWithNext") return Behavior::merged_with_next;
  if (b == "Contiguous") return Behavior::contiguous;
  path.fail(fmt::format("unknown split behavior '{}'", b));
}

// Groups the tiling `ranges` into the pieces a behaviour keeps (HF NormalizedString::split).
void apply_behavior(const std::vector<PatternRange>& ranges, Behavior behavior,
                    std::vector<std::pair<size_t, size_t>>& out) {
  out.clear();
  bool previous_match = false;
  switch (behavior) {
    case Behavior::removed:
      for (const auto& r : ranges) {
        if (!r.is_match) out.emplace_back(r.start, r.end);
      }
      return;
    case Behavior::isolated:
      for (const auto& r : ranges) out.emplace_back(r.start, r.end);
      return;
    case Behavior::contiguous:
      for (const auto& r : ranges) {
        if (r.is_match == previous_match && !out.empty()) {
          out.back().second = r.end;
        } else {
          out.emplace_back(r.start, r.end);
        }
        previous_match = r.is_match;
      }
      return;
    case Behavior::merged_with_previous:
      for (const auto& r : ranges) {
        if (r.is_match && !previous_match && !out.empty()) {
          out.back().second = r.end;
        } else {
          out.emplace_back(r.start, r.end);
        }
        previous_match = r.is_match;
      }
      return;
    case Behavior::merged_with_next:
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().first = it->start;
        } else {
          out.emplace_back(it->start, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      return;
  }
}

// Replaces each piece by its sub-pieces [start, end); drops empty ones.
template <typename SplitFn>
void split_pieces(std::vector<Piece>& pieces, SplitFn&& split) {
  std::vector<Piece> result;
  result.reserve(pieces.size() * 4);
  std::vector<std::pair<size_t, size_t>> parts;
  for (auto& piece : pieces) {
    parts.clear();
    split(piece, parts);
    for (const auto& [s, e] : parts) {
      if (e > s) result.push_back({piece.text.substr(s, e - s), piece.at_start && s == 0});
    }
  }
  pieces.swap(result);
}

// Ranges of single characters matching `pred`, as HF's char-predicate Pattern produces them.
template <typename Pred>
void char_ranges(std::string_view text, Pred pred, std::vector<PatternRange>& out) {
  out.clear();
  if (text.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = unicode::next_code_point(text, pos);
    if (pred(c)) {
      if (last < start) out.push_back({last, start, false});
      out.push_back({start, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) out.push_back({last, text.size(), false});
}

template <typename Pred>
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(Pred pred, Behavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<PatternRange> ranges;
    split_pieces(pieces, [&](const Piece& p, auto& parts) {
      char_ranges(p.text, pred_, ranges);
      apply_behavior(ranges, behavior_, parts);
    });
  }

 private:
  Pred pred_;
  Behavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> make_char_split(Pred pred, Behavior behavior) {
  return std::make_unique<CharSplit<Pred>>(pred, behavior);
}

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<PatternRange> ranges;
    split_pieces(pieces, [&](const Piece& p, auto& parts) {
      pattern_.find_matches(p.text, ranges);
      if (invert_) {
        for (auto& r : ranges) r.is_match = !r.is_match;
      }
      apply_behavior(ranges, behavior_, parts);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's split pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const JsonPath& path)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex)
      split_.emplace(Pattern::from_json({{"Regex", kGpt2Pattern}}, path.where()),
                     Behavior::isolated, false);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : pieces) {
        if (!p.text.empty() && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      }
    }
    if (split_) split_->pre_tokenize(pieces);
    const auto& table = unicode::byte_level_table();
    std::string mapped;
    for (auto& p : pieces) {
      mapped.clear();
      for (const char c : p.text) mapped.append(table.byte_to_utf8[static_cast<unsigned char>(c)]);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Split> split_;
};

enum class PrependScheme { always, never, first };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement),
        rep_(unicode::to_utf8(replacement)),
        scheme_(scheme),
        split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      if (p.text.find(' ') != std::string::npos) {
        p.text = Pattern::from_string(" ").replace_all(p.text, rep_);
      }
      const bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!p.text.empty() && !starts &&
          (scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && p.at_start))) {
        p.text.insert(0, rep_);
      }
    }
    if (!split_) return;
    std::vector<PatternRange> ranges;
    const char32_t r = replacement_;
    split_pieces(pieces, [&](const Piece& p, auto& parts) {
      char_ranges(
          p.text, [r](char32_t c) { return c == r; }, ranges);
      apply_behavior(ranges, Behavior::merged_with_next, parts);
    });
  }

 private:
  char32_t replacement_;
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

// Whitespace: the pieces matched by \w+|[^\w\s]+ (Rust regex classes); whitespace is dropped.
class Whitespace final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [](const Piece& p, auto& parts) {
      enum { none, word, other } run = none;
      size_t run_start = 0, pos = 0;
      const std::string& t = p.text;
      while (pos < t.size()) {
        const size_t start = pos;
        const char32_t c = unicode::next_code_point(t, pos);
        const auto kind = unicode::is_word_char(c)    ? word
                          : unicode::is_whitespace(c) ? none
                                                      : other;
        if (kind != run) {
          if (run != none) parts.emplace_back(run_start, start);
          run = kind;
          run_start = start;
        }
      }
      if (run != none) parts.emplace_back(run_start, t.size());
    });
  }
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

bool is_whitespace_pred(char32_t c) {
  return unicode::is_whitespace(c);
}
bool is_numeric_pred(char32_t c) {
  return unicode::is_numeric(c);
}
bool is_punctuation_pred(char32_t c) {
  return unicode::is_punctuation(c);
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const JsonPath& path) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, path);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(json_bool_or(j, "add_prefix_space", true, path),
                                       json_bool_or(j, "use_regex", true, path), path);
  }
  if (type == "Split") {
    return std::make_unique<Split>(
        Pattern::from_json(json_field(j, "pattern", path), path.child("pattern").where()),
        parse_behavior(j, path, Behavior::removed), json_bool_or(j, "invert", false, path));
  }
  if (type == "Metaspace") {
    const char32_t replacement = json_char(j, "replacement", path);
    PrependScheme scheme = PrependScheme::always;
    const std::string s = json_string_or(j, "prepend_scheme", "always", path);
    if (s == "always") {
      scheme = PrependScheme::always;
    } else if (s == "never") {
      scheme = PrependScheme::never;
    } else if (s == "first") {
      scheme = PrependScheme::first;
    } else {
      path.fail(fmt::format("unknown prepend_scheme '{}'", s));
    }
    // Older files say add_prefix_space instead; false means never.
    if (j.contains("add_prefix_space") && !json_bool_or(j, "add_prefix_space", true, path)) {
      if (j.contains("prepend_scheme") && scheme != PrependScheme::never) {
        path.fail("add_prefix_space does not match declared prepend_scheme");
      }
      scheme = PrependScheme::never;
    }
    return std::make_unique<Metaspace>(replacement, scheme, json_bool_or(j, "split", true, path));
  }
  if (type == "Digits") {
    return make_char_split(&is_numeric_pred, json_bool_or(j, "individual_digits", false, path)
                                                 ? Behavior::isolated
                                                 : Behavior::contiguous);
  }
  if (type == "Punctuation") {
    return make_char_split(&is_punctuation_pred, parse_behavior(j, path, Behavior::isolated));
  }
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return make_char_split(&is_whitespace_pred, Behavior::removed);
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    items.push_back(make_char_split(&is_whitespace_pred, Behavior::removed));
    items.push_back(make_char_split(&is_punctuation_pred, Behavior::isolated));
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "CharDelimiterSplit") {
    const char32_t d = json_char(j, "delimiter", path);
    return make_char_split([d](char32_t c) { return c == d; }, Behavior::removed);
  }
  if (type == "Sequence") {
    const auto& list = json_field(j, "pretokenizers", path);
    if (!list.is_array()) path.fail("'pretokenizers' must be an array");
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], path.child("pretokenizers").index(i));
      if (p) items.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  path.fail(fmt::format("unknown pre_tokenizer type '{}'", type));
}

}  // namespace hearth::text
