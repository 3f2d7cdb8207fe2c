#include "core/device.h"

#include "core/error.h"

namespace hearth {

std::string Device::str() const {
  return kind == DeviceKind::cpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda" || text == "gpu") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    std::string digits = text.substr(5);
    if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos)
      return Device::cuda(std::stoi(digits));
  }
  fail(ErrorCode::invalid_argument, "unknown device '{}' (expected cpu, cuda or cuda:N)", text);
}

}  // namespace hearth
