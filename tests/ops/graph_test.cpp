// CUDA graphs (ops/graph.h): a captured sequence of ops replays with the inputs' current values;
// memory allocated or freed while recording stays the graph's (never handed out while it
// lives); an op that syncs inside capture fails the capture and leaves the stream usable; the
// pinned staging buffer uploads. Skipped without a GPU; on the CPU nothing can be captured.
#include <gtest/gtest.h>

#include <cstring>

#include "ops/backend.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/graph.h"

namespace hearth {
namespace {

class CudaGraph : public testing::Test {
 protected:
  void SetUp() override {
    try {
      ops::backend_for(Device::cuda(0));
    } catch (const Error& e) {
      GTEST_SKIP() << "no CUDA backend/GPU: " << e.what();
    }
    if (!ops::graphs_supported(Device::cuda(0)))
      GTEST_SKIP() << "CUDA graphs are off (HEARTH_CUDA_GRAPHS=0 or HEARTH_CUDA_PROFILE)";
  }
};

std::vector<float> host(const Tensor& t) {
  return ops::to_device(t, Device::cpu()).to_vector<float>();
}

Tensor device_values(const std::vector<float>& v) {
  return ops::to_device(Tensor::from_vector(v, {int64_t(v.size())}), Device::cuda(0));
}

TEST(Graphs, CpuCannotCapture) {
  EXPECT_FALSE(ops::graphs_supported(Device::cpu()));
  EXPECT_THROW(ops::capture_graph(Device::cpu(), [] {}), Error);
}

TEST_F(CudaGraph, ReplaysWithCurrentInputsAndKeepsItsMemory) {
  const int64_t n = 1000;
  std::vector<float> av(n), bv(n);
  for (int64_t i = 0; i < n; ++i) {
    av[size_t(i)] = float(i);
    bv[size_t(i)] = float(3 * i + 1);
  }
  Tensor a = device_values(av), b = device_values(bv);
  Tensor out = Tensor::empty({n}, DType::f32, Device::cuda(0));
  void* scratch = nullptr;
  auto graph = ops::capture_graph(Device::cuda(0), [&] {
    Tensor tmp = Tensor::empty({n}, DType::f32, Device::cuda(0));  // freed inside the capture
    scratch = tmp.raw_data();
    ops::add(a, b, tmp);
    ops::add(tmp, a, out);  // out = 2a + b
  });
  // Nothing ran while recording; allocations of the same size now get other memory.
  std::vector<Tensor> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(Tensor::empty({n}, DType::f32, Device::cuda(0)));
    EXPECT_NE(others.back().raw_data(), scratch);
    ops::copy(Tensor::from_vector(std::vector<float>(size_t(n), -7.0f), {n}), others.back());
  }
  for (int round = 0; round < 3; ++round) {
    for (float& x : av) x += 1.0f;
    ops::copy(Tensor::from_vector(av, {n}), a);
    graph->launch();
    std::vector<float> got = host(out);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(i)], 2 * av[size_t(i)] + bv[size_t(i)]) << "round " << round;
    for (const Tensor& t : others) EXPECT_EQ(host(t)[0], -7.0f) << "a replay wrote other memory";
  }
  graph.reset();  // its memory returns to the cache
}

TEST_F(CudaGraph, ASyncInsideCaptureFailsAndTheStreamStaysUsable) {
  Tensor a = device_values({1, 2, 3});
  EXPECT_THROW(ops::capture_graph(Device::cuda(0), [&] { host(a); }), Error);
  Tensor out = Tensor::empty({3}, DType::f32, Device::cuda(0));
  ops::add(a, a, out);
  EXPECT_EQ(host(out), (std::vector<float>{2, 4, 6}));
}

TEST_F(CudaGraph, StagingBufferUploads) {
  auto staging = ops::make_staging_buffer(Device::cuda(0), 64 * sizeof(int32_t));
  Tensor dst = Tensor::empty({64}, DType::i32, Device::cuda(0));
  for (int round = 0; round < 3; ++round) {
    auto* p = static_cast<int32_t*>(staging->acquire());
    for (int i = 0; i < 64; ++i) p[i] = i * 10 + round;
    staging->upload(64 * sizeof(int32_t), dst);
    std::vector<int32_t> got = ops::to_device(dst, Device::cpu()).to_vector<int32_t>();
    for (int i = 0; i < 64; ++i) ASSERT_EQ(got[size_t(i)], i * 10 + round);
  }
}

}  // namespace
}  // namespace hearth
