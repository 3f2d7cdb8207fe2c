// Rotating caches and snapshots. The reference is a direct transcription of mlx-lm's
// RotatingKVCache (lists of rows, concatenate/trim/temporal order as in cache.py) and of its masks
// (create_causal_mask / the rolled single-token mask), with attention computed in double from the
// buffer it returns. The hearth cache (paged, with block tables and slot arithmetic) must give the
// same exported state, counters and attention outputs at every step.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>

#include "kv/attention_plan.h"
#include "kv/kv_cache.h"
#include "ops/attention.h"
#include "ops/backend.h"
#include "ops/copy.h"

namespace hearth::kv {
namespace {

constexpr int kKvHeads = 2, kHeads = 4, kHeadDim = 8;
constexpr int64_t kRow = int64_t(kKvHeads) * kHeadDim;

using Row = std::vector<float>;  // one token's [n_kv_heads, head_dim]

// mlx-lm's RotatingKVCache over lists of rows (keys and values side by side).
struct MlxRotating {
  int64_t keep, max_size, offset = 0, idx = 0;
  bool has = false;
  std::vector<Row> k, v;

  std::vector<Row> trimmed(int64_t trim_size, const std::vector<Row>& x) const {
    if (trim_size <= 0) return x;
    std::vector<Row> out(x.begin(), x.begin() + keep);
    out.insert(out.end(), x.begin() + trim_size + keep, x.end());
    return out;
  }
  std::vector<Row> temporal(const std::vector<Row>& x) const {
    if (idx == int64_t(x.size())) return x;
    if (idx < offset) {
      std::vector<Row> out(x.begin(), x.begin() + keep);
      out.insert(out.end(), x.begin() + idx, x.end());
      out.insert(out.end(), x.begin() + keep, x.begin() + idx);
      return out;
    }
    return std::vector<Row>(x.begin(), x.begin() + idx);
  }
  // Returns the number of buffer rows update_and_fetch hands to attention.
  int64_t update(const std::vector<Row>& nk, const std::vector<Row>& nv) {
    const int64_t S = int64_t(nk.size());
    if (S > 1) {
      if (!has) {
        k = nk, v = nv, has = true;
      } else {
        k = temporal(k), v = temporal(v);
        idx = int64_t(k.size());
        int64_t trim_size = idx - max_size + 1;
        k = trimmed(trim_size, k), v = trimmed(trim_size, v);
        k.insert(k.end(), nk.begin(), nk.end());
        v.insert(v.end(), nv.begin(), nv.end());
      }
      offset += S;
      idx = int64_t(k.size());
      return int64_t(k.size());
    }
    const int64_t prev = offset;
    if (!has || (prev >= int64_t(k.size()) && int64_t(k.size()) < max_size)) {
      int64_t new_size = std::min<int64_t>(256, max_size - prev);
      k.resize(k.size() + size_t(new_size), Row(kRow, 0.0f));
      v.resize(v.size() + size_t(new_size), Row(kRow, 0.0f));
      has = true;
      idx = prev;
    }
    int64_t trim_size = int64_t(k.size()) - max_size;
    if (trim_size > 0) {
      k = trimmed(trim_size, k), v = trimmed(trim_size, v);
      idx = max_size;
    }
    if (idx == max_size) idx = keep;
    k[size_t(idx)] = nk[0];
    v[size_t(idx)] = nv[0];
    offset += 1;
    idx += 1;
    return offset < max_size ? offset : int64_t(k.size());
  }
  // make_mask(N, window_size) before the update: mask[i][j] over the rows update returns.
  std::vector<std::vector<bool>> mask(int64_t N, std::optional<int64_t> window,
                                      int64_t rows_after) const {
    std::vector<std::vector<bool>> m(size_t(N), std::vector<bool>(size_t(rows_after), true));
    if (N > 1) {
      const int64_t w = window ? *window : max_size;
      const int64_t off = std::min(max_size - 1, offset);
      EXPECT_EQ(off + N, rows_after);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < rows_after; ++j)
          m[size_t(i)][size_t(j)] = off + i >= j && off + i < j + w;
      return m;
    }
    if (!window) return m;
    if (offset >= *window && max_size > *window) {
      int64_t i0 = idx >= max_size ? 0 : idx;
      int64_t mask_size = offset < max_size ? offset + 1 : max_size;
      EXPECT_EQ(mask_size, rows_after);
      std::vector<bool> base(static_cast<size_t>(mask_size));
      for (int64_t j = 0; j < mask_size; ++j) base[size_t(j)] = j >= mask_size - *window;
      for (int64_t j = 0; j < mask_size; ++j)
        m[0][size_t((j + i0 + 1) % mask_size)] = base[size_t(j)];
    }
    return m;
  }
  void trim(int64_t n) {
    n = std::min(offset, n);
    offset -= n;
    idx -= n;
  }
  std::vector<Row> state_keys() const {
    if (offset < int64_t(k.size())) return std::vector<Row>(k.begin(), k.begin() + offset);
    return k;
  }
};

std::vector<Row> random_rows(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist;
  std::vector<Row> rows(static_cast<size_t>(n), Row(kRow));
  for (Row& r : rows)
    for (float& x : r) x = dist(rng);
  return rows;
}

Tensor rows_tensor(const std::vector<Row>& rows) {
  std::vector<float> flat;
  for (const Row& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return Tensor::from_vector(flat, {int64_t(rows.size()), kKvHeads, kHeadDim});
}

// The device of the pools the current test makes (the device-parameterized tests set it).
Device g_device = Device::cpu();

class KvOnDevice : public testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    try {
      ops::backend_for(GetParam());
    } catch (const Error& e) {
      GTEST_SKIP() << "no backend for " << GetParam().str() << ": " << e.what()
                   << "; run this case on a machine with hearth built for it";
    }
    g_device = GetParam();
  }
  void TearDown() override { g_device = Device::cpu(); }
};

