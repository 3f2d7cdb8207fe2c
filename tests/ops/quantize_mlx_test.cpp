// affine_quantize / affine_dequantize against an independent numpy implementation of MLX's
// algorithm (mlx_affine_quantize.py, run with Debian's python3-numpy on inputs written here):
// packed codes, scales, biases and dequantized values must be bit-identical, for every bits x
// group size x scale dtype, both MLX variants, random and awkward groups. The scalar reference is
// held to the same files.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../common/test_python.h"
#include "op_test_util.h"
#include "ops/quantized.h"
#include "ops/reference/reference.h"
#include "quantized_test_util.h"

namespace hearth::ops::testing {
namespace {

namespace fs = std::filesystem;

class QuantizeMlxTest : public OpTest {};

struct Case {
  std::string name;
  Tensor w;  // host
  int bits, group_size;
  DType scale_dtype;
  MlxQuantizer variant;
};

std::string bytes_of_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::string bytes_of(const Tensor& t) {
  return {static_cast<const char*>(t.raw_data()), t.nbytes()};
}

// Index of the first element (of `elem` bytes) where a and b differ, treating any two NaNs of a
// float dtype as equal; -1 when identical.
int64_t first_difference(const std::string& a, const std::string& b, DType dtype) {
  if (a.size() != b.size()) return 0;
  const size_t elem = dtype_size(dtype);
  for (size_t i = 0; i < a.size(); i += elem) {
    if (std::memcmp(a.data() + i, b.data() + i, elem) == 0) continue;
    if (is_floating(dtype) && std::isnan(load_as_f32(a.data() + i, dtype)) &&
        std::isnan(load_as_f32(b.data() + i, dtype)))
      continue;
    return int64_t(i / elem);
  }
  return -1;
}

const char* short_name(DType d) {
  return d == DType::f32 ? "f32" : d == DType::f16 ? "f16" : "bf16";
}

// Writes every case's input, runs the numpy implementation once, returns the folder.
fs::path run_numpy(const std::vector<Case>& cases) {
  char tmpl[] = "/tmp/hearth_mlx_quant_XXXXXX";
  const char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  fs::path folder(dir);
  std::ofstream list(folder / "cases.txt");
  for (const Case& c : cases) {
    std::ofstream(folder / (c.name + ".w"), std::ios::binary) << bytes_of(c.w);
    list << fmt::format("{} {} {} {} {} {} {} {}\n", c.name, c.w.dim(0), c.w.dim(1),
                        short_name(c.w.dtype()), c.bits, c.group_size, short_name(c.scale_dtype),
                        c.variant == MlxQuantizer::gpu ? "gpu" : "cpu");
  }
  list.close();
  const std::string script = std::string(HEARTH_SOURCE_DIR) + "/tests/ops/mlx_affine_quantize.py";
  const std::string cmd =
      hearth::test_env::test_python() + " '" + script + "' '" + folder.string() + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return folder;
}

QuantizedWeight to_host_weight(const OpTest& t, const QuantizedWeight& q) {
  QuantizedWeight h = q;
  h.packed = t.to_host(q.packed);
  h.scales = t.to_host(q.scales);
  h.biases = t.to_host(q.biases);
  return h;
}

// Compares q (host) and its dequantizations with numpy's files for case c.
void expect_matches_numpy(const OpTest& t, const fs::path& folder, const Case& c,
                          const QuantizedWeight& q, const char* who) {
  SCOPED_TRACE(fmt::format("{}: {}", who, c.name));
  const fs::path base = folder / c.name;
  struct Part {
    const char* what;
    std::string ours, theirs;
    DType dtype;
  };
  // Dequantize on the device under test, to the scales' dtype (mx.dequantize) and to f32.
  Tensor host_deq = Tensor::empty({q.rows(), q.cols()}, c.scale_dtype);
  Tensor host_deq32 = Tensor::empty({q.rows(), q.cols()}, DType::f32);
  poison(host_deq);
  poison(host_deq32);
  Tensor deq = t.to_dev(host_deq);
  Tensor deq32 = t.to_dev(host_deq32);
  QuantizedWeight qd = q;
  qd.packed = t.to_dev(q.packed);
  qd.scales = t.to_dev(q.scales);
  qd.biases = t.to_dev(q.biases);
  affine_dequantize(qd, deq);
  affine_dequantize(qd, deq32);
  const Part parts[] = {
      {"packed", bytes_of(q.packed), bytes_of_file(base.string() + ".packed"), DType::u8},
      {"scales", bytes_of(q.scales), bytes_of_file(base.string() + ".scales"), c.scale_dtype},
      {"biases", bytes_of(q.biases), bytes_of_file(base.string() + ".biases"), c.scale_dtype},
      {"dequantized", bytes_of(t.to_host(deq)), bytes_of_file(base.string() + ".deq"),
       c.scale_dtype},
      {"dequantized f32", bytes_of(t.to_host(deq32)), bytes_of_file(base.string() + ".deq32"),
       DType::f32}};
  for (const Part& p : parts) {
    ASSERT_EQ(p.ours.size(), p.theirs.size()) << p.what;
    const int64_t at = first_difference(p.ours, p.theirs, p.dtype);
    EXPECT_EQ(at, -1) << p.what << " differ from numpy first at element " << at;
  }
}

std::vector<Case> all_cases(uint64_t seed, int64_t rows, int groups_per_row) {
  Rng rng(seed);
  std::vector<Case> cases;
  int offset = 0;
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes)
      for (DType sd : {DType::f32, DType::f16, DType::bf16})
        for (MlxQuantizer v : {MlxQuantizer::cpu, MlxQuantizer::gpu}) {
          // The weights mostly share the scales' dtype, as in MLX; every third case crosses.
          const DType wd = offset % 3 == 2 ? DType((int(sd) + 1) % 3) : sd;
          Case c{fmt::format("b{}_g{}_{}_{}_{}", bits, gs, short_name(sd),
                             v == MlxQuantizer::gpu ? "gpu" : "cpu", short_name(wd)),
                 awkward_matrix(rows, int64_t(gs) * groups_per_row, gs, bits, wd, rng, offset),
                 bits,
                 gs,
                 sd,
                 v};
          cases.push_back(std::move(c));
          ++offset;
        }
  return cases;
}

TEST_P(QuantizeMlxTest, AwkwardGroupsBitIdenticalToNumpy) {
  // 13 rows x 3 groups: each case sees every group kind at least twice, in different columns.
  const std::vector<Case> cases = all_cases(7, 13, 3);
  const fs::path folder = run_numpy(cases);
  for (const Case& c : cases) {
    QuantizedWeight q =
        affine_quantize(to_dev(c.w), c.bits, c.group_size, c.scale_dtype, c.variant);
    expect_matches_numpy(*this, folder, c, to_host_weight(*this, q), "kernel");
    if (device().is_cpu()) {
      QuantizedWeight r =
          reference::affine_quantize(c.w, c.bits, c.group_size, c.scale_dtype, c.variant);
      expect_matches_numpy(*this, folder, c, r, "reference");
    }
  }
  fs::remove_all(folder);
}

TEST_P(QuantizeMlxTest, RandomMatricesBitIdenticalToNumpy) {
  // Plain random weights at a realistic spread, more rows (several rows per thread).
  Rng rng(11);
  std::vector<Case> cases;
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes)
      for (MlxQuantizer v : {MlxQuantizer::cpu, MlxQuantizer::gpu}) {
        const DType d = DType(rng.integer(0, 2));
        cases.push_back(
            {fmt::format("r{}_g{}_{}", bits, gs, v == MlxQuantizer::gpu ? "gpu" : "cpu"),
             random_float({67, gs * 5}, d, rng, 0.05f), bits, gs, d, v});
      }
  const fs::path folder = run_numpy(cases);
  for (const Case& c : cases) {
    QuantizedWeight q =
        affine_quantize(to_dev(c.w), c.bits, c.group_size, c.scale_dtype, c.variant);
    expect_matches_numpy(*this, folder, c, to_host_weight(*this, q), "kernel");
  }
  fs::remove_all(folder);
}

HEARTH_OP_TEST_ON_ALL_DEVICES(QuantizeMlxTest);

}  // namespace
}  // namespace hearth::ops::testing
