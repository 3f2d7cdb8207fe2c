#include "quant/python_json.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace hearth::quant {
namespace {

using Json = nlohmann::ordered_json;

TEST(PythonJson, FloatReprMatchesPython) {
  // repr() values from CPython 3.
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(10000.0), "10000.0");
  EXPECT_EQ(python_float_repr(500000.0), "500000.0");
  EXPECT_EQ(python_float_repr(1e-06), "1e-06");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(0.02), "0.02");
  EXPECT_EQ(python_float_repr(1.5e-07), "1.5e-07");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(1e100), "1e+100");
  EXPECT_EQ(python_float_repr(std::nan("")), "NaN");
  EXPECT_EQ(python_float_repr(-INFINITY), "-Infinity");
}

TEST(PythonJson, IndentedLayout) {
  Json j = Json::parse(R"({"b": [1, 2.0, "x"], "a": {}, "c": [], "d": {"e": null, "f": true}})");
  EXPECT_EQ(python_json_dumps(j),
            "{\n"
            "    \"b\": [\n"
            "        1,\n"
            "        2.0,\n"
            "        \"x\"\n"
            "    ],\n"
            "    \"a\": {},\n"
            "    \"c\": [],\n"
            "    \"d\": {\n"
            "        \"e\": null,\n"
            "        \"f\": true\n"
            "    }\n"
            "}");
  EXPECT_EQ(python_json_dumps(Json::parse("[]")), "[]");
  EXPECT_EQ(python_json_dumps(Json::parse("{}")), "{}");
}

TEST(PythonJson, EnsureAsciiEscapes) {
  Json j =
      "a\"b\\c\n\t\x01\x7f"
      "\xc3\xa9"
      "\xe2\x96\x81"
      "\xf0\x9f\x98\x80"
      "/";
  EXPECT_EQ(python_json_dumps(j),
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\u00e9\\u2581\\ud83d\\ude00/\"");
}

TEST(PythonJson, SameTextAsPythonJsonDump) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3";
  // A config.json-like document with the awkward cases, dumped by both.
  const std::string text =
      R"({"architectures": ["LlamaForCausalLM"], "rms_norm_eps": 1e-05, "rope_theta": 500000.0,)"
      R"( "initializer_range": 0.02, "nested": {"z": 1, "a": [0.1, 1e-07, 1e+20, -0.0, 3]},)"
      R"( "tok": "\u2581caf\u00e9 \ud83d\ude00 \"q\" \\ \n", "empty": {}, "none": null,)"
      R"( "big": 12345678901234, "neg": -7, "t": true})";
  test::TempDir tmp;
  std::ofstream(tmp.path() / "in.json") << text;
  auto r = test::run_python(
      "-c 'import json,sys; d=json.load(open(sys.argv[1])); "
      "sys.stdout.write(json.dumps(d, indent=4))' " +
      test::quote(tmp.path() / "in.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(python_json_dumps(Json::parse(text)), r.out);
}

}  // namespace
}  // namespace hearth::quant
