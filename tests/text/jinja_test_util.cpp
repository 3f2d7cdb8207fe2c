// Runs the Python reference renderer in a subprocess and compares its results with hearth's.
#include "text/jinja_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/chat_template.h"
#include "text/jinja/template.h"

namespace hearth::test {
namespace {

std::filesystem::path scratch_dir() {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("hearth-jinja-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  return dir;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<RenderResult> render_reference(const Json& cases) {
  auto dir = scratch_dir();
  auto in = dir / "cases.json", out = dir / "results.json";
  {
    std::ofstream f(in, std::ios::binary);
    f << cases.dump();
  }
  std::string script = std::string(HEARTH_SOURCE_DIR) + "/tests/text/render_reference.py";
  std::string cmd =
      "/usr/bin/python3 '" + script + "' '" + in.string() + "' '" + out.string() + "'";
  int rc = std::system(cmd.c_str());
  std::vector<RenderResult> results;
  if (rc != 0) {
    ADD_FAILURE() << "reference renderer failed (" << rc << "): " << cmd;
    std::filesystem::remove_all(dir);
    return results;
  }
  Json parsed = Json::parse(read_file(out));
  std::filesystem::remove_all(dir);
  for (const auto& r : parsed) {
    RenderResult result;
    result.ok = r.at("ok").get<bool>();
    if (result.ok) {
      result.output = r.at("output").get<std::string>();
    } else {
      result.kind = r.at("kind").get<std::string>();
      result.error = r.at("error").get<std::string>();
    }
    results.push_back(std::move(result));
  }
  return results;
}

RenderResult render_engine(const Json& test_case) {
  RenderResult result;
  try {
    auto tmpl = text::jinja::Template::parse(test_case.at("template").get<std::string>());
    std::vector<std::pair<std::string, text::jinja::Value>> context;
    if (test_case.contains("context")) {
      for (auto it = test_case["context"].begin(); it != test_case["context"].end(); ++it) {
        context.emplace_back(it.key(), text::jinja::from_json(it.value()));
      }
    }
    result.output = tmpl.render(context);
    result.ok = true;
  } catch (const text::jinja::TemplateError& e) {
    result.kind = e.kind == text::jinja::TemplateError::Kind::syntax   ? "syntax"
                  : e.kind == text::jinja::TemplateError::Kind::raised ? "raised"
                                                                       : "runtime";
    result.error = e.message + " (line " + std::to_string(e.line) + ")";
  }
  return result;
}

RenderResult render_chat(const Json& test_case, const std::string& origin) {
  RenderResult result;
  const Json& chat = test_case.at("chat");
  try {
    auto tmpl = text::ChatTemplate::compile(test_case.at("template").get<std::string>(), origin);
    text::ChatOptions options;
    options.add_generation_prompt = chat.value("add_generation_prompt", false);
    options.continue_final_message = chat.value("continue_final_message", false);
    if (chat.contains("tools")) options.tools = chat["tools"];
    if (chat.contains("documents")) options.documents = chat["documents"];
    if (chat.contains("kwargs")) options.extra = chat["kwargs"];
    nlohmann::json special = chat.contains("special_tokens")
                                 ? nlohmann::json(chat["special_tokens"])
                                 : nlohmann::json::object();
    result.output = tmpl.apply(chat.at("messages"), options, special);
    result.ok = true;
  } catch (const Error& e) {
    result.kind = e.code() == ErrorCode::format ? "syntax" : "invalid_argument";
    result.error = e.what();
  }
  return result;
}

std::string describe_case(const Json& test_case) {
  std::string s = test_case.dump();
  if (s.size() > 600) s = s.substr(0, 600) + "...";
  return s;
}

void expect_same_as_reference(const Json& cases) {
  std::vector<RenderResult> expected = render_reference(cases);
  ASSERT_EQ(expected.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    RenderResult got = c.contains("chat") ? render_chat(c) : render_engine(c);
    const RenderResult& want = expected[i];
    SCOPED_TRACE("case " + std::to_string(i) + ": " + describe_case(c));
    // HEARTH_JINJA_DUMP_DIR=dir keeps every case as dir/case-N.json for debugging.
    if (const char* dump = std::getenv("HEARTH_JINJA_DUMP_DIR")) {
      std::ofstream(std::filesystem::path(dump) / ("case-" + std::to_string(i) + ".json"))
          << c.dump(2);
    }
    if (want.ok) {
      EXPECT_TRUE(got.ok) << "reference rendered but hearth failed: " << got.error;
      if (got.ok) {
        EXPECT_EQ(got.output, want.output);
      }
      continue;
    }
    EXPECT_FALSE(got.ok) << "reference failed (" << want.kind << ": " << want.error
                         << ") but hearth rendered: " << got.output;
    if (got.ok) continue;
    if (want.kind == "syntax") {
      EXPECT_EQ(got.kind, "syntax") << got.error << " vs " << want.error;
    }
    if (want.kind == "raised") {
      EXPECT_NE(got.error.find(want.error), std::string::npos) << got.error << " vs " << want.error;
    }
  }
}

}  // namespace hearth::test
