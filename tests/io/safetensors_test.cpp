#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "io/weights.h"

namespace hearth::io {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("hearth-io-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A file built by hand to the published format (not by our writer).
std::string handmade_file() {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},)"
                       R"("__metadata__":{"format":"pt"}})";
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  out += header;
  float a[2] = {1.5f, -2.0f};
  out.append(reinterpret_cast<const char*>(a), 8);
  uint16_t b[2] = {0x3f80, 0xc000};  // 1.0, -2.0 in bf16
  out.append(reinterpret_cast<const char*>(b), 4);
  return out;
}

TEST(Safetensors, ReadsHandmadeFileZeroCopy) {
  TempDir dir;
  write_bytes(dir.path() / "x.safetensors", handmade_file());
  auto f = SafetensorsFile::open(dir.path() / "x.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->names(), (std::vector<std::string>{"a", "b"}));
  Tensor a = f->tensor("a");
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
  Tensor b = f->tensor("b");
  EXPECT_EQ(b.shape(), Dims({1, 2}));
  EXPECT_EQ(bf16_to_f32(b.to_vector<BF16>()[1]), -2.0f);
  EXPECT_TRUE(a.storage()->is_borrowed());
}

TEST(Safetensors, CopiedResidencyHoldsTheSameBytesInHugePageMemory) {
  TempDir dir;
  write_bytes(dir.path() / "x.safetensors", handmade_file());
  auto mapped = SafetensorsFile::open(dir.path() / "x.safetensors");
  auto copied = SafetensorsFile::open(dir.path() / "x.safetensors", WeightResidency::copied);
  EXPECT_EQ(copied->tensor("a").to_vector<float>(), mapped->tensor("a").to_vector<float>());
  EXPECT_EQ(copied->tensor("b").to_vector<BF16>()[1].bits, 0xc000);
  EXPECT_NE(copied->tensor("a").raw_data(), mapped->tensor("a").raw_data());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(copied->tensor("a").raw_data()) % (2 << 20), 0u);
}

TEST(Safetensors, WriterRoundTripsAndIsReadableByHandParse) {
  TempDir dir;
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = Tensor::from_vector<int32_t>({7, 8, 9}, {3});
  fs::path p = dir.path() / "out.safetensors";
  save_safetensors(p, {{"x.t", x.transpose(0, 1)}, {"y", y}}, {{"format", "mlx"}});
  std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "mlx");
  EXPECT_EQ(header["x.t"]["shape"], nlohmann::json({3, 2}));
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->tensor("x.t").to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(f->tensor("y").to_vector<int32_t>(), (std::vector<int32_t>{7, 8, 9}));
  // No temporary files left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

void expect_error(const fs::path& p, ErrorCode code, const std::string& fragment) {
  try {
    SafetensorsFile::open(p);
    ADD_FAILURE() << "no error for " << p;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p.filename().string()), std::string::npos) << e.what();
  }
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  TempDir dir;
  std::string good = handmade_file();
  write_bytes(dir.path() / "truncated.safetensors", good.substr(0, good.size() - 3));
  expect_error(dir.path() / "truncated.safetensors", ErrorCode::format, "truncated");
  write_bytes(dir.path() / "tiny.safetensors", "abc");
  expect_error(dir.path() / "tiny.safetensors", ErrorCode::format, "not a safetensors file");
  std::string bad_json = good;
  bad_json[8] = '#';
  write_bytes(dir.path() / "badjson.safetensors", bad_json);
  expect_error(dir.path() / "badjson.safetensors", ErrorCode::format, "not valid JSON");
  std::string huge = good;
  huge[7] = char(0x7f);
  write_bytes(dir.path() / "huge.safetensors", huge);
  expect_error(dir.path() / "huge.safetensors", ErrorCode::format, "header length");
  expect_error(dir.path() / "missing.safetensors", ErrorCode::not_found, "missing.safetensors");
}

TEST(Safetensors, UnknownDtypeFailsOnlyWhenUsed) {
  TempDir dir;
  std::string header = R"({"f8":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})";
  std::string out(8, '\0');
  out[0] = char(header.size());
  out += header + std::string(4, '\0');
  write_bytes(dir.path() / "f8.safetensors", out);
  auto f = SafetensorsFile::open(dir.path() / "f8.safetensors");
  try {
    f->tensor("f8");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_NE(std::string(e.what()).find("F8_E4M3"), std::string::npos);
  }
}

TEST(WeightSet, LoadsShardsThroughIndexAndChecksIt) {
  TempDir dir;
  Tensor a = Tensor::from_vector<float>({1, 2}, {2});
  Tensor b = Tensor::from_vector<float>({3}, {1});
  save_safetensors(dir.path() / "model-00001-of-00002.safetensors", {{"a", a}});
  save_safetensors(dir.path() / "model-00002-of-00002.safetensors", {{"b", b}});
  nlohmann::json index = {
      {"metadata", {{"total_size", 12}}},
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_bytes(dir.path() / "model.safetensors.index.json", index.dump());
  WeightSet ws = WeightSet::load_dir(dir.path());
  EXPECT_EQ(ws.size(), 2u);
  EXPECT_EQ(ws.get("b").to_vector<float>(), std::vector<float>{3});
  EXPECT_THROW(ws.get("c"), Error);

  index["weight_map"]["c"] = "model-00003-of-00003.safetensors";
  write_bytes(dir.path() / "model.safetensors.index.json", index.dump());
  try {
    WeightSet::load_dir(dir.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00003-of-00003.safetensors"), std::string::npos);
  }
  index["weight_map"].erase("c");
  index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  write_bytes(dir.path() / "model.safetensors.index.json", index.dump());
  try {
    WeightSet::load_dir(dir.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'d'"), std::string::npos) << e.what();
  }
}

TEST(WeightSet, EmptyFolderIsNotFound) {
  TempDir dir;
  try {
    WeightSet::load_dir(dir.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
  }
}

TEST(JsonFile, ErrorsNameFileAndKey) {
  TempDir dir;
  write_bytes(dir.path() / "config.json", R"({"hidden_size": "big", "n": 4096.0})");
  nlohmann::json j = read_json_file(dir.path() / "config.json");
  JsonObject o(j, "config.json");
  EXPECT_EQ(o.get<int64_t>("n"), 4096);
  try {
    o.get<int64_t>("hidden_size");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "config.json: key 'hidden_size' should be an integer, got \"big\"");
  }
  try {
    o.get<int64_t>("vocab_size");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "config.json: key 'vocab_size' is missing");
  }
  write_bytes(dir.path() / "bad.json", "{\"a\": ");
  EXPECT_THROW(read_json_file(dir.path() / "bad.json"), Error);
}

}  // namespace
}  // namespace hearth::io
