// Running the `hearth` binary (and python3 helpers) from end-to-end tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace hearth::e2e {

struct RunResult {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scratch folder removed with the object.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("hearth-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string quote(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

// Runs `program ARGS` through the shell with stdin text; captures stdout and stderr.
inline RunResult run_program(const std::string& program, const std::string& args,
                             const std::string& stdin_text = "") {
  ScratchDir tmp("run");
  std::ofstream(tmp / "in", std::ios::binary) << stdin_text;
  std::string cmd = program + " " + args + " <" + quote(tmp / "in") + " >" + quote(tmp / "out") +
                    " 2>" + quote(tmp / "err");
  int raw = std::system(cmd.c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(tmp / "out");
  r.err = read_text(tmp / "err");
  return r;
}

inline RunResult run_hearth(const std::string& args, const std::string& stdin_text = "") {
  return run_program(HEARTH_BINARY, args, stdin_text);
}

// Runs a Python script (written to a scratch file) with arguments.
inline RunResult run_python(const std::string& script, const std::string& args,
                            const std::string& stdin_text = "") {
  ScratchDir tmp("py");
  std::ofstream(tmp / "script.py") << script;
  return run_program("python3 " + quote(tmp / "script.py"), args, stdin_text);
}

}  // namespace hearth::e2e
