#include "kv/prompt_cache_file.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>

#include "io/safetensors.h"

namespace hearth::kv {
namespace {

// A non-negative decimal index ("12"), as tree_flatten writes list positions.
std::optional<int64_t> parse_index(std::string_view s) {
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "3.0.1" -> (3, "0.1"); the rest is empty when the key is only an index.
std::optional<std::pair<int64_t, std::string>> split_index(std::string_view key) {
  size_t dot = key.find('.');
  auto index = parse_index(key.substr(0, dot));
  if (!index) return std::nullopt;
  return std::make_pair(
      *index, dot == std::string_view::npos ? std::string() : std::string(key.substr(dot + 1)));
}

// The state arrays each class has, by their path below the layer.
const std::vector<std::string>* expected_arrays(const std::string& class_name) {
  static const std::vector<std::string> kKeysValues{"0", "1"};
  static const std::vector<std::string> kQuantized{"0.0", "0.1", "0.2", "1.0", "1.1", "1.2"};
  if (class_name == kStandardCacheClass || class_name == kRotatingCacheClass) return &kKeysValues;
  if (class_name == kQuantizedCacheClass) return &kQuantized;
  return nullptr;
}

}  // namespace

std::filesystem::path prompt_cache_path(const std::filesystem::path& path) {
  const std::string s = path.string();
  const std::string suffix = ".safetensors";
  if (s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    return path;
  return std::filesystem::path(s + suffix);
}

std::filesystem::path save_prompt_cache(const std::filesystem::path& path,
                                        const std::vector<LayerCacheState>& layers,
                                        const std::map<std::string, std::string>& metadata) {
  const std::filesystem::path target = prompt_cache_path(path);
  if (layers.empty())
    fail(ErrorCode::invalid_argument, "{}: cannot save a cache without layers", target.string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> strings;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerCacheState& s = layers[l];
    const std::string layer = std::to_string(l);
    if (s.class_name.empty())
      fail(ErrorCode::invalid_argument, "{}: layer {} has no class name", target.string(), l);
    if (s.meta_string.has_value() == !s.meta_tuple.empty())
      fail(ErrorCode::invalid_argument,
           "{}: layer {} needs exactly one of a meta_state string or tuple", target.string(), l);
    if (s.arrays.empty())
      fail(ErrorCode::invalid_argument, "{}: layer {} has no state arrays", target.string(), l);
    for (const auto& [name, t] : s.arrays) tensors.emplace_back(layer + "." + name, t);
    if (s.meta_string) {
      strings["0." + layer] = *s.meta_string;
    } else {
      for (size_t k = 0; k < s.meta_tuple.size(); ++k)
        strings["0." + layer + "." + std::to_string(k)] = s.meta_tuple[k];
    }
    strings["2." + layer] = s.class_name;
  }
  for (const auto& [key, value] : metadata) strings["1." + key] = value;
  io::save_safetensors(target, tensors, strings);
  return target;
}

PromptCacheContents load_prompt_cache(const std::filesystem::path& path) {
  auto file = io::SafetensorsFile::open(path);
  const std::string where = path.string();

  std::map<int64_t, std::string> classes;
  std::map<int64_t, std::string> meta_strings;
  std::map<int64_t, std::map<int64_t, std::string>> meta_tuples;
  PromptCacheContents out;
  std::vector<std::string> stray;
  for (const auto& [key, value] : file->metadata()) {
    const std::string_view k(key);
    if (k.substr(0, 2) == "1.") {
      out.metadata[std::string(k.substr(2))] = value;
      continue;
    }
    auto parsed = k.size() > 2 && k[1] == '.' ? split_index(k.substr(2)) : std::nullopt;
    if (parsed && k[0] == '2' && parsed->second.empty()) {
      classes[parsed->first] = value;
    } else if (parsed && k[0] == '0' && parsed->second.empty()) {
      meta_strings[parsed->first] = value;
    } else if (auto element = parsed && k[0] == '0' ? parse_index(parsed->second) : std::nullopt) {
      meta_tuples[parsed->first][*element] = value;
    } else {
      stray.push_back(key);
    }
  }
  if (classes.empty())
    fail(ErrorCode::format,
         "{}: not a prompt-cache file: its metadata has no cache class names ('2.<layer>' keys; "
         "model weights or another safetensors file?)",
         where);
  if (!stray.empty())
    fail(ErrorCode::format, "{}: metadata key '{}' is not part of the prompt-cache layout", where,
         stray.front());
  const int64_t n_layers = classes.rbegin()->first + 1;
  if (int64_t(classes.size()) != n_layers) {
    int64_t missing = 0;
    while (classes.count(missing)) ++missing;
    fail(ErrorCode::format, "{}: layer {} is missing (no class name '2.{}', but '2.{}' exists)",
         where, missing, missing, n_layers - 1);
  }

  out.layers.resize(size_t(n_layers));
  for (auto& [l, name] : classes) {
    LayerCacheState& s = out.layers[size_t(l)];
    s.class_name = name;
    if (!expected_arrays(name))
      fail(ErrorCode::format,
           "{}: unknown cache class '{}' (key '2.{}'); hearth reads KVCache, RotatingKVCache and "
           "QuantizedKVCache",
           where, name, l);
    if (meta_strings.count(l) && meta_tuples.count(l))
      fail(ErrorCode::format, "{}: layer {} has both '0.{}' and '0.{}.0' meta_state keys", where, l,
           l, l);
    if (meta_strings.count(l)) s.meta_string = meta_strings[l];
    if (meta_tuples.count(l)) {
      const auto& elements = meta_tuples[l];
      for (int64_t k = 0; k < int64_t(elements.size()); ++k) {
        auto it = elements.find(k);
        if (it == elements.end())
          fail(ErrorCode::format, "{}: meta_state key '0.{}.{}' is missing", where, l, k);
        s.meta_tuple.push_back(it->second);
      }
    }
    // mlx-lm writes "" for a KVCache; a file without it loses nothing.
    if (!s.meta_string && s.meta_tuple.empty() && name == kStandardCacheClass) s.meta_string = "";
  }
  for (const auto& m : meta_strings)
    if (m.first >= n_layers)
      fail(ErrorCode::format, "{}: meta_state key '0.{}' names no layer of the cache", where,
           m.first);

  for (const std::string& name : file->names()) {
    auto parsed = split_index(name);
    if (!parsed || parsed->first >= n_layers || parsed->second.empty())
      fail(ErrorCode::format,
           "{}: tensor '{}' does not name a state array of the cache's {} layers", where, name,
           n_layers);
    out.layers[size_t(parsed->first)].arrays.emplace_back(parsed->second, file->tensor(name));
  }
  for (int64_t l = 0; l < n_layers; ++l) {
    LayerCacheState& s = out.layers[size_t(l)];
    const std::vector<std::string>& expected = *expected_arrays(s.class_name);
    for (const std::string& a : expected)
      if (!s.find(a))
        fail(ErrorCode::format, "{}: layer {} ({}) has no tensor '{}.{}'", where, l, s.class_name,
             l, a);
    for (const auto& [a, t] : s.arrays)
      if (std::find(expected.begin(), expected.end(), a) == expected.end())
        fail(ErrorCode::format, "{}: tensor '{}.{}' is not part of a {}'s state", where, l, a,
             s.class_name);
    // Keep the arrays in the class's order (file order follows data offsets).
    std::sort(s.arrays.begin(), s.arrays.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  return out;
}

}  // namespace hearth::kv
