// Prompt-cache files: hearth's own round trip, files built to mlx-lm's layout by an independent
// Python writer, hearth's files read by an independent Python reader, and bad files.
#include "kv/prompt_cache_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "kv/quantize_cache.h"
#include "ops/attention.h"
#include "ops/copy.h"

namespace hearth::kv {
namespace {

namespace fs = std::filesystem;

constexpr int kLayers = 2, kHeads = 2, kDim = 8;

KvLayout layout(DType dtype, int heads = kHeads, int layers = kLayers) {
  KvLayout l;
  l.n_layers = layers;
  l.n_kv_heads = heads;
  l.head_dim = kDim;
  l.block_size = 4;
  l.dtype = dtype;
  return l;
}

// The value a test stores for (layer, keys/values, head, token, dim): eighths of integers in
// [-125, 125], exact in f16, bf16 (8 significant bits) and f32, varying along every axis.
float pattern(int layer, int which, int h, int t, int d) {
  return float((layer * 37 + which * 17 + h * 11 + t * 5 + d * 3) % 251 - 125) / 8.0f;
}

// A cache holding `tokens` tokens of the pattern, written through write_kv like a forward pass.
std::shared_ptr<KvCache> filled_cache(DType dtype, int tokens) {
  auto pool = std::make_shared<BlockPool>(layout(dtype), 16);
  auto cache = std::make_shared<KvCache>(pool);
  std::vector<int32_t> slots = cache->prepare_append(tokens);
  Tensor slot_tensor = Tensor::from_vector(slots, {tokens});
  for (int l = 0; l < kLayers; ++l) {
    std::vector<float> k, v;
    for (int t = 0; t < tokens; ++t)
      for (int h = 0; h < kHeads; ++h)
        for (int d = 0; d < kDim; ++d) {
          k.push_back(pattern(l, 0, h, t, d));
          v.push_back(pattern(l, 1, h, t, d));
        }
    Tensor kt = Tensor::from_vector(k, {tokens, kHeads, kDim});
    Tensor vt = Tensor::from_vector(v, {tokens, kHeads, kDim});
    Tensor kc = pool->keys(l), vc = pool->values(l);
    ops::write_kv(kt, vt, slot_tensor, kc, vc);
  }
  cache->commit(tokens);
  return cache;
}

std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> out;
  if (t.dtype() == DType::f32) return t.to_vector<float>();
  Tensor f = Tensor::empty(t.shape(), DType::f32);
  ops::copy(t, f);
  return f.to_vector<float>();
}

// The state arrays must hold the pattern in [1, H, T, D] order.
void expect_pattern(const std::vector<LayerCacheState>& layers, int tokens) {
  ASSERT_EQ(layers.size(), size_t(kLayers));
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(layers[l].class_name, "KVCache");
    ASSERT_TRUE(layers[l].meta_string.has_value());
    EXPECT_EQ(*layers[l].meta_string, "");
    for (int which = 0; which < 2; ++which) {
      const Tensor* t = layers[l].find(which == 0 ? "0" : "1");
      ASSERT_NE(t, nullptr);
      ASSERT_EQ(t->shape(), Dims({1, kHeads, tokens, kDim}));
      std::vector<float> got = as_floats(*t);
      size_t i = 0;
      for (int h = 0; h < kHeads; ++h)
        for (int t2 = 0; t2 < tokens; ++t2)
          for (int d = 0; d < kDim; ++d, ++i)
            ASSERT_EQ(got[i], pattern(l, which, h, t2, d)) << l << " " << which << " " << h;
    }
  }
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("hearth-pcache-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Runs python3 on `script` with `args`; returns (exit status, stdout).
std::pair<int, std::string> run_python(const TempDir& dir, const std::string& script,
                                       const std::string& args) {
  std::ofstream(dir / "script.py") << script;
  std::string cmd = "python3 '" + (dir / "script.py").string() + "' " + args + " > '" +
                    (dir / "py.out").string() + "'";
  int raw = std::system(cmd.c_str());
  std::ifstream in(dir / "py.out");
  std::string out((std::istreambuf_iterator<char>(in)), {});
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, out};
}

// Writes a prompt-cache file the way mlx-lm's save_prompt_cache lays it out (tree_flatten of
// [c.state ...] and of [meta_states, metadata, class_names], mx.save_safetensors without
// alignment padding), f16 arrays, pure Python.
const char* kMlxWriter = R"PY(
import json, struct, sys
path, layers, heads, tokens, dim = sys.argv[1], *map(int, sys.argv[2:6])
def pattern(l, which, h, t, d):
    return ((l * 37 + which * 17 + h * 11 + t * 5 + d * 3) % 251 - 125) / 8.0
class Array:  # an mx.array: a leaf of the tree
    def __init__(self, values):
        self.values = values
state = [tuple(  # KVCache.state: (keys, values), each [1, H, T, D]
    Array([pattern(l, w, h, t, d) for h in range(heads) for t in range(tokens) for d in range(dim)])
    for w in range(2)) for l in range(layers)]
def flatten(tree, prefix=""):
    if isinstance(tree, (list, tuple)):
        return [kv for i, t in enumerate(tree) for kv in flatten(t, prefix + "." + str(i))]
    if isinstance(tree, dict):
        return [kv for k, t in tree.items() for kv in flatten(t, prefix + "." + k)]
    return [(prefix[1:], tree)]
arrays = dict(flatten(state))
meta = dict(flatten([["" for _ in range(layers)],
                     {"model": "some/model", "tokenizer_config": json.dumps({"trust_remote_code": None})},
                     ["KVCache" for _ in range(layers)]]))
header, blobs, offset = {"__metadata__": meta}, [], 0
for name, array in arrays.items():
    blob = struct.pack("<%de" % len(array.values), *array.values)
    header[name] = {"dtype": "F16", "shape": [1, heads, tokens, dim],
                    "data_offsets": [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
text = json.dumps(header).encode()
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
)PY";

// Reads a safetensors file as mlx-lm's load_prompt_cache does (tree_unflatten of tensors and
// metadata into [states], [meta_states, metadata, class_names]) and prints what it found.
const char* kMlxReader = R"PY(
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
meta = header.pop("__metadata__")
def unflatten(items):
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    is_list = items[0][0].split(".", 1)[0].isdigit()
    children = {}
    for key, value in items:
        head, *rest = key.split(".", 1)
        children.setdefault(head, []).append((rest[0] if rest else "", value))
    if is_list:
        return [unflatten(children[k]) for k in sorted(children, key=int)]
    return {k: unflatten(v) for k, v in children.items()}
def decode(entry):
    begin, end = entry["data_offsets"]
    raw = data[8 + n + begin:8 + n + end]
    if entry["dtype"] == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if entry["dtype"] == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if entry["dtype"] == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    raise SystemExit("dtype " + entry["dtype"])
states = unflatten([(k, (v["dtype"], v["shape"], decode(v))) for k, v in header.items()])
info, metadata, classes = unflatten(list(meta.items()))
print(json.dumps({"states": states, "info": info, "metadata": metadata, "classes": classes}))
)PY";

TEST(PromptCacheFile, RoundTripIsBitExact) {
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    TempDir dir;
    auto cache = filled_cache(dtype, 7);  // two blocks, the second partly filled
    std::vector<LayerCacheState> exported = export_cache_state(*cache);
    expect_pattern(exported, 7);
    std::map<std::string, std::string> meta{{"model", "models/default"},
                                            {"tokenizer_config", "{\"trust_remote_code\": null}"}};
    fs::path written = save_prompt_cache(dir / "c.safetensors", exported, meta);
    EXPECT_EQ(written, dir / "c.safetensors");
    PromptCacheContents loaded = load_prompt_cache(written);
    EXPECT_EQ(loaded.metadata, meta);
    auto restored = cache_from_state(layout(dtype), loaded.layers, 0, written.string());
    EXPECT_EQ(restored->size(), 7);
    std::vector<LayerCacheState> again = export_cache_state(*restored);
    for (int l = 0; l < kLayers; ++l)
      for (const char* name : {"0", "1"}) {
        const Tensor& a = *exported[l].find(name);
        const Tensor& b = *again[l].find(name);
        ASSERT_EQ(a.dtype(), dtype);
        ASSERT_EQ(b.dtype(), dtype);
        ASSERT_EQ(a.shape(), b.shape());
        EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << dtype_name(dtype);
      }
  }
}

