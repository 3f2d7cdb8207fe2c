// Helpers shared by the quant tests: scratch folders and running the numpy reference scripts.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace hearth::quant::test {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("hearth-quant-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline fs::path fixture(const std::string& name) {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

inline fs::path test_script(const std::string& name) {
  return fs::path(HEARTH_SOURCE_DIR) / "tests" / "quant" / name;
}

// python3 with numpy available (the reference scripts need nothing else).
inline bool have_numpy() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
  return ok;
}

struct ScriptResult {
  int status = -1;
  std::string out, err;
};

inline ScriptResult run_python(const std::string& args) {
  TempDir tmp;
  std::string cmd = "/usr/bin/python3 " + args + " >" + (tmp.path() / "out").string() + " 2>" +
                    (tmp.path() / "err").string();
  int raw = std::system(cmd.c_str());
  ScriptResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(tmp.path() / "out");
  r.err = read_text(tmp.path() / "err");
  return r;
}

inline std::string quote(const fs::path& p) {
  return "'" + p.string() + "'";
}

}  // namespace hearth::quant::test
