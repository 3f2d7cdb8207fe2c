// A read-only memory mapping of a whole file; tensors view it without copying.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

namespace hearth::io {

class MappedFile {
 public:
  // Throws not_found / io errors naming the path.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const unsigned char* data() const { return static_cast<const unsigned char*>(data_); }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hearth::io