TEST(PromptCacheFile, AppendsTheSafetensorsSuffixLikeMlx) {
  TempDir dir;
  auto cache = filled_cache(DType::f32, 3);
  fs::path written = save_prompt_cache(dir / "prompt.cache", export_cache_state(*cache));
  EXPECT_EQ(written, dir / "prompt.cache.safetensors");
  EXPECT_TRUE(fs::exists(written));
  EXPECT_FALSE(fs::exists(dir / "prompt.cache"));
}

TEST(PromptCacheFile, HearthFileReadsAsMlxLmLayout) {
  TempDir dir;
  auto cache = filled_cache(DType::bf16, 6);
  save_prompt_cache(dir / "c.safetensors", export_cache_state(*cache),
                    {{"model", "m"}, {"tokenizer_config", "{}"}});
  auto [status, out] = run_python(dir, kMlxReader, "'" + (dir / "c.safetensors").string() + "'");
  ASSERT_EQ(status, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["info"], nlohmann::json::array({"", ""}));
  EXPECT_EQ(j["metadata"], nlohmann::json({{"model", "m"}, {"tokenizer_config", "{}"}}));
  EXPECT_EQ(j["classes"], nlohmann::json::array({"KVCache", "KVCache"}));
  ASSERT_EQ(j["states"].size(), size_t(kLayers));
  for (int l = 0; l < kLayers; ++l)
    for (int which = 0; which < 2; ++which) {
      const auto& s = j["states"][l][which];
      EXPECT_EQ(s[0], "BF16");
      EXPECT_EQ(s[1], nlohmann::json::array({1, kHeads, 6, kDim}));
      std::vector<float> values = s[2].get<std::vector<float>>();
      size_t i = 0;
      for (int h = 0; h < kHeads; ++h)
        for (int t = 0; t < 6; ++t)
          for (int d = 0; d < kDim; ++d, ++i) ASSERT_EQ(values[i], pattern(l, which, h, t, d));
    }
}

