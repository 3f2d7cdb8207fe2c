#include "quant/recipes.h"

#include <cctype>

#include "core/error.h"

namespace hearth::quant {

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

bool is_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Python's % (the result takes the sign of the divisor).
int python_mod(int a, int b) {
  int r = a % b;
  return r < 0 ? r + b : r;
}

}  // namespace

MixedRecipe MixedRecipe::build(const std::string& recipe,
                               const std::vector<std::string>& module_paths, int num_layers,
                               int group_size) {
  MixedRecipe r;
  if (recipe == "mixed_2_6") {
    r.low_bits_ = 2;
  } else if (recipe == "mixed_3_4") {
    r.low_bits_ = 3;
    r.high_bits_ = 4;
  } else if (recipe == "mixed_3_6") {
    r.low_bits_ = 3;
  } else if (recipe == "mixed_4_6") {
    r.low_bits_ = 4;
  } else {
    fail(ErrorCode::invalid_argument, "--quant-predicate: invalid quant recipe '{}'", recipe);
  }
  r.group_size_ = group_size;
  r.num_layers_ = num_layers;
  const std::string* first_down = nullptr;
  for (const auto& p : module_paths)
    if (p.find("down_proj") != std::string::npos) {
      first_down = &p;
      break;
    }
  if (!first_down)
    fail(ErrorCode::unsupported,
         "--quant-predicate {}: the model has no down_proj modules, which the mixed recipes key on",
         recipe);
  // The first all-digit component; like mlx-lm's loop, the last component when there is none.
  std::vector<std::string> parts = split_path(*first_down);
  r.layer_location_ = parts.size() - 1;
  for (size_t i = 0; i < parts.size(); ++i)
    if (is_digits(parts[i])) {
      r.layer_location_ = i;
      break;
    }
  return r;
}

bool MixedRecipe::uses_more_bits(int index) const {
  const int n = num_layers_;
  return index < n / 8 || index >= 7 * n / 8 || python_mod(index - n / 8, 3) == 2;
}

QuantSpec MixedRecipe::spec_for(const std::string& module_path) const {
  std::vector<std::string> parts = split_path(module_path);
  int index = 0;
  if (parts.size() > layer_location_) {
    const std::string& part = parts[layer_location_];
    if (!is_digits(part) || part.size() > 9)
      fail(ErrorCode::unsupported,
           "--quant-predicate: module '{}' has no layer index at path component {}", module_path,
           layer_location_);
    index = std::stoi(part);
  }
  auto has = [&](const char* s) { return module_path.find(s) != std::string::npos; };
  const bool more = uses_more_bits(index);
  int bits = low_bits_;
  if ((has("v_proj") || has("v_a_proj") || has("v_b_proj")) && more) bits = high_bits_;
  if (has("down_proj") && more) bits = high_bits_;
  if (has("lm_head")) bits = high_bits_;
  return QuantSpec{group_size_, bits, "affine"};
}

}  // namespace hearth::quant
