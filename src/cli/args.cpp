#include "cli/args.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace hearth::cli {
namespace {

std::string metavar_for(const std::vector<std::string>& names) {
  std::string longest = names.front();
  for (const auto& n : names)
    if (n.size() > longest.size()) longest = n;
  std::string m = longest.substr(longest.find_first_not_of('-'));
  std::transform(m.begin(), m.end(), m.begin(),
                 [](unsigned char c) { return c == '-' ? '_' : char(std::toupper(c)); });
  return m;
}

int parse_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || x < INT32_MIN || x > INT32_MAX)
    throw UsageError(fmt::format("argument {}: invalid int value: '{}'", flag, v));
  return int(x);
}

}  // namespace

ArgParser::ArgParser(std::string prog, std::string description)
    : prog_(std::move(prog)), description_(std::move(description)) {}

ArgParser::Option& ArgParser::add(std::vector<std::string> names, std::string help) {
  Option o;
  o.metavar = metavar_for(names);
  o.names = std::move(names);
  o.help = std::move(help);
  options_.push_back(std::move(o));
  return options_.back();
}

void ArgParser::add_string(std::vector<std::string> names, std::string* target, std::string help) {
  add(std::move(names), std::move(help)).set = [target](const std::string& v) { *target = v; };
}

void ArgParser::add_optional_string(std::vector<std::string> names,
                                    std::optional<std::string>* target, std::string help) {
  add(std::move(names), std::move(help)).set = [target](const std::string& v) { *target = v; };
}

void ArgParser::add_int(std::vector<std::string> names, int* target, std::string help) {
  std::string flag = names.front();
  add(std::move(names), std::move(help)).set = [target, flag](const std::string& v) {
    *target = parse_int(flag, v);
  };
}

void ArgParser::add_optional_int(std::vector<std::string> names, std::optional<int>* target,
                                 std::string help) {
  std::string flag = names.front();
  add(std::move(names), std::move(help)).set = [target, flag](const std::string& v) {
    *target = parse_int(flag, v);
  };
}

void ArgParser::add_float(std::vector<std::string> names, float* target, std::string help) {
  std::string flag = names.front();
  add(std::move(names), std::move(help)).set = [target, flag](const std::string& v) {
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || std::isnan(x))
      throw UsageError(fmt::format("argument {}: invalid float value: '{}'", flag, v));
    *target = float(x);
  };
}

void ArgParser::add_flag(std::vector<std::string> names, bool* target, std::string help) {
  Option& o = add(std::move(names), std::move(help));
  o.kind = Option::Kind::flag;
  o.set_flag = [target] { *target = true; };
}

void ArgParser::add_bool(std::vector<std::string> names, bool* target, std::string help) {
  add(std::move(names), std::move(help)).set = [target](const std::string& v) {
    std::string lower = v;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    *target = !(lower == "false" || lower == "f");
  };
}

void ArgParser::add_list(std::vector<std::string> names, std::vector<std::string>* target,
                         std::string help) {
  Option& o = add(std::move(names), std::move(help));
  o.kind = Option::Kind::list;
  o.set = [target](const std::string& v) { target->push_back(v); };
  o.clear_list = [target] { target->clear(); };
}

void ArgParser::add_choice(std::vector<std::string> names, std::string* target,
                           std::vector<std::string> choices, std::string help) {
  std::string flag = names.front();
  add(std::move(names), std::move(help)).set = [target, flag, choices](const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "'" : ", '") + c + "'";
      throw UsageError(
          fmt::format("argument {}: invalid choice: '{}' (choose from {})", flag, v, list));
    }
    *target = v;
  };
}

const ArgParser::Option* ArgParser::find(const std::string& name) const {
  for (const auto& o : options_)
    for (const auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  std::vector<std::string> unknown;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
      unknown.push_back(arg);
      continue;
    }
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    const Option* o = find(arg);
    if (!o) {
      unknown.push_back(args[i]);
      continue;
    }
    switch (o->kind) {
      case Option::Kind::flag:
        if (inline_value)
          throw UsageError(
              fmt::format("argument {}: ignored explicit argument '{}'", arg, *inline_value));
        o->set_flag();
        break;
      case Option::Kind::value:
        if (inline_value) {
          o->set(*inline_value);
        } else {
          // A value may start with '-' only if it is a negative number or a lone '-' (stdin).
          if (i + 1 >= args.size() ||
              (args[i + 1].size() > 1 && args[i + 1][0] == '-' &&
               !std::isdigit(static_cast<unsigned char>(args[i + 1][1])) && args[i + 1][1] != '.'))
            throw UsageError(fmt::format("argument {}: expected one argument", arg));
          o->set(args[++i]);
        }
        break;
      case Option::Kind::list: {
        o->clear_list();
        size_t count = 0;
        if (inline_value) {
          o->set(*inline_value);
          ++count;
        }
        while (i + 1 < args.size() && !(args[i + 1].size() > 1 && args[i + 1][0] == '-')) {
          o->set(args[++i]);
          ++count;
        }
        if (count == 0)
          throw UsageError(fmt::format("argument {}: expected at least one argument", arg));
        break;
      }
    }
  }
  if (!unknown.empty()) {
    std::string list;
    for (const auto& u : unknown) list += (list.empty() ? "" : " ") + u;
    throw UsageError("unrecognized arguments: " + list);
  }
  return true;
}

std::string ArgParser::usage() const {
  std::string u = "usage: " + prog_ + " [-h]";
  for (const auto& o : options_) {
    std::string part = o.names.front();
    if (o.kind == Option::Kind::value) part += " " + o.metavar;
    if (o.kind == Option::Kind::list) part += " " + o.metavar + " [" + o.metavar + " ...]";
    u += " [" + part + "]";
  }
  return u + "\n";
}

std::string ArgParser::help() const {
  std::string h = usage() + "\n" + description_ +
                  "\n\noptions:\n  -h, --help  show this help message and exit\n";
  for (const auto& o : options_) {
    std::string names;
    for (const auto& n : o.names) {
      if (!names.empty()) names += ", ";
      names += n;
      if (o.kind == Option::Kind::value) names += " " + o.metavar;
      if (o.kind == Option::Kind::list) names += " " + o.metavar + " [" + o.metavar + " ...]";
    }
    h += "  " + names + "\n        " + o.help + "\n";
  }
  return h;
}

}  // namespace hearth::cli
