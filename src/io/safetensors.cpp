#include "io/safetensors.h"

#include <sys/mman.h>
#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"

namespace hearth::io {
namespace {

// Headers above this are refused (the reference implementation uses the same 100 MB cap).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

size_t dtype_bytes_or_zero(const std::string& dtype) {
  if (auto d = dtype_from_safetensors(dtype)) return dtype_size(*d);
  static const std::map<std::string, size_t> others = {
      {"F64", 8},  {"I8", 1},      {"I16", 2},     {"U16", 2},    {"U64", 8},
      {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}};
  auto it = others.find(dtype);
  return it == others.end() ? 0 : it->second;
}

// A private copy aligned to 2 MiB and advised for transparent huge pages, filled in parallel.
std::shared_ptr<Storage> copy_to_huge_pages(const void* src, size_t bytes) {
  constexpr size_t kHugePage = size_t(2) << 20;
  size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (!p) fail(ErrorCode::out_of_memory, "cannot allocate {} bytes for model weights", bytes);
  ::madvise(p, rounded, MADV_HUGEPAGE);
  const int64_t chunk = int64_t(kHugePage);
  parallel_for((int64_t(bytes) + chunk - 1) / chunk, 1, [&](int64_t b, int64_t e) {
    size_t begin = size_t(b * chunk), end = std::min(bytes, size_t(e * chunk));
    std::memcpy(static_cast<char*>(p) + begin, static_cast<const char*>(src) + begin, end - begin);
  });
  return Storage::borrow(p, bytes, Device::cpu(), std::shared_ptr<void>(p, std::free), bytes);
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path,
                                                       WeightResidency residency) {
  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->file_ = MappedFile::open(path);
  const std::string where = path.string();
  size_t size = st->file_->size();
  if (size < 8) fail(ErrorCode::format, "{}: not a safetensors file (only {} bytes)", where, size);
  uint64_t header_len = read_u64_le(st->file_->data());
  if (header_len > kMaxHeaderBytes || header_len > size - 8)
    fail(ErrorCode::format,
         "{}: header length {} does not fit a file of {} bytes (truncated or "
         "not safetensors)",
         where, header_len, size);
  st->data_start_ = 8 + size_t(header_len);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(st->file_->data() + 8, st->file_->data() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::format, "{}: header is not valid JSON ({})", where, e.what());
  }
  if (!header.is_object()) fail(ErrorCode::format, "{}: header is not a JSON object", where);
  size_t data_size = size - st->data_start_;
  for (auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(ErrorCode::format, "{}: __metadata__ is not an object", where);
      for (auto& [k, v] : value.items()) {
        if (!v.is_string())
          fail(ErrorCode::format, "{}: metadata value of '{}' is not a string", where, k);
        st->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets"))
      fail(ErrorCode::format, "{}: tensor '{}' lacks dtype, shape or data_offsets", where, name);
    Entry e;
    const auto& dtype = value["dtype"];
    const auto& shape = value["shape"];
    const auto& offsets = value["data_offsets"];
    if (!dtype.is_string() || !shape.is_array() || !offsets.is_array() || offsets.size() != 2 ||
        !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      fail(ErrorCode::format, "{}: tensor '{}' has a malformed header entry", where, name);
    e.dtype = dtype.get<std::string>();
    if (shape.size() > size_t(Dims::kMaxDims))
      fail(ErrorCode::format, "{}: tensor '{}' has {} dimensions", where, name, shape.size());
    for (const auto& d : shape) {
      if (!d.is_number_unsigned())
        fail(ErrorCode::format, "{}: tensor '{}' has a bad shape {}", where, name, shape.dump());
      e.shape.push_back(d.get<int64_t>());
    }
    e.begin = offsets[0].get<size_t>();
    e.end = offsets[1].get<size_t>();
    size_t elem = dtype_bytes_or_zero(e.dtype);
    if (elem == 0)
      fail(ErrorCode::format, "{}: tensor '{}' has unknown dtype '{}'", where, name, e.dtype);
    if (e.end < e.begin || e.end > data_size)
      fail(ErrorCode::format,
           "{}: tensor '{}' spans bytes [{}, {}) but the data section has {} "
           "bytes (truncated file?)",
           where, name, e.begin, e.end, data_size);
    if (e.end - e.begin != size_t(e.shape.numel()) * elem)
      fail(ErrorCode::format, "{}: tensor '{}' ({} {}) needs {} bytes but spans {}", where, name,
           e.dtype, e.shape.str(), size_t(e.shape.numel()) * elem, e.end - e.begin);
    st->entries_[name] = e;
  }
  // Count the weights as resident memory: they are read in full by the forward pass.
  std::shared_ptr<MappedFile> owner = st->file_;
  void* base = const_cast<unsigned char*>(st->file_->data()) + st->data_start_;
  if (residency == WeightResidency::copied && data_size > 0) {
    st->storage_ = copy_to_huge_pages(base, data_size);
  } else {
    st->storage_ = Storage::borrow(base, data_size, Device::cpu(), owner, data_size);
  }
  return st;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::pair<size_t, std::string>> order;
  for (const auto& [name, e] : entries_) order.emplace_back(e.begin, name);
  std::sort(order.begin(), order.end());
  std::vector<std::string> out;
  for (auto& [_, name] : order) out.push_back(name);
  return out;
}

std::string SafetensorsFile::dtype_string(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(ErrorCode::not_found, "{}: no tensor '{}'", path().string(), name);
  return it->second.dtype;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(ErrorCode::not_found, "{}: no tensor '{}'", path().string(), name);
  const Entry& e = it->second;
  auto dtype = dtype_from_safetensors(e.dtype);
  if (!dtype)
    fail(ErrorCode::unsupported, "{}: tensor '{}' has dtype {}, which hearth does not support",
         path().string(), name, e.dtype);
  return Tensor::view_of(storage_, e.begin, e.shape, *dtype);
}

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    HEARTH_CHECK(t.device().is_cpu(), "save_safetensors: tensor '{}' is not on the host", name);
    if (header.contains(name))
      fail(ErrorCode::invalid_argument, "save_safetensors: tensor '{}' given twice", name);
    size_t bytes = t.nbytes();
    header[name] = {{"dtype", std::string(dtype_safetensors_name(t.dtype()))},
                    {"shape", t.shape().to_vector()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint64_t(text.size()) >> (8 * i)) & 0xff;
  AtomicFileWriter writer(path);
  writer.write(len, 8);
  writer.write(text);
  for (const auto& [name, t] : tensors) {
    if (t.is_contiguous()) {
      writer.write(t.raw_data(), t.nbytes());
      continue;
    }
    // Gather a strided view row by row of elements.
    std::vector<unsigned char> buf(t.nbytes());
    size_t es = t.element_size();
    std::vector<int64_t> index(t.ndim(), 0);
    const unsigned char* base = static_cast<const unsigned char*>(t.raw_data());
    for (int64_t n = 0; n < t.numel(); ++n) {
      int64_t off = 0;
      for (int d = 0; d < t.ndim(); ++d) off += index[d] * t.stride(d);
      std::memcpy(&buf[n * es], base + off * es, es);
      for (int d = t.ndim() - 1; d >= 0; --d) {
        if (++index[d] < t.dim(d)) break;
        index[d] = 0;
      }
    }
    writer.write(buf.data(), buf.size());
  }
  writer.commit();
}

}  // namespace hearth::io
