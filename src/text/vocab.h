// Vocabulary containers shared by the tokenizer models: a string -> id hash map with
// string_view lookup and a dense id -> string table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hearth::text {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Vocab {
 public:
  // Adds token -> id; a repeated token keeps its last id (as serde's map does).
  void add(std::string token, int32_t id) {
    if (id < 0) return;
    if (static_cast<size_t>(id) >= by_id_.size()) {
      by_id_.resize(static_cast<size_t>(id) + 1);
      present_.resize(static_cast<size_t>(id) + 1, false);
    }
    by_id_[static_cast<size_t>(id)] = token;
    present_[static_cast<size_t>(id)] = true;
    by_token_[std::move(token)] = id;
  }
  std::optional<int32_t> find(std::string_view token) const {
    const auto it = by_token_.find(token);
    if (it == by_token_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= by_id_.size() || !present_[static_cast<size_t>(id)]) {
      return nullptr;
    }
    return &by_id_[static_cast<size_t>(id)];
  }
  size_t size() const { return by_token_.size(); }
  void reserve(size_t n) { by_token_.reserve(n); }
  const std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>& map() const {
    return by_token_;
  }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> by_token_;
  std::vector<std::string> by_id_;
  std::vector<bool> present_;
};

}  // namespace hearth::text
