// All tensors of a model folder by name: model.safetensors, the shards listed by
// model.safetensors.index.json, or every model*.safetensors file (as mlx-lm globs them).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace hearth::io {

class WeightSet {
 public:
  // Errors: no weight files, an index naming a missing shard or a tensor its shard lacks, any
  // malformed file.
  static WeightSet load_dir(const std::filesystem::path& dir,
                            WeightResidency residency = WeightResidency::mapped);
  // The bytes of the weight files load_dir would read (to decide on a residency).
  static size_t weight_file_bytes(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // not_found error naming the tensor and the folder.
  Tensor get(const std::string& name) const;
  std::optional<Tensor> find(const std::string& name) const;
  std::vector<std::string> names() const;
  size_t size() const { return tensors_.size(); }

  // Editing, for architecture sanitize steps.
  void insert(const std::string& name, Tensor tensor) { tensors_[name] = std::move(tensor); }
  void erase(const std::string& name) { tensors_.erase(name); }
  void rename(const std::string& from, const std::string& to);
  // Metadata of the first file ({"format": "mlx"}, ...).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::filesystem::path dir_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
};

}  // namespace hearth::io
