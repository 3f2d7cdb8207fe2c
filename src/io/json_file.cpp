#include "io/json_file.h"

#include <fstream>
#include <sstream>

namespace hearth::io {

namespace {

template <typename Json>
Json parse_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path))
      fail(ErrorCode::not_found, "{} does not exist", path.string());
    fail(ErrorCode::io, "cannot read {}", path.string());
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return Json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorCode::format, "{}: invalid JSON at byte {}: {}", path.string(), e.byte, e.what());
  }
}

}  // namespace

nlohmann::json read_json_file(const std::filesystem::path& path) {
  return parse_json_file<nlohmann::json>(path);
}

nlohmann::ordered_json read_ordered_json_file(const std::filesystem::path& path) {
  return parse_json_file<nlohmann::ordered_json>(path);
}

JsonObject::JsonObject(const nlohmann::json& value, std::string origin)
    : value_(&value), origin_(std::move(origin)) {
  if (!value.is_object()) fail(ErrorCode::config, "{}: expected a JSON object", origin_);
}

bool JsonObject::has(const std::string& key) const {
  auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

JsonObject JsonObject::object(const std::string& key) const {
  if (!has(key)) fail(ErrorCode::config, "{}: key '{}' is missing", origin_, key);
  const nlohmann::json& v = (*value_)[key];
  if (!v.is_object()) fail(ErrorCode::config, "{}: key '{}' should be an object", origin_, key);
  return JsonObject(v, origin_ + "." + key);
}

template <typename T>
T JsonObject::convert(const std::string& key) const {
  const nlohmann::json& v = (*value_)[key];
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean())
      fail(ErrorCode::config, "{}: key '{}' should be true or false, got {}", origin_, key,
           v.dump());
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // Accept 4096.0 as well: some configs write integers as floats.
    if (v.is_number_integer()) return v.get<T>();
    if (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>())))
      return T(v.get<double>());
    fail(ErrorCode::config, "{}: key '{}' should be an integer, got {}", origin_, key, v.dump());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number())
      fail(ErrorCode::config, "{}: key '{}' should be a number, got {}", origin_, key, v.dump());
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string())
      fail(ErrorCode::config, "{}: key '{}' should be a string, got {}", origin_, key, v.dump());
    return v.get<std::string>();
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::config, "{}: key '{}' has an unexpected value {}", origin_, key, v.dump());
    }
  }
}

template bool JsonObject::convert<bool>(const std::string&) const;
template int JsonObject::convert<int>(const std::string&) const;
template int64_t JsonObject::convert<int64_t>(const std::string&) const;
template double JsonObject::convert<double>(const std::string&) const;
template float JsonObject::convert<float>(const std::string&) const;
template std::string JsonObject::convert<std::string>(const std::string&) const;
template std::vector<int64_t> JsonObject::convert<std::vector<int64_t>>(const std::string&) const;
template std::vector<std::string> JsonObject::convert<std::vector<std::string>>(
    const std::string&) const;

}  // namespace hearth::io
