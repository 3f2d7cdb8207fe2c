// Robustness of the Jinja engine on malformed input: real templates with random edits (spans cut,
// duplicated, or tag/operator fragments inserted) must render exactly as Jinja2 renders them or
// fail cleanly on both sides; pathological nesting must fail with an error, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "text/chat_template.h"
#include "text/jinja/template.h"
#include "text/jinja_test_util.h"

namespace hearth::test {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Cuts, duplicates or inserts at UTF-8 character boundaries.
std::string mutate(const std::string& source, std::mt19937& rng) {
  static const char* kFragments[] = {"{{",
                                     "}}",
                                     "{%",
                                     "%}",
                                     "{#",
                                     "#}",
                                     "-",
                                     "(",
                                     ")",
                                     "[",
                                     "]",
                                     "'",
                                     "\"",
                                     "|",
                                     " if ",
                                     " endif ",
                                     " for x in ",
                                     " else ",
                                     ",",
                                     ".",
                                     "~",
                                     "+",
                                     "*",
                                     "\\",
                                     "\n",
                                     "é",
                                     " is ",
                                     " not ",
                                     "{%- endfor %}",
                                     "{% set x = ",
                                     ":"};
  std::string out = source;
  auto boundary = [&](size_t at) {
    while (at > 0 && at < out.size() && (static_cast<unsigned char>(out[at]) & 0xC0) == 0x80) --at;
    return at;
  };
  std::uniform_int_distribution<size_t> pos(0, source.size());
  std::uniform_int_distribution<int> len(1, 12);
  int edits = std::uniform_int_distribution<int>(1, 3)(rng);
  for (int e = 0; e < edits; ++e) {
    size_t at = boundary(std::min(pos(rng), out.size()));
    switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
      case 0: {
        size_t end = boundary(std::min(out.size(), at + static_cast<size_t>(len(rng))));
        out.erase(at, end - at);
        break;
      }
      case 1: {
        size_t end = boundary(std::min(out.size(), at + static_cast<size_t>(len(rng))));
        out.insert(at, out.substr(at, end - at));
        break;
      }
      default:
        out.insert(
            at,
            kFragments[std::uniform_int_distribution<size_t>(0, std::size(kFragments) - 1)(rng)]);
    }
  }
  return out;
}

const Json kOneMessage = Json::parse(R"([{"role": "user", "content": "hi"}])");

TEST(JinjaFuzz, MutatedRealTemplatesBehaveLikeJinja2) {
  const fs::path dir = fs::path(HEARTH_TEST_DATA_DIR) / "chat_templates";
  Json conversations = Json::parse(read_text(dir / "conversations.json"));
  Json messages;
  for (const Json& c : conversations["conversations"])
    if (c["name"] == "system_multi_turn") messages = c["messages"];
  Json chat{{"messages", messages},
            {"tools", conversations["tools"]},
            {"add_generation_prompt", true},
            {"special_tokens", Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}}}};
  // HEARTH_JINJA_FUZZ_SEED / HEARTH_JINJA_FUZZ_COUNT widen the search by hand.
  const char* seed = std::getenv("HEARTH_JINJA_FUZZ_SEED");
  const char* count = std::getenv("HEARTH_JINJA_FUZZ_COUNT");
  std::mt19937 rng(seed ? static_cast<unsigned>(std::stoul(seed)) : 2024u);
  int per_template = count ? std::stoi(count) : 16;
  Json cases = Json::array();
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".jinja") continue;
    std::string source = read_text(entry.path());
    for (int i = 0; i < per_template; ++i)
      cases.push_back(Json{{"template", mutate(source, rng)}, {"chat", chat}});
  }
  expect_same_as_reference(cases);
}

TEST(JinjaFuzz, PathologicalNestingFailsCleanly) {
  std::vector<std::string> sources = {
      "{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}",
      "{{ " + std::string(20000, '[') + " }}",
      "{{ " + std::string(5000, '-') + "1 }}",
      "{{ " + std::string(5000, '(') + " }}",
  };
  std::string nested_ifs;
  for (int i = 0; i < 5000; ++i) nested_ifs += "{% if true %}";
  sources.push_back(nested_ifs);
  std::string not_chain = "{{ ";
  for (int i = 0; i < 10000; ++i) not_chain += "not ";
  sources.push_back(not_chain + "x }}");
  for (const std::string& source : sources) {
    try {
      auto tmpl = text::ChatTemplate::compile(source, "deep");
      tmpl.apply(kOneMessage, text::ChatOptions{}, nlohmann::json::object());
      ADD_FAILURE() << "rendered a pathological template";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::format) << e.what();
    }
  }
}

TEST(JinjaFuzz, RunawayRecursionAndHugeValuesFailCleanly) {
  for (const char* source :
       {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{{ 'x' * 10000000000 }}",
        "{{ [1] * 10000000000 }}", "{{ 9223372036854775807 + 1 }}",
        "{% for i in range(1000000) %}{% endfor %}"}) {
    auto tmpl = text::ChatTemplate::compile(source, "runaway");
    EXPECT_THROW(tmpl.apply(Json::array(), text::ChatOptions{}, nlohmann::json::object()), Error)
        << source;
  }
}

}  // namespace
}  // namespace hearth::test