TEST(PromptCacheFile, LoadsAFileInMlxLmLayout) {
  TempDir dir;
  fs::path file = dir / "mlx.safetensors";
  auto [status, out] = run_python(dir, kMlxWriter, "'" + file.string() + "' 2 2 9 8");
  ASSERT_EQ(status, 0) << out;
  PromptCacheContents loaded = load_prompt_cache(file);
  EXPECT_EQ(loaded.metadata.at("model"), "some/model");
  EXPECT_EQ(loaded.metadata.at("tokenizer_config"), "{\"trust_remote_code\": null}");
  expect_pattern(loaded.layers, 9);
  // Into an f32 cache (f16 widens exactly), then read back.
  auto cache = cache_from_state(layout(DType::f32), loaded.layers, 5, file.string());
  EXPECT_EQ(cache->size(), 9);
  EXPECT_GE(cache->pool().max_blocks() * 4, 9 + 5);  // room for 5 more tokens
  expect_pattern(export_cache_state(*cache), 9);
}

// The message of the Error `f` throws.
template <typename F>
std::string error_of(F f, ErrorCode* code = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "(no error)";
}

void expect_error(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;
}

TEST(PromptCacheFile, BadFilesGiveClearErrors) {
  TempDir dir;
  fs::path good = dir / "good.safetensors";
  save_prompt_cache(good, export_cache_state(*filled_cache(DType::f32, 5)), {{"model", "m"}});
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});

  // Truncated: the data section ends early.
  fs::path truncated = dir / "truncated.safetensors";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  ErrorCode code{};
  std::string msg = error_of([&] { load_prompt_cache(truncated); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"truncated.safetensors"});

  // Model weights: a safetensors file without cache class names.
  fs::path weights = dir / "model.safetensors";
  io::save_safetensors(weights, {{"model.embed_tokens.weight", Tensor::zeros({4, 2}, DType::f32)}},
                       {{"format", "mlx"}});
  msg = error_of([&] { load_prompt_cache(weights); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"model.safetensors", "not a prompt-cache file"});

  Tensor kv = Tensor::zeros({1, kHeads, 3, kDim}, DType::f32);
  auto layer = [&](const std::string& cls) {
    LayerCacheState s;
    s.class_name = cls;
    s.meta_string = "";
    s.arrays = {{"0", kv}, {"1", kv}};
    return s;
  };
  // A layer missing: class names 0 and 2 only.
  fs::path gap = dir / "gap.safetensors";
  io::save_safetensors(gap, {{"0.0", kv}, {"0.1", kv}, {"2.0", kv}, {"2.1", kv}},
                       {{"0.0", ""}, {"2.0", "KVCache"}, {"0.2", ""}, {"2.2", "KVCache"}});
  msg = error_of([&] { load_prompt_cache(gap); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"gap.safetensors", "layer 1 is missing", "'2.1'"});

  // Unknown class name.
  fs::path unknown = dir / "unknown.safetensors";
  save_prompt_cache(unknown, {layer("KVCache"), layer("MambaCache")});
  msg = error_of([&] { load_prompt_cache(unknown); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"unknown.safetensors", "MambaCache", "'2.1'"});

  // A layer without its values.
  fs::path missing = dir / "missing.safetensors";
  LayerCacheState half = layer("KVCache");
  half.arrays.pop_back();
  save_prompt_cache(missing, {layer("KVCache"), half});
  msg = error_of([&] { load_prompt_cache(missing); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"missing.safetensors", "'1.1'"});

  // Head count and head dim of another model; layer count of another model.
  PromptCacheContents contents = load_prompt_cache(good);
  msg = error_of([&] { cache_from_state(layout(DType::f32, 4), contents.layers, 0, "g"); }, &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"g: array '0.0' has shape [1, 2, 5, 8]", "[1, 4, tokens, 8]"});
  msg = error_of([&] { cache_from_state(layout(DType::f32, kHeads, 3), contents.layers, 0, "g"); },
                 &code);
  EXPECT_EQ(code, ErrorCode::format);
  expect_error(msg, {"g: the file has 2 layers, the model has 3"});
  KvLayout wide = layout(DType::f32, kHeads);
  wide.head_dim = 16;
  msg = error_of([&] { cache_from_state(wide, contents.layers, 0, good.string()); });
  expect_error(msg, {"good.safetensors", "'0.0'", "[1, 2, tokens, 16]"});
  // QuantizedKVCache layers need their six planes.
  {
    std::vector<LayerCacheState> quantized = contents.layers;
    for (auto& s : quantized) {
      s.class_name = "QuantizedKVCache";
      s.meta_string.reset();
      s.meta_tuple = {"5", "32", "8"};
    }
    KvLayout wide_heads = layout(DType::f32);
    wide_heads.head_dim = 64;
    msg = error_of([&] { cache_from_state(wide_heads, quantized, 0, "q.safetensors"); }, &code);
    EXPECT_EQ(code, ErrorCode::format);
    expect_error(msg, {"q.safetensors", "'0.0.0'"});
  }
  // RotatingKVCache counters that are not integers.
  {
    std::vector<LayerCacheState> rotating = contents.layers;
    for (auto& s : rotating) {
      s.class_name = "RotatingKVCache";
      s.meta_string.reset();
      s.meta_tuple = {"4", "sixteen", "5", "5"};
    }
    msg = error_of([&] { cache_from_state(layout(DType::f32), rotating, 0, "r.safetensors"); },
                   &code);
    EXPECT_EQ(code, ErrorCode::format);
    expect_error(msg, {"r.safetensors", "'0.0.1'", "sixteen"});
  }
}

