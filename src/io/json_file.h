// JSON files (config.json, generation_config.json, ...) with typed access whose errors name the
// file and the key.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace hearth::io {

// Parses a JSON file; not_found / format errors name the path (and the parse position).
nlohmann::json read_json_file(const std::filesystem::path& path);
// The same, keeping object keys in file order (chat messages and tool schemas, whose key order a
// template may print).
nlohmann::ordered_json read_ordered_json_file(const std::filesystem::path& path);

// Read access to a JSON object with messages like "config.json: key 'hidden_size' is missing".
class JsonObject {
 public:
  JsonObject(const nlohmann::json& value, std::string origin);

  const std::string& origin() const { return origin_; }
  const nlohmann::json& raw() const { return *value_; }
  bool has(const std::string& key) const;  // present and not null

  template <typename T>
  T get(const std::string& key) const {
    if (!has(key)) fail(ErrorCode::config, "{}: key '{}' is missing", origin_, key);
    return convert<T>(key);
  }
  template <typename T>
  T get_or(const std::string& key, T fallback) const {
    return has(key) ? convert<T>(key) : fallback;
  }
  template <typename T>
  std::optional<T> find(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return convert<T>(key);
  }
  // A nested object; missing or not an object is a config error.
  JsonObject object(const std::string& key) const;

 private:
  template <typename T>
  T convert(const std::string& key) const;
  const nlohmann::json* value_;
  std::string origin_;
};

}  // namespace hearth::io
