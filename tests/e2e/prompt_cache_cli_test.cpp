// Prompt caching end to end: `hearth cache_prompt`, `hearth generate --prompt-cache-file`, files
// rewritten into mlx-lm's layout by an independent Python writer, and the errors users meet.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "e2e/hearth_run.h"
#include "gen/generate.h"
#include "io/model_path.h"
#include "kv/prompt_cache_file.h"
#include "model/model.h"

namespace hearth::e2e {
namespace {

namespace fs = std::filesystem;

// Reads a safetensors prompt-cache file and writes it again the way mlx-lm's save_prompt_cache
// does (tree_flatten key names built here, tensors in reverse order, no alignment padding), with
// the given user metadata. Optionally turns every layer into a QuantizedKVCache of the given
// bits/group size (zero planes) to exercise the flag checks.
const char* kMlxRewriter = R"PY(
import json, struct, sys
src, dst, meta_json = sys.argv[1], sys.argv[2], sys.argv[3]
quant = sys.argv[4:]  # [bits, group_size] or nothing
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
header.pop("__metadata__")
layers = 1 + max(int(k.split(".")[0]) for k in header)
def raw(name):
    b, e = header[name]["data_offsets"]
    return data[8 + n + b:8 + n + e]
def flatten(tree, prefix=""):
    if isinstance(tree, (list, tuple)):
        return [kv for i, t in enumerate(tree) for kv in flatten(t, prefix + "." + str(i))]
    if isinstance(tree, dict):
        return [kv for k, t in tree.items() for kv in flatten(t, prefix + "." + k)]
    return [(prefix[1:], tree)]
class Leaf:  # an mx.array: a leaf of the tree
    def __init__(self, dtype, shape):
        self.dtype, self.shape = dtype, shape
if quant:
    bits, gs = int(quant[0]), int(quant[1])
    def planes(shape):
        b, h, t, d = shape
        return (Leaf("U32", [b, h, t, d * bits // 32]), Leaf("F16", [b, h, t, d // gs]),
                Leaf("F16", [b, h, t, d // gs]))
    state = [(planes(header["%d.0" % l]["shape"]), planes(header["%d.1" % l]["shape"])) for l in range(layers)]
    tokens = header["0.0"]["shape"][2]
    info = [(str(tokens), str(gs), str(bits)) for _ in range(layers)]
    classes = ["QuantizedKVCache"] * layers
    def payload(leaf):
        dtype, shape = leaf.dtype, leaf.shape
        count = shape[0] * shape[1] * shape[2] * shape[3]
        return dtype, shape, bytes(count * (4 if dtype == "U32" else 2))
    arrays = [(k, payload(v)) for k, v in flatten(state)]
else:
    state = [("%d.0" % l, "%d.1" % l) for l in range(layers)]
    info = ["" for _ in range(layers)]
    classes = ["KVCache"] * layers
    arrays = [(k, (header[v]["dtype"], header[v]["shape"], raw(v))) for k, v in flatten(state)]
metadata = dict(flatten([info, json.loads(meta_json), classes]))
out, blobs, offset = {"__metadata__": metadata}, [], 0
for name, (dtype, shape, blob) in reversed(arrays):
    out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
text = json.dumps(out).encode()
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
)PY";

std::string default_model() {
  return io::default_model_path().string();
}

const char* kPrefix = "The old man walked down to the river and sat by the water.";
const char* kQuestion = " What did he see there?";

TEST(CachePrompt, SavesMlxMetadataAndContinuesLikeAFreshRun) {
  ScratchDir dir("cache-prompt");
  RunResult saved = run_hearth(std::string("cache_prompt --prompt '") + kPrefix +
                               "' --prompt-cache-file " + quote(dir / "prefix"));
  ASSERT_EQ(saved.status, 0) << saved.err;
  EXPECT_NE(saved.out.find("Processed"), std::string::npos) << saved.out;
  EXPECT_NE(saved.out.find("Peak memory:"), std::string::npos) << saved.out;
  EXPECT_NE(saved.out.find("Saving..."), std::string::npos) << saved.out;
  // mx.save_safetensors appends the suffix; hearth does the same.
  fs::path file = dir / "prefix.safetensors";
  ASSERT_TRUE(fs::exists(file));
  kv::PromptCacheContents contents = kv::load_prompt_cache(file);
  EXPECT_EQ(contents.metadata.at("model"), default_model());
  EXPECT_EQ(contents.metadata.at("tokenizer_config"), "{\"trust_remote_code\": null}");
  ASSERT_EQ(contents.layers.size(), 8u);
  EXPECT_EQ(contents.layers[0].class_name, "KVCache");

  // The model comes from the metadata; the prompt continues the cached user turn.
  RunResult cached = run_hearth("generate --prompt-cache-file " + quote(file) + " --prompt '" +
                                kQuestion + "' --max-tokens 12 --verbose False");
  ASSERT_EQ(cached.status, 0) << cached.err;
  EXPECT_FALSE(cached.out.empty());

  // Reference without files: the same tokens through one cache in this process. The cached
  // prompt is the open user turn; the new prompt is what the template puts from the user's text
  // on (the default model's template is "<bos><|im_start|>{role}\n{content}<|im_end|>\n").
  auto model = model::load_model(io::default_model_path());
  auto tokenizer = text::Tokenizer::from_dir(io::default_model_path());
  std::vector<int32_t> prefix =
      tokenizer.encode(std::string("<|endoftext|><|im_start|>user\n") + kPrefix, false);
  std::vector<int32_t> suffix =
      tokenizer.encode(std::string(kQuestion) + "<|im_end|>\n<|im_start|>assistant\n", false);
  EXPECT_EQ(prefix.size(), size_t(contents.layers[0].find("0")->dim(2)));
  gen::GenerationOptions options;
  options.max_tokens = 1;
  auto pool = std::make_shared<kv::BlockPool>(model->kv_layout(options.kv_block_size), 64);
  auto cache = std::make_shared<kv::KvCache>(pool);
  gen::TokenGenerator(*model, prefix, options, cache).next();
  options.max_tokens = 12;
  std::string expected;
  gen::stream_generate(
      *model, tokenizer, suffix, options,
      [&](const gen::GenerationResponse& r) {
        expected += r.text;
        return true;
      },
      cache);
  EXPECT_EQ(cached.out, expected + "\n");

  // The same cache rewritten by an mlx-lm-layout writer generates the same text.
  RunResult rewrite = run_python(
      kMlxRewriter,
      quote(file) + " " + quote(dir / "mlx.safetensors") + " '" +
          nlohmann::json({{"model", default_model()}, {"tokenizer_config", "{}"}}).dump() + "'");
  ASSERT_EQ(rewrite.status, 0) << rewrite.err;
  RunResult from_mlx = run_hearth("generate --prompt-cache-file " + quote(dir / "mlx.safetensors") +
                                  " --prompt '" + kQuestion + "' --max-tokens 12 --verbose False");
  ASSERT_EQ(from_mlx.status, 0) << from_mlx.err;
  EXPECT_EQ(from_mlx.out, cached.out);
}

// The text generated after `suffix` from a cache that went through `prefix` first, in this process
// and without files: what generate --prompt-cache-file must print.
std::string continuation_without_files(const std::vector<int32_t>& prefix,
                                       const std::vector<int32_t>& suffix,
                                       gen::GenerationOptions options) {
  auto model = model::load_model(io::default_model_path());
  auto tokenizer = text::Tokenizer::from_dir(io::default_model_path());
  auto cache = gen::make_prompt_cache(*model, options, int64_t(prefix.size() + suffix.size()) + 64);
  options.max_tokens = 1;
  gen::TokenGenerator first(*model, prefix, options, cache);
  first.next();
  cache = first.shared_cache();  // the quantized replacement with kv_bits
  options.max_tokens = 12;
  std::string text;
  gen::stream_generate(
      *model, tokenizer, suffix, options,
      [&](const gen::GenerationResponse& r) {
        text += r.text;
        return true;
      },
      cache);
  return text;
}

TEST(CachePrompt, RotatingCacheFileContinuesLikeAFreshRun) {
  ScratchDir dir("cache-rotating");
  const std::string prefix_text = std::string(kPrefix) + " " + kPrefix;
  RunResult saved = run_hearth("cache_prompt --max-kv-size 16 --prompt '" + prefix_text +
                               "' --prompt-cache-file " + quote(dir / "r.safetensors"));
  ASSERT_EQ(saved.status, 0) << saved.err;
  kv::PromptCacheContents contents = kv::load_prompt_cache(dir / "r.safetensors");
  auto tokenizer = text::Tokenizer::from_dir(io::default_model_path());
  std::vector<int32_t> prefix =
      tokenizer.encode("<|endoftext|><|im_start|>user\n" + prefix_text, false);
  ASSERT_GT(prefix.size(), 16u);  // the ring has wrapped
  for (const auto& layer : contents.layers) {
    EXPECT_EQ(layer.class_name, "RotatingKVCache");
    // (keep, max_size, offset, _idx) as mlx-lm's cache_prompt leaves them after one prefill
    // chunk of all but the last token (kept whole: the first update of an empty cache) and one
    // step for the last token (trim to max_size, _idx wraps to keep, one token written).
    ASSERT_EQ(layer.meta_tuple.size(), 4u);
    EXPECT_EQ(layer.meta_tuple[0], "4");
    EXPECT_EQ(layer.meta_tuple[1], "16");
    EXPECT_EQ(layer.meta_tuple[2], std::to_string(prefix.size()));
    EXPECT_EQ(layer.meta_tuple[3], "5");  // trimmed to 16 slots, rotated to keep, one written
    EXPECT_EQ(layer.find("0")->dim(2), 16);
  }
  RunResult cached = run_hearth("generate --prompt-cache-file " + quote(dir / "r.safetensors") +
                                " --prompt '" + kQuestion + "' --max-tokens 12 --verbose False");
  ASSERT_EQ(cached.status, 0) << cached.err;
  gen::GenerationOptions options;
  options.max_kv_size = 16;
  std::vector<int32_t> suffix =
      tokenizer.encode(std::string(kQuestion) + "<|im_end|>\n<|im_start|>assistant\n", false);
  EXPECT_EQ(cached.out, continuation_without_files(prefix, suffix, options) + "\n");
}

TEST(CachePrompt, QuantizedCacheFileContinuesLikeAFreshRun) {
  ScratchDir dir("cache-quantized");
  RunResult saved =
      run_hearth(std::string("cache_prompt --kv-bits 8 --quantized-kv-start 4 ") + "--prompt '" +
                 kPrefix + "' --prompt-cache-file " + quote(dir / "q.safetensors"));
  ASSERT_EQ(saved.status, 0) << saved.err;
  kv::PromptCacheContents contents = kv::load_prompt_cache(dir / "q.safetensors");
  auto tokenizer = text::Tokenizer::from_dir(io::default_model_path());
  std::vector<int32_t> prefix =
      tokenizer.encode(std::string("<|endoftext|><|im_start|>user\n") + kPrefix, false);
  for (const auto& layer : contents.layers) {
    EXPECT_EQ(layer.class_name, "QuantizedKVCache");
    EXPECT_EQ(layer.meta_tuple,
              (std::vector<std::string>{std::to_string(prefix.size()), "64", "8"}));
  }
  // Without --kv-bits the file's quantization carries on, as in mlx-lm; the reference quantizes
  // in the same places (start 4: after the first prefill chunk).
  RunResult cached = run_hearth("generate --prompt-cache-file " + quote(dir / "q.safetensors") +
                                " --prompt '" + kQuestion + "' --max-tokens 12 --verbose False");
  ASSERT_EQ(cached.status, 0) << cached.err;
  gen::GenerationOptions options;
  options.kv_bits = 8;
  options.quantized_kv_start = 4;
  std::vector<int32_t> suffix =
      tokenizer.encode(std::string(kQuestion) + "<|im_end|>\n<|im_start|>assistant\n", false);
  EXPECT_EQ(cached.out, continuation_without_files(prefix, suffix, options) + "\n");
}

TEST(CachePrompt, ContinuingFromALoadedCacheEqualsNeverSaving) {
  ScratchDir dir("cache-roundtrip");
  auto model = model::load_model(io::default_model_path());
  auto tokenizer = text::Tokenizer::from_dir(io::default_model_path());
  std::vector<int32_t> prefix = tokenizer.encode(kPrefix, true);
  std::vector<int32_t> suffix = tokenizer.encode(kQuestion, false);
  gen::GenerationOptions options;
  options.max_tokens = 1;
  auto make_cache = [&] {
    auto pool = std::make_shared<kv::BlockPool>(model->kv_layout(options.kv_block_size), 64);
    return std::make_shared<kv::KvCache>(pool);
  };
  auto original = make_cache();
  gen::TokenGenerator(*model, prefix, options, original).next();
  kv::save_prompt_cache(dir / "c.safetensors", kv::export_cache_state(*original));
  auto restored =
      kv::cache_from_state(model->kv_layout(options.kv_block_size),
                           kv::load_prompt_cache(dir / "c.safetensors").layers, 64, "c");
  ASSERT_EQ(restored->size(), original->size());

  options.max_tokens = 16;
  gen::TokenGenerator a(*model, suffix, options, original);
  gen::TokenGenerator b(*model, suffix, options, restored);
  for (int i = 0; i < 16; ++i) {
    auto sa = a.next();
    std::vector<float> la(sa->logprobs().begin(), sa->logprobs().end());
    auto sb = b.next();
    ASSERT_EQ(sa->token, sb->token) << "step " << i;
    ASSERT_EQ(la.size(), sb->logprobs().size());
    EXPECT_EQ(std::memcmp(la.data(), sb->logprobs().data(), la.size() * sizeof(float)), 0)
        << "step " << i;
  }
}

TEST(CachePrompt, ErrorsNameTheFileAndTheProblem) {
  ScratchDir dir("cache-errors");
  // Required flags, as argparse reports them.
  RunResult r = run_hearth("cache_prompt --prompt hi");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("required: --prompt-cache-file"), std::string::npos) << r.err;

  ASSERT_EQ(run_hearth("cache_prompt --prompt 'Once upon a time' --prompt-cache-file " +
                       quote(dir / "c.safetensors"))
                .status,
            0);
  fs::path file = dir / "c.safetensors";

  // Another model than the one the cache was made with.
  r = run_hearth("generate --prompt-cache-file " + quote(file) + " --model " +
                 quote(fs::path(HEARTH_TEST_DATA_DIR) / "models" / "qwen3-plain") +
                 " --prompt x --max-tokens 2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("different model"), std::string::npos) << r.err;

  // A model's weights given as a prompt cache.
  r = run_hearth("generate --prompt-cache-file " +
                 quote(io::default_model_path() / "model.safetensors") + " --prompt x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a prompt-cache file"), std::string::npos) << r.err;

  // A truncated file.
  std::string bytes = read_text(file);
  std::ofstream(dir / "cut.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  r = run_hearth("generate --prompt-cache-file " + quote(dir / "cut.safetensors") + " --prompt x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cut.safetensors"), std::string::npos) << r.err;

  // A cache of another model shape (the qwen3 fixture) for the default model.
  ASSERT_EQ(run_hearth("cache_prompt --prompt 'Once upon a time' --prompt-cache-file " +
                       quote(dir / "qwen.safetensors") + " --model " +
                       quote(fs::path(HEARTH_TEST_DATA_DIR) / "models" / "qwen3-plain"))
                .status,
            0);
  RunResult rewrite = run_python(
      kMlxRewriter,
      quote(dir / "qwen.safetensors") + " " + quote(dir / "shape.safetensors") + " '" +
          nlohmann::json({{"model", default_model()}, {"tokenizer_config", "{}"}}).dump() + "'");
  ASSERT_EQ(rewrite.status, 0) << rewrite.err;
  r = run_hearth("generate --prompt-cache-file " + quote(dir / "shape.safetensors") +
                 " --prompt x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("shape.safetensors"), std::string::npos) << r.err;

  // A quantized cache (8 bits, group 64) with other --kv-bits / --kv-group-size.
  rewrite = run_python(
      kMlxRewriter,
      quote(file) + " " + quote(dir / "q.safetensors") + " '" +
          nlohmann::json({{"model", default_model()}, {"tokenizer_config", "{}"}}).dump() +
          "' 8 64");
  ASSERT_EQ(rewrite.status, 0) << rewrite.err;
  r = run_hearth("generate --prompt-cache-file " + quote(dir / "q.safetensors") +
                 " --kv-bits 4 --prompt x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--kv-bits"), std::string::npos) << r.err;
  r = run_hearth("generate --prompt-cache-file " + quote(dir / "q.safetensors") +
                 " --kv-group-size 32 --prompt x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--kv-group-size"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace hearth::e2e
