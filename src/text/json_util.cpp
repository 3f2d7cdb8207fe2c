// Typed JSON accessors with file/key error messages, shared by the tokenizer component builders.
#include "core/error.h"
#include "text/components.h"
#include "text/unicode.h"

namespace hearth::text {

const nlohmann::json& json_field(const nlohmann::json& obj, std::string_view name,
                                 const JsonPath& path) {
  if (!obj.is_object()) path.fail("expected an object");
  const auto it = obj.find(name);
  if (it == obj.end()) {
    path.fail(fmt::format("missing key '{}'", name));
  }
  return *it;
}

std::string json_string(const nlohmann::json& obj, std::string_view name, const JsonPath& path) {
  const auto& v = json_field(obj, name, path);
  if (!v.is_string()) {
    path.fail(fmt::format("'{}' must be a string", name));
  }
  return v.get<std::string>();
}

std::string json_string_or(const nlohmann::json& obj, std::string_view name,
                           const std::string& fallback, const JsonPath& path) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_string()) path.fail(fmt::format("'{}' must be a string", name));
  return it->get<std::string>();
}

bool json_bool_or(const nlohmann::json& obj, std::string_view name, bool fallback,
                  const JsonPath& path) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) path.fail(fmt::format("'{}' must be a boolean", name));
  return it->get<bool>();
}

int64_t json_int_or(const nlohmann::json& obj, std::string_view name, int64_t fallback,
                    const JsonPath& path) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    path.fail(fmt::format("'{}' must be an integer", name));
  }
  return it->get<int64_t>();
}

std::string json_type(const nlohmann::json& obj, const JsonPath& path) {
  return json_string(obj, "type", path);
}

char32_t json_char(const nlohmann::json& obj, std::string_view name, const JsonPath& path) {
  const std::string s = json_string(obj, name, path);
  size_t pos = 0;
  if (s.empty() || !unicode::is_valid_utf8(s) ||
      (unicode::next_code_point(s, pos), pos != s.size())) {
    path.fail(fmt::format("'{}' must be a single character, got '{}'", name, s));
  }
  pos = 0;
  return unicode::next_code_point(s, pos);
}

}  // namespace hearth::text

namespace hearth::text {

void JsonPath::fail(const std::string& message) const {
  hearth::fail(ErrorCode::format, "{}: {} at {}", file, message, key.empty() ? "<root>" : key);
}

}  // namespace hearth::text
