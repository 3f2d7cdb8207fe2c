// A STREAM-style probe of host memory read bandwidth, measured beside a benchmark so that decode
// speed can be stated as a fraction of the machine's own limit.
#pragma once

#include <cstddef>

namespace hearth {

// Sums a buffer of `bytes` (default 1 GiB) with every thread of the pool, `repeats` times; returns
// the best rate in bytes per second.
double measure_read_bandwidth(size_t bytes = size_t(1) << 30, int repeats = 5);

}  // namespace hearth
