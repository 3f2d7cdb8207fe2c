#include "ops/cuda/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace hearth::ops::cuda {
namespace {

using Clock = std::chrono::steady_clock;

struct Stat {
  long calls = 0;
  double host_us = 0, gpu_us = 0;
  // The fastest call: an op's first calls can carry one-time set-up, which the mean hides (an 8B
  // prefill's q/k/v GEMMs averaged 1.37 ms a call with host time alike, ~10x their cost alone;
  // likely cuBLAS's first-call set-up, not confirmed).
  double gpu_min_us = 1e300;
};

struct Profile {
  std::mutex mutex;
  std::map<std::string, Stat> stats;
  struct Pending {
    const char* name;
    cudaEvent_t start, stop;
  };
  std::vector<Pending> pending;
  std::vector<cudaEvent_t> spare;
  bool any_sync = false;
  Clock::time_point first_sync, last_sync;
  long syncs = 0;

  cudaEvent_t event() {
    if (!spare.empty()) {
      cudaEvent_t e = spare.back();
      spare.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    return e;
  }
};

Profile& profile() {
  static Profile* p = new Profile();  // leaked: ops may run during static destruction
  return *p;
}

void print_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  std::vector<std::pair<std::string, Stat>> rows(p.stats.begin(), p.stats.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.gpu_us > b.second.gpu_us; });
  double host = 0, gpu = 0;
  std::fprintf(stderr,
               "\nHEARTH_CUDA_PROFILE (events around each backend op; host = time in the op; CUDA "
               "graphs are off while profiling: every decode step ran eagerly)\n");
  std::fprintf(stderr, "%-22s %9s %12s %12s %12s %12s %12s\n", "op", "calls", "host us/call",
               "gpu us/call", "gpu min us", "host ms", "gpu ms");
  for (const auto& [name, s] : rows) {
    std::fprintf(stderr, "%-22s %9ld %12.2f %12.2f %12.2f %12.1f %12.1f\n", name.c_str(), s.calls,
                 s.host_us / double(s.calls), s.gpu_us / double(s.calls),
                 s.gpu_min_us < 1e300 ? s.gpu_min_us : 0.0, s.host_us / 1e3, s.gpu_us / 1e3);
    host += s.host_us;
    gpu += s.gpu_us;
  }
  const double wall =
      p.any_sync ? std::chrono::duration<double, std::micro>(p.last_sync - p.first_sync).count()
                 : 0.0;
  std::fprintf(stderr,
               "total: host in ops %.1f ms, GPU in ops %.1f ms, wall from first to last of %ld "
               "syncs %.1f ms\n",
               host / 1e3, gpu / 1e3, p.syncs, wall / 1e3);
}

}  // namespace

bool op_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HEARTH_CUDA_PROFILE");
    const bool enabled = v && *v && std::string(v) != "0";
    if (enabled) std::atexit(print_profile);
    return enabled;
  }();
  return on;
}

void op_profile_collect() {
  if (!op_profile_enabled()) return;
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (const Profile::Pending& e : p.pending) {
    float ms = 0;
    if (cudaEventElapsedTime(&ms, e.start, e.stop) == cudaSuccess) {
      Stat& st = p.stats[e.name];
      st.gpu_us += 1e3 * double(ms);
      st.gpu_min_us = std::min(st.gpu_min_us, 1e3 * double(ms));
    } else {
      cudaGetLastError();  // an op that queued nothing between its events
    }
    p.spare.push_back(e.start);
    p.spare.push_back(e.stop);
  }
  p.pending.clear();
  const Clock::time_point now = Clock::now();
  if (!p.any_sync) p.first_sync = now;
  p.any_sync = true;
  p.last_sync = now;
  ++p.syncs;
}

void OpProfileScope::begin(const char* name, cudaStream_t stream) {
  Profile& p = profile();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    start_ = p.event();
  }
  name_ = name;
  stream_ = stream;
  host_start_ = Clock::now();
  cudaEventRecord(start_, stream_);
}

void OpProfileScope::end() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  cudaEvent_t stop = p.event();
  cudaEventRecord(stop, stream_);
  Stat& s = p.stats[name_];
  ++s.calls;
  s.host_us += std::chrono::duration<double, std::micro>(Clock::now() - host_start_).count();
  p.pending.push_back({name_, start_, stop});
}

}  // namespace hearth::ops::cuda
