// The python3 that runs the tests' independent numpy references: Debian's (scripts/setup.sh
// installs python3-numpy), or HEARTH_TEST_PYTHON where that one lacks numpy (the GPU machine,
// whose numpy lives in PyTorch's environment).
#pragma once

#include <cstdlib>
#include <string>

namespace hearth::test_env {

inline std::string test_python() {
  const char* python = std::getenv("HEARTH_TEST_PYTHON");
  return python && *python ? python : "/usr/bin/python3";
}

}  // namespace hearth::test_env
