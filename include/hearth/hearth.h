// hearth's public C++ API, modelled on mlx-lm's Python API:
//
//   auto [model, tokenizer] = hearth::load("path/to/model");
//   std::string text = hearth::generate(*model, tokenizer, "Write a haiku", {.max_tokens = 64});
//   hearth::stream_generate(*model, tokenizer, "Hello", {}, [](const hearth::GenerationResponse& r)
//   {
//     std::cout << r.text << std::flush;
//     return true;  // false stops early
//   });
//
// Errors (bad paths, malformed files, unsupported architectures, bad options) are thrown as
// hearth::Error with a message naming the file, key or option at fault.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "core/error.h"
#include "gen/generate.h"
#include "io/model_path.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace hearth {

using gen::GenerationOptions;
using gen::GenerationResponse;
using model::Model;
using text::Tokenizer;

struct Loaded {
  std::unique_ptr<Model> model;
  Tokenizer tokenizer;
};

// A local model folder or a Hugging Face repo id present in the local HF cache.
inline Loaded load(const std::string& path_or_repo, const model::LoadOptions& options = {}) {
  std::filesystem::path dir = io::resolve_model_path(path_or_repo);
  Tokenizer tokenizer = Tokenizer::from_dir(dir);
  return {model::load_model(dir, options), std::move(tokenizer)};
}

// Text prompts get the tokenizer's special tokens unless they already start with BOS (mlx-lm's
// rule); pass token ids to control the encoding yourself.
inline void stream_generate(Model& model, const Tokenizer& tokenizer, const std::string& prompt,
                            const GenerationOptions& options,
                            const std::function<bool(const GenerationResponse&)>& on_response) {
  gen::stream_generate(model, tokenizer, gen::encode_prompt(tokenizer, prompt), options,
                       on_response);
}

inline std::string generate(Model& model, const Tokenizer& tokenizer, const std::string& prompt,
                            const GenerationOptions& options = {}) {
  return gen::generate(model, tokenizer, gen::encode_prompt(tokenizer, prompt), options);
}

}  // namespace hearth