KvLayout layout(int block_size) {
  KvLayout l;
  l.device = g_device;
  l.n_layers = 1;
  l.n_kv_heads = kKvHeads;
  l.head_dim = kHeadDim;
  l.block_size = block_size;
  return l;
}

// One forward step of a one-layer "model" through hearth: write the new K/V, attend with the
// decoder's metadata, return the outputs [N, kHeads, kHeadDim].
std::vector<float> hearth_step(KvCache& cache, const std::vector<Row>& nk,
                               const std::vector<Row>& nv, const Tensor& q, int model_window) {
  const int64_t N = int64_t(nk.size());
  const int64_t start = cache.size();
  const Device dev = cache.pool().layout().device;
  std::vector<int32_t> slots = cache.prepare_groups(N)[0];
  Tensor keys = cache.pool().keys(0), values = cache.pool().values(0);
  ops::write_kv(ops::to_device(rows_tensor(nk), dev), ops::to_device(rows_tensor(nv), dev),
                ops::to_device(Tensor::from_vector(slots, {N}), dev), keys, values);
  std::vector<int32_t> query_start{0, int32_t(N)}, positions;
  for (int64_t i = 0; i < N; ++i) positions.push_back(int32_t(start + i));
  KvCache* caches[] = {&cache};
  ops::AttentionMeta meta =
      make_attention_meta(caches, 0, model_window, query_start, positions,
                          ops::to_device(Tensor::from_vector(query_start, {2}), dev), dev);
  Tensor out = Tensor::empty({N, kHeads, kHeadDim}, DType::f32, dev);
  ops::paged_attention(ops::to_device(q, dev), keys, values, meta, 0.3f, out);
  cache.commit(N);
  return ops::to_device(out, Device::cpu()).to_vector<float>();
}

