#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth::io {

AtomicFileWriter::AtomicFileWriter(std::filesystem::path target) : target_(std::move(target)) {
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  temp_ = dir / ("." + target_.filename().string() + ".tmp." + std::to_string(::getpid()));
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) fail(ErrorCode::io, "cannot create {}: {}", temp_.string(), std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) std::fclose(file_);
  if (!committed_) {
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
  }
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  HEARTH_CHECK(file_ && !committed_);
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    fail(ErrorCode::io, "cannot write {}: {}", temp_.string(), std::strerror(errno));
}

void AtomicFileWriter::commit() {
  HEARTH_CHECK(file_ && !committed_);
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    fail(ErrorCode::io, "cannot flush {}: {}", temp_.string(), std::strerror(errno));
  std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(temp_, target_, ec);
  if (ec)
    fail(ErrorCode::io, "cannot rename {} to {}: {}", temp_.string(), target_.string(),
         ec.message());
  committed_ = true;
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFileWriter writer(path);
  writer.write(contents);
  writer.commit();
}

}  // namespace hearth::io
