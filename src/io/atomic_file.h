// Atomic file writes: data goes to a temporary file in the same folder, is flushed to disk, then
// renamed over the target, so a reader never sees a half-written file.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace hearth::io {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path target);
  ~AtomicFileWriter();  // not committed: the temporary file is removed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Flushes, fsyncs and renames into place (and fsyncs the folder).
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace hearth::io