std::vector<double> mlx_attention(const std::vector<float>& q, const std::vector<Row>& k,
                                  const std::vector<Row>& v, int64_t rows,
                                  const std::vector<std::vector<bool>>& mask) {
  const int64_t N = int64_t(mask.size());
  std::vector<double> out(size_t(N * kHeads * kHeadDim), 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int h = 0; h < kHeads; ++h) {
      const int kvh = h / (kHeads / kKvHeads);
      std::vector<double> w(size_t(rows), 0.0);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < rows; ++j) {
        if (!mask[size_t(i)][size_t(j)]) continue;
        double dot = 0;
        for (int d = 0; d < kHeadDim; ++d)
          dot += double(q[size_t((i * kHeads + h) * kHeadDim + d)]) *
                 k[size_t(j)][size_t(kvh * kHeadDim + d)];
        w[size_t(j)] = 0.3 * dot;
        mx = std::max(mx, w[size_t(j)]);
      }
      for (int64_t j = 0; j < rows; ++j)
        if (mask[size_t(i)][size_t(j)]) z += (w[size_t(j)] = std::exp(w[size_t(j)] - mx));
      for (int64_t j = 0; j < rows; ++j) {
        if (!mask[size_t(i)][size_t(j)]) continue;
        for (int d = 0; d < kHeadDim; ++d)
          out[size_t((i * kHeads + h) * kHeadDim + d)] +=
              w[size_t(j)] / z * v[size_t(j)][size_t(kvh * kHeadDim + d)];
      }
    }
  return out;
}

void expect_state_equal(const KvCache& cache, const MlxRotating& ref) {
  LayerState s = cache.read_state(0);
  EXPECT_EQ(s.offset, ref.offset);
  EXPECT_EQ(s.idx, ref.idx);
  std::vector<Row> want = ref.state_keys();
  ASSERT_EQ(s.keys.dim(2), int64_t(want.size()));
  std::vector<float> got = s.keys.to_vector<float>();  // [1, kv, n, d]
  const int64_t n = int64_t(want.size());
  for (int64_t j = 0; j < n; ++j)
    for (int h = 0; h < kKvHeads; ++h)
      for (int d = 0; d < kHeadDim; ++d)
        ASSERT_EQ(got[size_t((h * n + j) * kHeadDim + d)],
                  want[size_t(j)][size_t(h * kHeadDim + d)])
            << "buffer slot " << j;
}

struct RotatingCase {
  int64_t max_size, keep;
  int model_window;  // 0: none (mlx-lm's window_size=None)
  int block_size;
};

// Chunk sizes; a negative entry trims that many tokens (when mlx-lm would allow it).
const std::vector<int64_t> kSchedule = {6, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1,  1,
                                        5, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10, 1,
                                        1, 1, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  1};

void run_against_mlx(const RotatingCase& c, std::vector<int64_t> schedule) {
  SCOPED_TRACE(testing::Message() << "max_size=" << c.max_size << " keep=" << c.keep
                                  << " window=" << c.model_window << " block=" << c.block_size);
  auto pool = std::make_shared<BlockPool>(layout(c.block_size), 200);
  KvCache cache(pool, {CachePolicy{c.max_size, c.keep}});
  MlxRotating ref{c.keep, c.max_size};
  std::mt19937 rng(uint32_t(c.max_size * 100 + c.keep * 10 + c.model_window));
  std::normal_distribution<float> dist;
  for (size_t step = 0; step < schedule.size(); ++step) {
    SCOPED_TRACE(testing::Message() << "step " << step << " offset " << ref.offset);
    const int64_t n = schedule[step];
    if (n < 0) {
      ASSERT_EQ(cache.is_trimmable(), ref.offset < ref.max_size);
      if (!cache.is_trimmable()) continue;
      EXPECT_EQ(cache.trim(-n), std::min(-n, ref.offset));
      ref.trim(-n);
      expect_state_equal(cache, ref);
      continue;
    }
    std::vector<Row> nk = random_rows(n, rng), nv = random_rows(n, rng);
    std::vector<float> q(size_t(n * kHeads * kHeadDim));
    for (float& x : q) x = dist(rng);
    std::optional<int64_t> window;
    if (c.model_window > 0) window = c.model_window;
    MlxRotating before = ref;
    const int64_t rows = ref.update(nk, nv);
    std::vector<std::vector<bool>> mask = before.mask(n, window, rows);
    std::vector<double> want = mlx_attention(q, ref.k, ref.v, rows, mask);
    std::vector<float> got =
        hearth_step(cache, nk, nv, Tensor::from_vector(q, {n, kHeads, kHeadDim}), c.model_window);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << "output " << i;
    expect_state_equal(cache, ref);
    EXPECT_EQ(cache.layer(0).size(), std::min(ref.offset, ref.max_size));
    EXPECT_EQ(cache.is_trimmable(), ref.offset < ref.max_size);
  }
}

