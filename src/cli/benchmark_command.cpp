// `hearth benchmark`: mlx_lm.benchmark's flags (random prompt tokens, warm-up, trials, averages),
// plus a memory-bandwidth probe in the same run so decode speed reads as a fraction of the
// roofline, and a JSON record for docs/perf/.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/memory_bandwidth.h"
#include "core/memory_stats.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "gen/batch_generate.h"
#include "io/atomic_file.h"
#include "ops/copy.h"

#ifndef HEARTH_GIT_COMMIT
#define HEARTH_GIT_COMMIT "unknown"
#endif

namespace hearth::cli {
namespace {

struct Trial {
  double prompt_tps = 0, generation_tps = 0, peak_memory_gb = 0;
};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

Trial run_single(model::Model& model, const std::vector<int32_t>& prompt,
                 const gen::GenerationOptions& options) {
  gen::TokenGenerator generator(model, prompt, options);
  Stopwatch clock;
  Trial t;
  int64_t n = 0;
  while (generator.next()) {
    if (n == 0) {
      t.prompt_tps = double(prompt.size()) / clock.seconds();
      clock.restart();
    }
    ++n;
  }
  t.generation_tps = double(n) / clock.seconds();
  t.peak_memory_gb = double(memory::peak_bytes(model.device().kind)) / 1e9;
  return t;
}

// The memory roofline of the device the model runs on: host read bandwidth on the CPU, a
// device-to-device copy (bytes read + written) on a GPU.
double measure_bandwidth(Device device) {
  if (device.is_cpu()) return measure_read_bandwidth();
  const int64_t n = int64_t(1) << 30;
  Tensor a = Tensor::empty({n}, DType::u8, device), b = Tensor::empty({n}, DType::u8, device);
  auto sync = [&] { ops::to_device(b.slice(0, 0, 1), Device::cpu()); };
  ops::copy(a, b);
  sync();
  double best = 0;
  for (int r = 0; r < 10; ++r) {
    Stopwatch clock;
    ops::copy(a, b);
    sync();
    best = std::max(best, 2.0 * double(n) / clock.seconds());
  }
  return best;
}

}  // namespace

int run_benchmark(const std::vector<std::string>& argv) {
  std::optional<std::string> model_flag, json_path;
  int prompt_tokens = 512, generation_tokens = 1024, batch_size = 1, num_trials = 5;
  int prefill_step_size = 2048;
  std::string device_flag;  // empty: the GPU when there is one
  std::string matmul_precision = "bf16";
  std::optional<int> max_kv_size, kv_bits;
  int kv_group_size = 64, quantized_kv_start = 0;
  // Sampling (hearth's addition: mlx_lm.benchmark decodes greedily), to time the sampler too.
  float temp = 0.0f, top_p = 1.0f, min_p = 0.0f;
  int top_k = 0;
  ArgParser p("hearth benchmark", "LLM benchmarking (mlx_lm.benchmark).");
  p.add_optional_string({"--model"}, &model_flag,
                        "The path to the local model directory (default: the bundled model).");
  p.add_int({"--prompt-tokens", "-p"}, &prompt_tokens, "Length of prompt");
  p.add_int({"--generation-tokens", "-g"}, &generation_tokens, "Length of completion");
  p.add_int({"--batch-size", "-b"}, &batch_size, "Batch size");
  p.add_int({"--num-trials", "-n"}, &num_trials, "Number of timing trials");
  p.add_int({"--prefill-step-size"}, &prefill_step_size, "Prompt tokens per forward pass");
  p.add_string({"--device"}, &device_flag,
               "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)");
  add_matmul_precision_flag(p, &matmul_precision);
  p.add_optional_int({"--max-kv-size"}, &max_kv_size, "Set the maximum key-value cache size");
  p.add_optional_int({"--kv-bits"}, &kv_bits,
                     "Number of bits for KV cache quantization. Defaults to no quantization.");
  p.add_int({"--kv-group-size"}, &kv_group_size, "Group size for KV cache quantization.");
  p.add_int({"--quantized-kv-start"}, &quantized_kv_start,
            "When --kv-bits is set, start quantizing the KV cache from this step onwards.");
  p.add_float({"--temp"}, &temp, "Sampling temperature (default 0: greedy, as mlx_lm.benchmark)");
  p.add_float({"--top-p"}, &top_p, "Sampling top-p");
  p.add_float({"--min-p"}, &min_p, "Sampling min-p");
  p.add_int({"--top-k"}, &top_k, "Sampling top-k");
  p.add_optional_string({"--json"}, &json_path, "Also write the results as JSON to this file");
  if (!p.parse(argv)) return 0;
  if (prompt_tokens < 1) throw UsageError("argument --prompt-tokens: must be positive");
  if (generation_tokens < 1) throw UsageError("argument --generation-tokens: must be positive");
  if (batch_size < 1) throw UsageError("argument --batch-size: must be positive");
  if (num_trials < 1) throw UsageError("argument --num-trials: must be positive");

  std::filesystem::path dir = model_dir_from_flag(model_flag);
  const Device device = device_from_flag(device_flag);
  auto model = model::load_model(dir, load_options(device, matmul_precision));
  const auto& cfg = model->config();

  // Random prompts, fixed seed (mlx-lm seeds 0 too; the values differ, the shapes do not).
  std::mt19937 rng(0);
  std::uniform_int_distribution<int32_t> token(0, int32_t(cfg.vocab_size - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch_size));
  for (auto& prompt : prompts)
    for (int i = 0; i < prompt_tokens; ++i) prompt.push_back(token(rng));

  gen::GenerationOptions options;
  set_kv_cache_flags(max_kv_size, kv_bits, kv_group_size, quantized_kv_start, options);
  options.max_tokens = generation_tokens;
  options.prefill_step_size = prefill_step_size;
  options.seed = 0;
  options.sampling.temp = temp;
  options.sampling.top_p = top_p;
  options.sampling.min_p = min_p;
  options.sampling.top_k = top_k;
  gen::make_sampler(options.sampling, cfg.vocab_size);  // the flags' range errors, before any work
  auto bench = [&]() -> Trial {
    if (batch_size == 1) return run_single(*model, prompts[0], options);
    gen::BatchResult r = gen::batch_generate(*model, prompts, options);  // no EOS: full length
    return {r.stats.prompt_tps, r.stats.generation_tps, r.stats.peak_memory_gb};
  };

  std::printf("Running warmup..\n");
  bench();
  // The probe runs before and after the trials: on shared machines the bandwidth drifts.
  const double bandwidth_before = measure_bandwidth(model->device());
  std::printf("Timing with prompt_tokens=%d, generation_tokens=%d, batch_size=%d.\n", prompt_tokens,
              generation_tokens, batch_size);
  std::vector<Trial> trials;
  for (int i = 0; i < num_trials; ++i) {
    trials.push_back(bench());
    const Trial& t = trials.back();
    std::printf("Trial %d:  prompt_tps=%.3f, generation_tps=%.3f, peak_memory=%.3f\n", i + 1,
                t.prompt_tps, t.generation_tps, t.peak_memory_gb);
    std::fflush(stdout);
  }
  Trial avg;
  for (const Trial& t : trials) {
    avg.prompt_tps += t.prompt_tps / num_trials;
    avg.generation_tps += t.generation_tps / num_trials;
    avg.peak_memory_gb += t.peak_memory_gb / num_trials;
  }
  std::printf("Averages: prompt_tps=%.3f, generation_tps=%.3f, peak_memory=%.3f\n", avg.prompt_tps,
              avg.generation_tps, avg.peak_memory_gb);

  // Decode roofline: each step reads the weights once plus the KV of the context so far (codes,
  // scales and biases for a quantized cache; at most the window of a rotating one).
  auto layout = model->kv_layout(32);
  layout.kv_bits = options.kv_bits;
  layout.kv_group_size = options.kv_group_size;
  const double kv_bytes_per_token = double(layout.block_bytes()) / layout.block_size;
  double mean_context = prompt_tokens + generation_tokens / 2.0;
  if (options.max_kv_size > 0) mean_context = std::min(mean_context, double(options.max_kv_size));
  const double bytes_per_step =
      double(model->weight_bytes_per_token()) + kv_bytes_per_token * mean_context * batch_size;
  const double bandwidth_after = measure_bandwidth(model->device());
  const double bandwidth = 0.5 * (bandwidth_before + bandwidth_after);
  const double steps_per_s = avg.generation_tps / batch_size;
  const double fraction = steps_per_s * bytes_per_step / bandwidth;
  std::printf(
      "Decode roofline: %.1f MB read per step, measured read bandwidth %.2f GB/s (%.2f before, "
      "%.2f after the trials), %.1f%% of it (%.1f steps/s of %.1f possible)\n",
      bytes_per_step / 1e6, bandwidth / 1e9, bandwidth_before / 1e9, bandwidth_after / 1e9,
      100.0 * fraction, steps_per_s, bandwidth / bytes_per_step);

  if (json_path) {
    nlohmann::ordered_json j;
    j["machine"] = {{"cpu", cpu_model_name()},
                    {"threads", ThreadPool::global().num_threads()},
                    {"device", device.str()}};
    j["commit"] = HEARTH_GIT_COMMIT;
    j["model"] = {{"path", dir.string()},
                  {"architecture", cfg.architecture},
                  {"hidden_size", cfg.hidden_size},
                  {"num_layers", cfg.num_layers},
                  {"num_heads", cfg.num_heads},
                  {"num_kv_heads", cfg.num_kv_heads},
                  {"intermediate_size", cfg.intermediate_size},
                  {"vocab_size", cfg.vocab_size},
                  {"weight_bytes_per_token", model->weight_bytes_per_token()}};
    j["settings"] = {{"prompt_tokens", prompt_tokens},
                     {"generation_tokens", generation_tokens},
                     {"batch_size", batch_size},
                     {"num_trials", num_trials},
                     {"prefill_step_size", prefill_step_size},
                     {"max_kv_size", options.max_kv_size},
                     {"kv_bits", options.kv_bits},
                     {"kv_group_size", options.kv_group_size},
                     {"quantized_kv_start", options.quantized_kv_start},
                     {"matmul_precision", matmul_precision},
                     {"temp", temp},
                     {"top_p", top_p},
                     {"min_p", min_p},
                     {"top_k", top_k}};
    nlohmann::ordered_json tj = nlohmann::ordered_json::array();
    for (const Trial& t : trials)
      tj.push_back({{"prompt_tps", t.prompt_tps},
                    {"generation_tps", t.generation_tps},
                    {"peak_memory_gb", t.peak_memory_gb}});
    j["trials"] = tj;
    j["averages"] = {{"prompt_tps", avg.prompt_tps},
                     {"generation_tps", avg.generation_tps},
                     {"peak_memory_gb", avg.peak_memory_gb}};
    j["roofline"] = {{"bytes_per_decode_step", bytes_per_step},
                     {"measured_read_bandwidth_bytes_per_s", bandwidth},
                     {"read_bandwidth_before_bytes_per_s", bandwidth_before},
                     {"read_bandwidth_after_bytes_per_s", bandwidth_after},
                     {"decode_fraction_of_bandwidth", fraction}};
    io::write_file_atomic(*json_path, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace hearth::cli