// A wrapped RotatingKVCache as mlx-lm saves it (keep 2, max_size 8, 13 tokens seen, next write at
// slot 5: the ring buffer in buffer order) loads into a rotating cache and saves back unchanged.
TEST(PromptCacheFile, RotatingStateRoundTrips) {
  TempDir dir;
  std::vector<LayerCacheState> layers(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    layers[l].class_name = "RotatingKVCache";
    layers[l].meta_tuple = {"2", "8", "13", "5"};
    for (int which = 0; which < 2; ++which) {
      std::vector<float> v;
      for (int h = 0; h < kHeads; ++h)
        for (int slot = 0; slot < 8; ++slot)
          for (int d = 0; d < kDim; ++d) v.push_back(pattern(l, which, h, slot, d));
      layers[l].arrays.emplace_back(which == 0 ? "0" : "1",
                                    Tensor::from_vector(v, {1, kHeads, 8, kDim}));
    }
  }
  save_prompt_cache(dir / "r.safetensors", layers, {{"model", "m"}});
  PromptCacheContents loaded = load_prompt_cache(dir / "r.safetensors");
  auto cache = cache_from_state(layout(DType::f32), loaded.layers, 16, "r.safetensors");
  EXPECT_EQ(cache->size(), 13);
  EXPECT_TRUE(cache->policy(0).rotating());
  EXPECT_EQ(cache->policy(0).keep, 2);
  EXPECT_EQ(cache->policy(0).max_size, 8);
  std::vector<LayerCacheState> again = export_cache_state(*cache);
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(again[l].class_name, "RotatingKVCache");
    EXPECT_EQ(again[l].meta_tuple, layers[l].meta_tuple);
    for (const char* name : {"0", "1"}) {
      const Tensor& a = *layers[l].find(name);
      const Tensor& b = *again[l].find(name);
      ASSERT_EQ(a.shape(), b.shape());
      EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>()) << l << name;
    }
  }
}

