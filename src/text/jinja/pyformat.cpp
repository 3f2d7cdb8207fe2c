// Python's two string formatting mini-languages as templates reach them: `"%s" % x` and the
// `format` filter (printf style), and `"{}".format(x)` (format-spec style).
#include <cmath>
#include <cstdio>

#include "text/jinja/pystr.h"
#include "text/jinja/value.h"

namespace hearth::text::jinja::py {
namespace {

// snprintf into a std::string; the C library's %e/%f/%g match Python's for the same spec.
template <typename T>
std::string c_format(const std::string& spec, T value) {
  char buf[512];
  int n = std::snprintf(buf, sizeof(buf), spec.c_str(), value);
  if (n < 0) fail_render("formatting failed");
  if (static_cast<size_t>(n) < sizeof(buf)) return std::string(buf, static_cast<size_t>(n));
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), value);
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string float_special(double d, bool upper) {
  std::string s = std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf");
  return upper ? py::upper(s) : s;
}

}  // namespace

std::string percent_format(std::string_view fmt, const Value& args) {
  std::vector<Value> positional;
  const DictData* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    if (args.is_dict()) mapping = &args.dict_data();
    positional.push_back(args);
  }
  size_t next = 0;
  auto next_arg = [&]() -> const Value& {
    if (next >= positional.size()) fail_render("not enough arguments for format string");
    return positional[next++];
  };
  bool used_mapping = false;
  std::string out;
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i++];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i >= fmt.size()) fail_render("incomplete format");
    std::optional<Value> keyed;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string_view::npos) fail_render("incomplete format key");
      if (!mapping) fail_render("format requires a mapping");
      const Value* v = mapping->find(fmt.substr(i + 1, close - i - 1));
      if (!v) fail_render("KeyError: '{}'", fmt.substr(i + 1, close - i - 1));
      keyed = *v;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos)
      flags += fmt[i++];
    auto read_number = [&]() -> std::optional<int64_t> {
      if (i < fmt.size() && fmt[i] == '*') {
        ++i;
        const Value& v = next_arg();
        if (!v.is_int() && !v.is_bool()) fail_render("* wants int");
        return v.as_int();
      }
      if (i >= fmt.size() || fmt[i] < '0' || fmt[i] > '9') return std::nullopt;
      int64_t n = 0;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') n = n * 10 + (fmt[i++] - '0');
      return n;
    };
    std::optional<int64_t> width = read_number();
    std::optional<int64_t> precision;
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      precision = read_number().value_or(0);
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) fail_render("incomplete format");
    char type = fmt[i++];
    if (type == '%') {
      out += '%';
      continue;
    }
    const Value& v = keyed ? *keyed : next_arg();
    bool left = flags.find('-') != std::string::npos;
    std::string body;
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        body = type == 's' ? to_str(v) : repr(v);
        if (precision) body = slice(body, 0, *precision, 1);
        break;
      }
      case 'c': {
        if (v.is_string() && codepoint_length(v.str()) == 1) {
          body = v.str();
        } else if (v.is_int()) {
          append_utf8(body, static_cast<char32_t>(v.as_int()));
        } else {
          fail_render("%c requires int or char");
        }
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'o':
      case 'x':
      case 'X': {
        int64_t n = 0;
        if (v.is_int() || v.is_bool()) {
          n = v.as_int();
        } else if (v.is_float() && type != 'o' && type != 'x' && type != 'X') {
          n = static_cast<int64_t>(v.as_double());
        } else {
          fail_render("%{} format: a real number is required, not {}", type, type_name(v));
        }
        char t = type == 'i' || type == 'u' ? 'd' : type;
        std::string spec = "%" + flags + (width ? std::to_string(*width) : "") +
                           (precision ? "." + std::to_string(*precision) : "") + "ll" + t;
        if (t == 'o' && flags.find('#') != std::string::npos) {  // Python writes 0o, C writes 0
          std::string plain = c_format("%llo", static_cast<long long>(std::llabs(n)));
          body = (n < 0 ? "-0o" : "0o") + plain;
          if (width) body = pad(body, *width, ' ', left ? '<' : '>');
          out += body;
          continue;
        }
        out += c_format(spec, static_cast<long long>(n));
        continue;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!v.is_number()) {
          fail_render("must be real number, not {}", type_name(v));
        }
        std::string spec = "%" + flags + (width ? std::to_string(*width) : "") + "." +
                           std::to_string(precision.value_or(6)) + type;
        out += c_format(spec, v.as_double());
        continue;
      }
      default:
        fail_render("unsupported format character '{}'", type);
    }
    if (width) body = pad(body, *width, ' ', left ? '<' : '>');
    out += body;
  }
  if (!used_mapping && !mapping && next < positional.size()) {
    fail_render("not all arguments converted during string formatting");
  }
  return out;
}

