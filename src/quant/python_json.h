// JSON text exactly as Python's `json.dump(obj, f, indent=4)` writes it, which is how mlx-lm saves
// config.json and model.safetensors.index.json: 4-space indentation, ", "/": " separators,
// non-ASCII escaped as \uXXXX (ensure_ascii), floats in Python's repr, keys in object order, no
// trailing newline. Matching it byte for byte lets converted folders diff cleanly against mlx-lm's.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hearth::quant {

std::string python_json_dumps(const nlohmann::ordered_json& value, int indent = 4);

// Python's repr() of a float: the shortest round-trip digits, exponent form outside
// 1e-4 <= |x| < 1e16 ("1e-05", "1e+16"), ".0" on integral values, "NaN" / "Infinity".
std::string python_float_repr(double value);

}  // namespace hearth::quant
