// Compute ceiling of the quantized GEMV: one thread, a weight small enough to stay in L2
// (512 x 1536 at 4 bits = 384 KiB), timed in process CPU time so other tenants of the shared VM
// do not count. Prints codes per second next to the dense bf16 GEMV on the same shape.
// Used to choose the 4-bit inner loop (qgemv.cpp): HEARTH_CPU_Q4_EXACT=1 vs the default, and a
// 4th argument "bf16" for the int16-x path of MatmulPrecision::bf16.
//
//   cmake --build build -j2 && g++ -O2 -std=c++20 -mavx2 -mfma -mf16c -Isrc -Iinclude \
//     dev/kernels/qgemv_q4.cpp build/src/libhearth_ops.a build/src/libhearth_core.a -lfmt \
//     -lpthread -o /tmp/qgemv_q4 && HEARTH_NUM_THREADS=1 /tmp/qgemv_q4 4 512 1536 [bf16]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "ops/precision.h"
#include "ops/quantized.h"
using namespace hearth;
#include <ctime>
static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
int main(int argc, char** argv) {
  int bits = atoi(argv[1]);
  int64_t n = atoi(argv[2]), k = atoi(argv[3]);
  int reps = 2000;
  const bool bf16 = argc > 4 && std::string_view(argv[4]) == "bf16";
  ops::MatmulPrecisionScope scope(bf16 ? ops::MatmulPrecision::bf16 : ops::MatmulPrecision::exact);
  ops::QuantizedWeight q;
  q.bits = bits;
  q.group_size = 64;
  q.packed = Tensor::empty({n, k * bits / 32}, DType::u32);
  q.scales = Tensor::empty({n, k / 64}, DType::bf16);
  q.biases = Tensor::empty({n, k / 64}, DType::bf16);
  for (int64_t i = 0; i < q.packed.numel(); ++i) q.packed.data<uint32_t>()[i] = i * 2654435761u;
  for (int64_t i = 0; i < q.scales.numel(); ++i) {
    q.scales.data<BF16>()[i] = f32_to_bf16(0.01f);
    q.biases.data<BF16>()[i] = f32_to_bf16(-0.08f);
  }
  Tensor x = Tensor::zeros({1, k}, DType::f32), out = Tensor::empty({1, n}, DType::f32);
  Tensor wd = Tensor::zeros({n, k}, DType::bf16);
  for (int r = 0; r < 50; ++r) ops::quantized_matmul(x, q, out);
  double t0 = cpu_now();
  for (int r = 0; r < reps; ++r) ops::quantized_matmul(x, q, out);
  double t = (cpu_now() - t0) / reps;
  for (int r = 0; r < 50; ++r) ops::matmul(x, wd, out);
  t0 = cpu_now();
  for (int r = 0; r < reps; ++r) ops::matmul(x, wd, out);
  double td = (cpu_now() - t0) / reps;
  std::printf("bits %d %lldx%lld: %.1f us, %.2f Gcodes/s | bf16 dense %.1f us %.2f G/s\n", bits,
              (long long)n, (long long)k, t * 1e6, n * k / t / 1e9, td * 1e6, n * k / td / 1e9);
}