namespace {

struct Spec {
  char32_t fill = ' ';
  char align = 0;
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  std::optional<int64_t> width;
  char grouping = 0;
  std::optional<int64_t> precision;
  char type = 0;
};

Spec parse_spec(std::string_view text) {
  Spec spec;
  std::u32string s = decode(text);
  size_t i = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill = s[0];
    spec.align = static_cast<char>(s[1]);
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = static_cast<char>(s[0]);
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' '))
    spec.sign = static_cast<char>(s[i++]);
  if (i < s.size() && s[i] == '#') spec.alternate = true, ++i;
  if (i < s.size() && s[i] == '0') spec.zero = true, ++i;
  auto digits = [&]() -> std::optional<int64_t> {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    int64_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') n = n * 10 + (s[i++] - '0');
    return n;
  };
  spec.width = digits();
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) spec.grouping = static_cast<char>(s[i++]);
  if (i < s.size() && s[i] == '.') {
    ++i;
    spec.precision = digits();
    if (!spec.precision) fail_render("Format specifier missing precision");
  }
  if (i < s.size()) spec.type = static_cast<char>(s[i++]);
  if (i != s.size()) fail_render("Invalid format specifier '{}'", text);
  return spec;
}

std::string group_digits(const std::string& digits, char sep) {
  std::string out;
  size_t n = digits.size();
  for (size_t k = 0; k < n; ++k) {
    if (k && (n - k) % 3 == 0) out += sep;
    out += digits[k];
  }
  return out;
}

// Applies sign, grouping, zero padding and alignment to a formatted magnitude.
std::string finish_number(std::string magnitude, bool negative, const Spec& spec,
                          const std::string& prefix) {
  if (spec.grouping) {
    size_t end = magnitude.find_first_not_of("0123456789");
    if (end == std::string::npos) end = magnitude.size();
    magnitude = group_digits(magnitude.substr(0, end), spec.grouping) + magnitude.substr(end);
  }
  std::string sign = negative ? "-" : (spec.sign == '+' ? "+" : (spec.sign == ' ' ? " " : ""));
  sign += prefix;
  char align = spec.align ? spec.align : (spec.zero ? '=' : '>');
  char32_t fill = spec.align ? spec.fill : (spec.zero ? U'0' : U' ');
  int64_t width = spec.width.value_or(0);
  if (align == '=') {
    int64_t len = codepoint_length(sign) + codepoint_length(magnitude);
    std::string padding;
    for (int64_t k = len; k < width; ++k) append_utf8(padding, fill);
    return sign + padding + magnitude;
  }
  return pad(sign + magnitude, width, fill, align);
}

std::string format_float(double d, const Spec& spec) {
  bool negative = std::signbit(d) && !std::isnan(d);
  double a = std::fabs(d);
  char type = spec.type;
  std::string body;
  if (std::isnan(d) || std::isinf(d)) {
    body = float_special(a, type == 'E' || type == 'F' || type == 'G');
  } else if (type == '%') {
    body = c_format("%." + std::to_string(spec.precision.value_or(6)) + "f", a * 100) + "%";
  } else if (type == 0 && !spec.precision) {
    body = float_repr(a);
  } else if (type == 0) {
    // Like 'g', but keeping a digit after the point and switching to exponent notation one
    // digit earlier (Python's float.__format__ with no presentation type).
    int64_t p = std::max<int64_t>(1, *spec.precision);
    std::string e = c_format("%." + std::to_string(p - 1) + "e", a);
    int exponent = std::atoi(e.c_str() + e.find('e') + 1);
    if (exponent < -4 || exponent >= p - 1) {
      body = c_format("%." + std::to_string(p - 1) + "e", a);
      size_t epos = body.find('e');
      std::string mant = body.substr(0, epos);
      if (mant.find('.') != std::string::npos) {
        while (mant.back() == '0') mant.pop_back();
        if (mant.back() == '.') mant.pop_back();
      }
      body = mant + body.substr(epos);
    } else {
      body = c_format("%." + std::to_string(p) + "g", a);
      if (body.find('.') == std::string::npos) body += ".0";
    }
  } else if (std::string_view("eEfFgG").find(type) != std::string_view::npos) {
    body = c_format(std::string("%") + (spec.alternate ? "#" : "") + "." +
                        std::to_string(spec.precision.value_or(6)) + type,
                    a);
  } else {
    fail_render("Unknown format code '{}' for object of type 'float'", type);
  }
  return finish_number(body, negative, spec, "");
}

