// mlx-lm's mixed-precision recipes (`convert --quant-predicate mixed_X_Y`), modelled on llama.cpp's
// Q4_K_M choices: more bits for v_proj / down_proj in the first and last eighth of the layers and
// in every third layer between, and for lm_head; fewer bits everywhere else (embeddings included).
#pragma once

#include <string>
#include <vector>

#include "quant/quant_config.h"

namespace hearth::quant {

inline constexpr const char* kQuantRecipes[] = {"mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"};

class MixedRecipe {
 public:
  // `module_paths`: the model's modules in module order (the first one containing "down_proj"
  // tells which path component is the layer index, as in mlx-lm); `num_layers`: the number of
  // decoder layers; `group_size`: the group size of every entry. Errors: an unknown recipe
  // (invalid_argument), a model without down_proj modules (unsupported).
  static MixedRecipe build(const std::string& recipe, const std::vector<std::string>& module_paths,
                           int num_layers, int group_size);

  // The parameters of a module the recipe quantizes (every quantizable module gets an entry).
  QuantSpec spec_for(const std::string& module_path) const;
  // mlx-lm's use_more_bits for a layer index.
  bool uses_more_bits(int layer_index) const;

  int low_bits() const { return low_bits_; }
  int high_bits() const { return high_bits_; }

 private:
  int low_bits_ = 4, high_bits_ = 6, group_size_ = 64, num_layers_ = 0;
  size_t layer_location_ = 0;
};

}  // namespace hearth::quant