TEST_P(KvOnDevice, RotatingCacheMatchesMlxLmWithSinks) {
  for (int bs : {4, 5}) {
    run_against_mlx({8, 4, 0, bs}, kSchedule);
    run_against_mlx({9, 2, 0, bs}, kSchedule);
    run_against_mlx({8, 4, 8, bs}, kSchedule);
  }
}

TEST_P(KvOnDevice, RotatingCacheMatchesMlxLmWithoutSinks) {
  for (int bs : {3, 4, 32}) {
    run_against_mlx({7, 0, 0, bs}, kSchedule);
    run_against_mlx({7, 0, 7, bs}, kSchedule);
  }
}

TEST_P(KvOnDevice, RotatingCacheWindowSmallerThanTheRingUsesPositions) {
  // mlx-lm's rolled single-token mask: a model window of 4 over a ring of 10.
  for (int bs : {4, 6}) run_against_mlx({10, 0, 4, bs}, kSchedule);
}

TEST_P(KvOnDevice, RotatingCachePromptLongerThanTheRingInOneChunkThenTrims) {
  // A first chunk longer than max_size keeps all its rows (mlx-lm keeps the whole update); trims
  // while the cache is still short follow mlx-lm's counters.
  run_against_mlx({6, 4, 0, 4}, {20, 1, 1, 1, 1, 1, 1, 1, 7, 1, 1});
  run_against_mlx({16, 4, 0, 4}, {5, -2, 1, 1, -3, 4, 1, 1, 1, -1, 6, 1, 1, 1, 1, 1, 1, 1, -2, 1});
  run_against_mlx({12, 0, 0, 4}, {1, 1, 1, -2, 1, 3, -4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
}

TEST(RotatingCache, SizeNbytesAndTrimmable) {
  auto pool = std::make_shared<BlockPool>(layout(4), 50);
  KvCache cache(pool, {CachePolicy{6, 2}});
  std::mt19937 rng(5);
  auto step = [&](int64_t n) {
    std::vector<Row> k = random_rows(n, rng), v = random_rows(n, rng);
    std::vector<float> q(size_t(n * kHeads * kHeadDim), 0.5f);
    hearth_step(cache, k, v, Tensor::from_vector(q, {n, kHeads, kHeadDim}), 0);
  };
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(cache.nbytes(), 0u);
  step(3);
  EXPECT_EQ(cache.layer(0).size(), 3);
  EXPECT_EQ(cache.nbytes(), 1 * layout(4).block_bytes());  // 3 slots: one block of 4
  EXPECT_TRUE(cache.is_trimmable());
  for (int i = 0; i < 3; ++i) step(1);
  EXPECT_EQ(cache.size(), 6);  // offset
  EXPECT_EQ(cache.layer(0).size(), 6);
  EXPECT_FALSE(cache.is_trimmable());  // offset == max_size
  for (int i = 0; i < 5; ++i) step(1);
  EXPECT_EQ(cache.size(), 11);
  EXPECT_EQ(cache.layer(0).size(), 6);
  EXPECT_EQ(cache.layer(0).buffer_length(), 6);
  EXPECT_EQ(cache.nbytes(), 2 * layout(4).block_bytes());
  step(4);  // a chunk: 5 kept rows + 4 new
  EXPECT_EQ(cache.layer(0).buffer_length(), 9);
  EXPECT_EQ(cache.layer(0).state_length(), 9);
  EXPECT_EQ(cache.nbytes(), 3 * layout(4).block_bytes());
  EXPECT_EQ(pool->blocks_in_use(), 3);  // the previous buffer's blocks went back to the pool
}

TEST(StandardCache, TrimSizeAndNbytes) {
  auto pool = std::make_shared<BlockPool>(layout(4), 50);
  KvCache cache(pool);
  std::mt19937 rng(6);
  std::vector<Row> k = random_rows(10, rng);
  hearth_step(
      cache, k, k,
      Tensor::from_vector(std::vector<float>(10 * kHeads * kHeadDim, 1.0f), {10, kHeads, kHeadDim}),
      0);
  EXPECT_EQ(cache.size(), 10);
  EXPECT_EQ(cache.nbytes(), 3 * layout(4).block_bytes());
  EXPECT_TRUE(cache.is_trimmable());
  EXPECT_EQ(cache.trim(3), 3);
  EXPECT_EQ(cache.size(), 7);
  EXPECT_EQ(cache.nbytes(), 2 * layout(4).block_bytes());
  EXPECT_EQ(cache.trim(100), 7);
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(pool->blocks_in_use(), 0);
}

// ---- snapshots ----------------------------------------------------------------------------------

std::vector<float> state_bits(const KvCache& cache) {
  LayerState s = cache.read_state(0);
  std::vector<float> all = s.keys.to_vector<float>(), v = s.values.to_vector<float>();
  all.insert(all.end(), v.begin(), v.end());
  all.push_back(float(s.offset));
  all.push_back(float(s.idx));
  return all;
}

void run_snapshot(CachePolicy policy, int64_t prefix_steps) {
  SCOPED_TRACE(testing::Message() << "max_size=" << policy.max_size << " keep=" << policy.keep);
  auto pool = std::make_shared<BlockPool>(layout(4), 100);
  std::mt19937 rng(11);
  std::optional<KvSnapshot> snap;
  std::vector<float> at_snap;
  std::vector<float> q(size_t(kHeads * kHeadDim), 0.7f);
  Tensor q1 = Tensor::from_vector(q, {1, kHeads, kHeadDim});
  std::vector<std::vector<float>> outs_after;
  {
    KvCache cache(pool, {policy});
    std::vector<Row> k = random_rows(9, rng);
    hearth_step(
        cache, k, k,
        Tensor::from_vector(std::vector<float>(9 * kHeads * kHeadDim, 0.1f), {9, kHeads, kHeadDim}),
        0);
    for (int64_t i = 0; i < prefix_steps; ++i) {
      std::vector<Row> r = random_rows(1, rng);
      hearth_step(cache, r, r, q1, 0);
    }
    snap = cache.snapshot();
    at_snap = state_bits(cache);
    const int64_t blocks_at_snap = pool->blocks_in_use();
    // Continue three ways from the snapshot: each continuation sees exactly the snapshot's state.
    std::vector<Row> cont = random_rows(12, rng);
    for (int round = 0; round < 3; ++round) {
      std::vector<std::vector<float>> outs;
      for (int i = 0; i < 12; ++i) {
        std::vector<Row> r{cont[size_t(i)]};
        if (i == 5) {  // a chunk in the middle re-linearizes a rotating buffer
          std::vector<Row> two{cont[5], cont[6]};
          outs.push_back(
              hearth_step(cache, two, two,
                          Tensor::from_vector(std::vector<float>(2 * kHeads * kHeadDim, 0.3f),
                                              {2, kHeads, kHeadDim}),
                          0));
          ++i;
          continue;
        }
        outs.push_back(hearth_step(cache, r, r, q1, 0));
      }
      if (round == 0) {
        outs_after = outs;
      } else {
        ASSERT_EQ(outs.size(), outs_after.size());
        for (size_t i = 0; i < outs.size(); ++i)
          ASSERT_EQ(outs[i], outs_after[i]) << "round " << round << " step " << i;  // bit-exact
      }
      EXPECT_NE(state_bits(cache), at_snap);
      cache.restore(*snap);
      EXPECT_EQ(state_bits(cache), at_snap) << "round " << round;
      EXPECT_EQ(pool->blocks_in_use(), blocks_at_snap);  // copies made while writing were freed
    }
  }
  // The snapshot outlives its cache: a new cache of the same pool and policy restores it.
  EXPECT_GT(pool->blocks_in_use(), 0);
  KvCache again(pool, {policy});
  again.restore(*snap);
  EXPECT_EQ(state_bits(again), at_snap);
  std::vector<Row> r = random_rows(1, rng);
  hearth_step(again, r, r, q1, 0);
  snap.reset();
  again.clear();
  EXPECT_EQ(pool->blocks_in_use(), 0);
}

TEST_P(KvOnDevice, SnapshotStandardCacheRestoresBitExactly) {
  run_snapshot(CachePolicy{}, 2);
}

TEST_P(KvOnDevice, SnapshotWrappedRotatingCacheRestoresBitExactly) {
  run_snapshot(CachePolicy{8, 4}, 10);  // wrapped: offset 19 > 8
  run_snapshot(CachePolicy{7, 0}, 3);   // the buffer is still long after the first chunk
}

TEST_P(KvOnDevice, StateWriteStateOfAnExportedStateContinuesIdentically) {
  // mlx-lm state round trip: a wrapped ring, a ring just after a chunk (longer than max_size), a
  // standard cache. The loaded cache continues exactly like the original.
  for (auto [policy, steps] :
       {std::pair<CachePolicy, std::vector<int64_t>>{{8, 4}, {6, 1, 1, 1, 1, 1, 1, 1}},
        {{8, 4}, {6, 1, 1, 1, 1, 5}},
        {{}, {6, 1, 3}}}) {
    SCOPED_TRACE(testing::Message() << "max_size " << policy.max_size);
    auto pool = std::make_shared<BlockPool>(layout(4), 100);
    KvCache a(pool, {policy}), b(pool, {policy});
    std::mt19937 rng(3);
    for (int64_t n : steps) {
      std::vector<Row> r = random_rows(n, rng);
      hearth_step(a, r, r,
                  Tensor::from_vector(std::vector<float>(size_t(n * kHeads * kHeadDim), 0.2f),
                                      {n, kHeads, kHeadDim}),
                  0);
    }
    b.write_state({a.read_state(0)});
    EXPECT_EQ(state_bits(b), state_bits(a));
    for (int64_t n : {1, 1, 3, 1}) {
      std::vector<Row> r = random_rows(n, rng);
      Tensor q = Tensor::from_vector(std::vector<float>(size_t(n * kHeads * kHeadDim), 0.4f),
                                     {n, kHeads, kHeadDim});
      EXPECT_EQ(hearth_step(a, r, r, q, 0), hearth_step(b, r, r, q, 0));
      EXPECT_EQ(state_bits(b), state_bits(a));
    }
  }
}

TEST(State, InconsistentStateIsAFormatError) {
  auto pool = std::make_shared<BlockPool>(layout(4), 10);
  KvCache rotating(pool, {CachePolicy{8, 4}}), standard(pool);
  LayerState s;
  s.keys = Tensor::zeros({1, kKvHeads, 5, kHeadDim}, DType::f32);
  s.values = Tensor::zeros({1, kKvHeads, 5, kHeadDim}, DType::f32);
  s.offset = 4;  // fewer tokens than slots
  s.idx = 4;
  for (KvCache* c : {&rotating, &standard}) {
    try {
      c->write_state({s});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::format);
    }
  }
  s.values = Tensor::zeros({1, kKvHeads, 5, kHeadDim + 1}, DType::f32);
  s.offset = 5;
  EXPECT_THROW(standard.write_state({s}), Error);
}

TEST(Snapshot, RestoreFromAnotherPoolIsAnError) {
  auto a = std::make_shared<BlockPool>(layout(4), 10),
       b = std::make_shared<BlockPool>(layout(4), 10);
  KvCache ca(a), cb(b);
  KvSnapshot s = ca.snapshot();
  EXPECT_THROW(cb.restore(s), Error);
  KvCache rotating(a, {CachePolicy{8, 4}});
  EXPECT_THROW(rotating.restore(s), Error);
}

INSTANTIATE_TEST_SUITE_P(Devices, KvOnDevice, testing::Values(Device::cpu(), Device::cuda(0)),
                         [](const testing::TestParamInfo<Device>& info) {
                           return info.param.is_cpu() ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace hearth::kv
