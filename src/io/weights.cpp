#include "io/weights.h"

#include <algorithm>

#include "io/json_file.h"

namespace hearth::io {

namespace fs = std::filesystem;

namespace {

// The weight files of a folder and, with an index, which file each tensor must come from.
struct WeightFiles {
  std::vector<fs::path> files;
  std::map<std::string, std::string> expected;  // tensor -> shard file name, from the index
  fs::path index_path;                          // empty without an index
};

WeightFiles find_weight_files(const fs::path& dir) {
  WeightFiles found;
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    found.index_path = index_path;
    nlohmann::json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(ErrorCode::format, "{}: missing or malformed 'weight_map'", index_path.string());
    std::vector<std::string> shard_names;
    for (auto& [tensor, file] : index["weight_map"].items()) {
      if (!file.is_string())
        fail(ErrorCode::format, "{}: weight_map entry '{}' is not a file name", index_path.string(),
             tensor);
      found.expected[tensor] = file.get<std::string>();
      shard_names.push_back(file.get<std::string>());
    }
    std::sort(shard_names.begin(), shard_names.end());
    shard_names.erase(std::unique(shard_names.begin(), shard_names.end()), shard_names.end());
    for (const auto& name : shard_names) {
      if (name.find('/') != std::string::npos || name == "..")
        fail(ErrorCode::format, "{}: shard name '{}' is not a plain file name", index_path.string(),
             name);
      fs::path p = dir / name;
      if (!fs::exists(p))
        fail(ErrorCode::not_found, "{}: shard {} is listed but missing", index_path.string(),
             p.string());
      found.files.push_back(p);
    }
  } else {
    if (!fs::is_directory(dir))
      fail(ErrorCode::not_found, "model folder {} does not exist", dir.string());
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::string name = entry.path().filename().string();
      if (name.rfind("model", 0) == 0 && entry.path().extension() == ".safetensors")
        found.files.push_back(entry.path());
    }
    std::sort(found.files.begin(), found.files.end());
    if (found.files.empty())
      fail(ErrorCode::not_found, "{}: no model*.safetensors weight files", dir.string());
  }
  return found;
}

}  // namespace

size_t WeightSet::weight_file_bytes(const fs::path& dir) {
  size_t total = 0;
  for (const auto& f : find_weight_files(dir).files) total += fs::file_size(f);
  return total;
}

WeightSet WeightSet::load_dir(const fs::path& dir, WeightResidency residency) {
  WeightSet ws;
  ws.dir_ = dir;
  WeightFiles found = find_weight_files(dir);
  const std::vector<fs::path>& files = found.files;
  const std::map<std::string, std::string>& expected = found.expected;
  const fs::path& index_path = found.index_path;
  for (const auto& path : files) {
    auto file = SafetensorsFile::open(path, residency);
    if (ws.files_.empty()) ws.metadata_ = file->metadata();
    for (const auto& name : file->names()) {
      if (!expected.empty()) {
        auto it = expected.find(name);
        // Tensors the index does not list are ignored, as transformers does.
        if (it == expected.end() || it->second != path.filename().string()) continue;
      }
      if (ws.tensors_.count(name))
        fail(ErrorCode::format, "tensor '{}' appears in two weight files of {}", name,
             dir.string());
      ws.tensors_[name] = file->tensor(name);
    }
    ws.files_.push_back(std::move(file));
  }
  for (const auto& [name, file] : expected)
    if (!ws.tensors_.count(name))
      fail(ErrorCode::format, "{}: tensor '{}' is listed for {} but that file lacks it",
           index_path.string(), name, file);
  return ws;
}

Tensor WeightSet::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    fail(ErrorCode::not_found, "{}: weight '{}' is missing", dir_.string(), name);
  return it->second;
}

std::optional<Tensor> WeightSet::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> WeightSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : tensors_) out.push_back(name);
  return out;
}

void WeightSet::rename(const std::string& from, const std::string& to) {
  auto node = tensors_.extract(from);
  if (node.empty()) return;
  node.key() = to;
  tensors_.insert(std::move(node));
}

}  // namespace hearth::io
