// Tokenizer throughput, single thread: encodes a list of documents (a JSON array of strings, as
// written by bench/tokenizer_bench.js so that both sides see the very same inputs) and prints
// MB/s for the first pass (cold word cache) and the median of the following passes (warm).
// Usage: tokenizer_bench MODEL_DIR DOCS.json [passes]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenizer_bench MODEL_DIR DOCS.json [passes]\n");
    return 2;
  }
  try {
    const int passes = argc > 3 ? std::max(2, std::atoi(argv[3])) : 5;
    std::ifstream in(argv[2], std::ios::binary);
    const auto docs = nlohmann::json::parse(in).get<std::vector<std::string>>();
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    const auto tok = hearth::text::Tokenizer::from_dir(argv[1]);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

    std::vector<double> seconds;
    size_t tokens = 0;
    for (int p = 0; p < passes; ++p) {
      tokens = 0;
      t0 = clock::now();
      for (const auto& d : docs) tokens += tok.encode(d, false).size();
      seconds.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    std::vector<double> warm(seconds.begin() + 1, seconds.end());
    std::sort(warm.begin(), warm.end());
    const double mb = static_cast<double>(bytes) / 1e6;
    std::printf(
        "{\"impl\": \"hearth\", \"bytes\": %zu, \"docs\": %zu, \"tokens\": %zu, "
        "\"load_s\": %.3f, \"cold_mbps\": %.2f, \"warm_mbps\": %.2f}\n",
        bytes, docs.size(), tokens, load_s, mb / seconds[0], mb / warm[warm.size() / 2]);
  } catch (const hearth::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