// A quantized cache (8 and 4 bits, head dim 64, group 32) saves as mlx-lm's QuantizedKVCache
// layers and loads back with identical planes.
TEST(PromptCacheFile, QuantizedStateRoundTrips) {
  for (int bits : {8, 4}) {
    TempDir dir;
    KvLayout dense = layout(DType::f32);
    dense.head_dim = 64;
    auto pool = std::make_shared<BlockPool>(dense, 16);
    KvCache cache(pool);
    const int tokens = 6;
    std::vector<int32_t> slots = cache.prepare_append(tokens);
    for (int l = 0; l < kLayers; ++l) {
      std::vector<float> k, v;
      for (int t = 0; t < tokens; ++t)
        for (int h = 0; h < kHeads; ++h)
          for (int d = 0; d < 64; ++d) {
            k.push_back(pattern(l, 0, h, t, d));
            v.push_back(pattern(l, 1, h, t, d));
          }
      Tensor kc = pool->keys(l), vc = pool->values(l);
      ops::write_kv(Tensor::from_vector(k, {tokens, kHeads, 64}),
                    Tensor::from_vector(v, {tokens, kHeads, 64}),
                    Tensor::from_vector(slots, {tokens}), kc, vc);
    }
    cache.commit(tokens);
    auto quantized = quantize_cache(cache, bits, 32);
    std::vector<LayerCacheState> exported = export_cache_state(*quantized);
    ASSERT_EQ(exported.size(), size_t(kLayers));
    EXPECT_EQ(exported[0].class_name, "QuantizedKVCache");
    EXPECT_EQ(exported[0].meta_tuple, (std::vector<std::string>{"6", "32", std::to_string(bits)}));
    EXPECT_EQ(exported[0].find("0.0")->shape(), Dims({1, kHeads, tokens, 64 * bits / 32}));
    EXPECT_EQ(exported[0].find("1.2")->shape(), Dims({1, kHeads, tokens, 2}));
    save_prompt_cache(dir / "q.safetensors", exported);
    PromptCacheContents loaded = load_prompt_cache(dir / "q.safetensors");
    auto restored = cache_from_state(dense, loaded.layers, 8, "q.safetensors");
    EXPECT_EQ(restored->size(), tokens);
    EXPECT_EQ(restored->pool().layout().kv_bits, bits);
    std::vector<LayerCacheState> again = export_cache_state(*restored);
    for (int l = 0; l < kLayers; ++l)
      for (const auto& [name, a] : exported[l].arrays) {
        const Tensor* b = again[l].find(name);
        ASSERT_NE(b, nullptr) << name;
        ASSERT_EQ(a.shape(), b->shape()) << name;
        ASSERT_EQ(a.dtype(), b->dtype()) << name;
        EXPECT_EQ(
            std::memcmp(ops::contiguous(a).raw_data(), ops::contiguous(*b).raw_data(), a.nbytes()),
            0)
            << l << " " << name;
      }
  }
}

TEST(PromptCacheFile, EmptyCacheIsRefused) {
  auto pool = std::make_shared<BlockPool>(layout(DType::f32), 4);
  KvCache cache(pool);
  EXPECT_THROW(export_cache_state(cache), Error);
}

}  // namespace
}  // namespace hearth::kv
