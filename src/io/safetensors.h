// safetensors files: mmapped, validated reading with zero-copy tensor views, and atomic writing.
// Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {str: str}}, then the raw little-endian tensor bytes.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace hearth::io {

// Where tensor bytes live once a file is open: views into the file mapping (zero-copy, shared with
// the page cache), or a private copy in memory backed by 2 MiB pages. Decode on the CPU streams
// every weight each token; with 4 KiB page-cache pages the page walks cost 8-10% of decode speed
// (1B bf16 on the 2-core Zen 4 dev VM, three interleaved rounds: 10.5-12.2 mapped vs 11.6-13.3
// tok/s copied).
enum class WeightResidency { mapped, copied };

class SafetensorsFile {
 public:
  // Maps and validates the header (JSON, dtypes, shapes against byte ranges, ranges inside the
  // file). Errors are `format` errors naming the file and the tensor.
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path,
                                               WeightResidency residency = WeightResidency::mapped);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;  // in file order of data offsets
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  // A CPU tensor viewing the mapped bytes. A dtype hearth does not know (F8_E4M3, F64, ...) is an
  // `unsupported` error naming the tensor.
  Tensor tensor(const std::string& name) const;
  std::string dtype_string(const std::string& name) const;
  size_t data_bytes() const { return file_->size() - data_start_; }

 private:
  struct Entry {
    std::string dtype;  // as written in the header
    Dims shape;
    size_t begin = 0, end = 0;
  };
  std::shared_ptr<MappedFile> file_;
  std::shared_ptr<Storage> storage_;  // the data section, shared by every tensor of the file
  size_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (host tensors, any strides) in the given order with optional string metadata,
// atomically. Byte offsets are aligned to 8 like the reference writer does.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace hearth::io
