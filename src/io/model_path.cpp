#include "io/model_path.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace hearth::io {

namespace fs = std::filesystem;

namespace {

fs::path hub_cache_dir() {
  if (const char* c = std::getenv("HF_HUB_CACHE")) return c;
  if (const char* h = std::getenv("HF_HOME")) return fs::path(h) / "hub";
  if (const char* home = std::getenv("HOME")) return fs::path(home) / ".cache/huggingface/hub";
  return ".cache/huggingface/hub";
}

fs::path executable_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

}  // namespace

fs::path resolve_model_path(const std::string& model) {
  if (model.empty()) fail(ErrorCode::invalid_argument, "empty --model");
  fs::path local(model);
  if (fs::exists(local)) return local;
  // A repo id has exactly one '/', no leading '.' or '/'.
  std::string repo = model, revision = "main";
  if (size_t at = model.find('@'); at != std::string::npos) {
    repo = model.substr(0, at);
    revision = model.substr(at + 1);
  }
  bool looks_like_repo = std::count(repo.begin(), repo.end(), '/') == 1 && repo[0] != '/' &&
                         repo[0] != '.' && repo.back() != '/';
  if (!looks_like_repo) fail(ErrorCode::not_found, "model folder {} does not exist", model);
  std::string folder =
      "models--" + repo.substr(0, repo.find('/')) + "--" + repo.substr(repo.find('/') + 1);
  fs::path root = hub_cache_dir() / folder;
  std::string snapshot = revision;
  std::ifstream ref(root / "refs" / revision);
  if (ref) std::getline(ref, snapshot);
  fs::path dir = root / "snapshots" / snapshot;
  if (fs::is_directory(dir)) return dir;
  fail(ErrorCode::not_found,
       "model '{}' is neither a local folder nor in the Hugging Face cache (looked for {}); "
       "hearth does not download models: pass the path of a downloaded model folder",
       model, dir.string());
}

fs::path default_model_path() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("HEARTH_DEFAULT_MODEL")) candidates.push_back(env);
  fs::path exe = executable_dir();
  if (!exe.empty()) {
    candidates.push_back(exe / "../models/default");     // install: bin/ beside models/
    candidates.push_back(exe / "../../models/default");  // source tree: build/bin/hearth
    candidates.push_back(exe / "../share/hearth/models/default");
  }
  std::string tried;
  for (const auto& c : candidates) {
    if (fs::exists(c / "config.json")) return fs::weakly_canonical(c);
    tried += (tried.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  fail(ErrorCode::not_found, "no --model given and the default model was not found (looked in {})",
       tried.empty() ? std::string("nowhere") : tried);
}

}  // namespace hearth::io
