// Byte accounting per device kind: what `generate --verbose` and `benchmark` report as peak memory.
#pragma once

#include <cstddef>

#include "core/device.h"

namespace hearth::memory {

void note_allocated(DeviceKind kind, size_t bytes);
void note_freed(DeviceKind kind, size_t bytes);
size_t current_bytes(DeviceKind kind);
size_t peak_bytes(DeviceKind kind);
void reset_peak(DeviceKind kind);

}  // namespace hearth::memory
