#include "cli/common.h"

#include "io/model_path.h"

namespace hearth::cli {

std::filesystem::path model_dir_from_flag(const std::optional<std::string>& model) {
  return model ? io::resolve_model_path(*model) : io::default_model_path();
}

Device device_from_flag(const std::string& device) {
  return parse_device(device);
}

}  // namespace hearth::cli