std::string format_value(const Value& v, const Spec& spec, std::string_view raw_spec) {
  if (v.is_string() || (!v.is_number() && raw_spec.empty())) {
    if (spec.type && spec.type != 's') {
      fail_render("Unknown format code '{}' for object of type '{}'", spec.type, type_name(v));
    }
    if (!v.is_string() && !raw_spec.empty()) {
      fail_render("unsupported format string passed to {}.__format__", type_name(v));
    }
    std::string s = to_str(v);
    if (spec.precision) s = slice(s, 0, *spec.precision, 1);
    return pad(s, spec.width.value_or(0), spec.fill, spec.align ? spec.align : '<');
  }
  if (!v.is_number())
    fail_render("unsupported format string passed to {}.__format__", type_name(v));
  if (raw_spec.empty()) return to_str(v);
  if (v.is_float() || std::string_view("eEfFgG%").find(spec.type) != std::string_view::npos) {
    if (!v.is_float() && spec.type == 0) return format_float(v.as_double(), spec);
    return format_float(v.as_double(), spec);
  }
  int64_t n = v.as_int();
  bool negative = n < 0;
  auto mag = static_cast<unsigned long long>(negative ? -(n + 1) + 1ULL : n);
  std::string body, prefix;
  switch (spec.type) {
    case 0:
    case 'd':
    case 'n':
      body = std::to_string(mag);
      break;
    case 'x':
    case 'X':
      body = c_format(spec.type == 'x' ? "%llx" : "%llX", mag);
      if (spec.alternate) prefix = spec.type == 'x' ? "0x" : "0X";
      break;
    case 'o':
      body = c_format("%llo", mag);
      if (spec.alternate) prefix = "0o";
      break;
    case 'b':
      if (mag == 0) body = "0";
      for (unsigned long long m = mag; m; m >>= 1) body.insert(body.begin(), (m & 1) ? '1' : '0');
      if (spec.alternate) prefix = "0b";
      break;
    case 'c':
      append_utf8(body, static_cast<char32_t>(n));
      return pad(body, spec.width.value_or(0), spec.fill, spec.align ? spec.align : '<');
    default:
      fail_render("Unknown format code '{}' for object of type 'int'", spec.type);
  }
  return finish_number(body, negative, spec, prefix);
}

}  // namespace

std::string str_format(std::string_view fmt, const Args& args) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      fail_render("Single '}}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string_view::npos) fail_render("expected '}}' before end of string");
    std::string_view field = fmt.substr(i + 1, close - i - 1);
    i = close + 1;
    std::string_view spec_text, conversion;
    if (size_t colon = field.find(':'); colon != std::string_view::npos) {
      spec_text = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    if (size_t bang = field.find('!'); bang != std::string_view::npos) {
      conversion = field.substr(bang + 1);
      field = field.substr(0, bang);
    }
    size_t name_end = field.find_first_of(".[");
    std::string_view name = field.substr(0, name_end);
    Value value;
    if (name.empty()) {
      if (used_manual)
        fail_render("cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (auto_index >= args.positional.size())
        fail_render("Replacement index {} out of range", auto_index);
      value = args.positional[auto_index++];
    } else if (name.find_first_not_of("0123456789") == std::string_view::npos) {
      if (used_auto)
        fail_render("cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      size_t index = std::stoul(std::string(name));
      if (index >= args.positional.size()) fail_render("Replacement index {} out of range", index);
      value = args.positional[index];
    } else {
      bool found = false;
      for (const auto& [k, v] : args.keyword) {
        if (k == name) {
          value = v;
          found = true;
        }
      }
      if (!found) fail_render("KeyError: '{}'", name);
    }
    // Attribute and index chains: `.key` and `[key]` both look into dicts and lists.
    std::string_view rest = name_end == std::string_view::npos ? "" : field.substr(name_end);
    while (!rest.empty()) {
      std::string key;
      if (rest[0] == '.') {
        size_t end = rest.find_first_of(".[", 1);
        key = std::string(rest.substr(1, end == std::string_view::npos ? end : end - 1));
        rest = end == std::string_view::npos ? "" : rest.substr(end);
      } else {
        size_t end = rest.find(']');
        if (end == std::string_view::npos) fail_render("Missing ']' in format string");
        key = std::string(rest.substr(1, end - 1));
        rest = rest.substr(end + 1);
      }
      if (value.is_dict()) {
        const Value* v = value.dict_data().find(std::string_view(key));
        if (!v) fail_render("KeyError: '{}'", key);
        value = *v;
      } else if (value.is_sequence() && !key.empty() &&
                 key.find_first_not_of("0123456789") == std::string::npos) {
        size_t index = std::stoul(key);
        if (index >= value.items().size()) fail_render("IndexError: list index out of range");
        value = value.items()[index];
      } else {
        fail_render("'{}' object has no attribute '{}'", type_name(value), key);
      }
    }
    if (conversion == "r" || conversion == "a") {
      value = Value(repr(value));
    } else if (conversion == "s") {
      value = Value(to_str(value));
    } else if (!conversion.empty()) {
      fail_render("Unknown conversion specifier {}", conversion);
    }
    if (spec_text.find('{') != std::string_view::npos) {
      fail_render("nested replacement fields in format specs are not supported");
    }
    out += format_value(value, parse_spec(spec_text), spec_text);
  }
  return out;
}

}  // namespace hearth::text::jinja::py
