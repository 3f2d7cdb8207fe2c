// A byte trie used for prefix search: added-token matching (leftmost-longest) and Unigram's
// common-prefix lookups. Children live in one open-addressing table keyed by (node, byte).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace hearth::text {

class ByteTrie {
 public:
  ByteTrie() {
    nodes_.push_back(-1);
    rehash(64);
  }

  // Inserts `key` with `value` (>= 0); a repeated key keeps the last value.
  void insert(std::string_view key, int32_t value) {
    uint32_t node = 0;
    for (const char c : key) {
      const auto b = static_cast<unsigned char>(c);
      int32_t child = find_child(node, b);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(-1);
        add_child(node, b, static_cast<uint32_t>(child));
      }
      node = static_cast<uint32_t>(child);
    }
    nodes_[node] = value;
    if (!key.empty()) first_byte_[static_cast<unsigned char>(key[0])] = true;
  }

  bool may_start(unsigned char b) const { return first_byte_[b]; }

  // Calls fn(length, value) for every key that is a prefix of `text`, shortest first.
  template <typename Fn>
  void for_each_prefix(std::string_view text, Fn&& fn) const {
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const int32_t child = find_child(node, static_cast<unsigned char>(text[i]));
      if (child < 0) return;
      node = static_cast<uint32_t>(child);
      if (nodes_[node] >= 0) fn(i + 1, nodes_[node]);
    }
  }

  bool empty() const { return nodes_.size() == 1; }

 private:
  static uint64_t edge_key(uint32_t node, unsigned char b) { return (uint64_t{node} << 8) | b; }
  size_t slot(uint64_t key) const { return ((key + 1) * 0x9E3779B97F4A7C15ull >> 17) & mask_; }

  int32_t find_child(uint32_t node, unsigned char b) const {
    const uint64_t key = edge_key(node, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return static_cast<int32_t>(children_[i]);
      if (keys_[i] == kEmpty) return -1;
    }
  }
  void add_child(uint32_t node, unsigned char b, uint32_t child) {
    if ((count_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
    place(edge_key(node, b), child);
    ++count_;
  }
  void place(uint64_t key, uint32_t child) {
    size_t i = slot(key);
    while (keys_[i] != kEmpty) i = (i + 1) & mask_;
    keys_[i] = key;
    children_[i] = child;
  }
  void rehash(size_t cap) {
    std::vector<uint64_t> old_keys = std::move(keys_);
    std::vector<uint32_t> old_children = std::move(children_);
    keys_.assign(cap, kEmpty);
    children_.assign(cap, 0);
    mask_ = cap - 1;
    for (size_t i = 0; i < old_keys.size(); ++i) {
      if (old_keys[i] != kEmpty) place(old_keys[i], old_children[i]);
    }
  }

  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<int32_t> nodes_;  // value per node, -1 when no key ends there
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> children_;
  size_t mask_ = 0;
  size_t count_ = 0;
  bool first_byte_[256] = {};
};

}  // namespace hearth::text
