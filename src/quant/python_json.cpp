#include "quant/python_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace hearth::quant {

namespace {

void append_hex4(std::string& out, uint32_t unit) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(unit));
  out += buf;
}

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i. Malformed bytes are
// returned one at a time (nlohmann validated parsed strings, so this only guards hand-made ones).
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int extra = b0 >= 0xf0 ? 3 : b0 >= 0xe0 ? 2 : b0 >= 0xc0 ? 1 : 0;
  if (extra == 0 || i + size_t(extra) >= s.size()) {
    ++i;
    return b0;
  }
  uint32_t cp = b0 & (0x3f >> extra);
  for (int k = 1; k <= extra; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) {
      ++i;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  i += size_t(extra) + 1;
  return cp;
}

void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp >= 0x20 && cp <= 0x7e) {
      out += char(cp);
    } else if (cp > 0xffff) {
      uint32_t v = cp - 0x10000;
      append_hex4(out, 0xd800 | (v >> 10));
      append_hex4(out, 0xdc00 | (v & 0x3ff));
    } else {
      append_hex4(out, cp);
    }
  }
  out += '"';
}

void append_value(std::string& out, const nlohmann::ordered_json& v, int indent, int level) {
  using Type = nlohmann::ordered_json::value_t;
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(size_t(indent) * size_t(lvl), ' ');
  };
  switch (v.type()) {
    case Type::null:
    case Type::discarded:
      out += "null";
      return;
    case Type::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case Type::number_integer:
      out += std::to_string(v.get<int64_t>());
      return;
    case Type::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      return;
    case Type::number_float:
      out += python_float_repr(v.get<double>());
      return;
    case Type::string:
      append_string(out, v.get_ref<const std::string&>());
      return;
    case Type::binary:
      out += "null";
      return;
    case Type::array: {
      if (v.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& item : v) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        append_value(out, item, indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Type::object: {
      if (v.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        append_string(out, key);
        out += ": ";
        append_value(out, item, indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string_view text(buf, size_t(result.ptr - buf));
  std::string sign;
  if (!text.empty() && text.front() == '-') {
    sign = "-";
    text.remove_prefix(1);
  }
  size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e))
    if (c != '.') digits += c;
  int exponent = std::stoi(std::string(text.substr(e + 1)));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  // Python (format_float_short, repr mode): the decimal point sits after `decpt` digits; exponent
  // notation when decpt <= -4 or decpt > 16.
  int decpt = exponent + 1;
  std::string out = sign;
  if (decpt <= -4 || decpt > 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof exp_text, "e%+03d", exponent);
    out += exp_text;
  } else if (decpt <= 0) {
    out += "0." + std::string(size_t(-decpt), '0') + digits;
  } else if (size_t(decpt) >= digits.size()) {
    out += digits + std::string(size_t(decpt) - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
  }
  return out;
}

std::string python_json_dumps(const nlohmann::ordered_json& value, int indent) {
  std::string out;
  append_value(out, value, indent, 0);
  return out;
}

}  // namespace hearth::quant
