// `hearth tokenize` (text <-> ids) and `hearth chat-template` (render a messages JSON file with the
// model's chat template): scriptable views of the text layer.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "io/json_file.h"

namespace hearth::cli {
namespace {

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// "1 2 3", "1,2,3" or "[1, 2, 3]".
std::vector<int32_t> parse_ids(const std::string& text) {
  std::string cleaned = text;
  for (char& c : cleaned)
    if (c == ',' || c == '[' || c == ']' || c == '\n' || c == '\t') c = ' ';
  std::istringstream in(cleaned);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    long v = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX)
      throw UsageError("--decode expects token ids, got '" + word + "'");
    ids.push_back(int32_t(v));
  }
  return ids;
}

}  // namespace

int run_tokenize(const std::vector<std::string>& argv) {
  std::optional<std::string> model_flag, prompt;
  bool decode = false, no_special = false, skip_special = false, show_tokens = false;
  ArgParser p("hearth tokenize", "Encode text to token ids, or decode ids to text.");
  p.add_optional_string({"--model"}, &model_flag, "Model folder (default: the bundled model)");
  p.add_optional_string({"--prompt", "-p"}, &prompt,
                        "Text to encode, or ids to decode with --decode ('-' or absent: stdin)");
  p.add_flag({"--decode"}, &decode, "Decode token ids (space, comma or JSON separated) to text");
  p.add_flag({"--no-special-tokens"}, &no_special,
             "Encode without the tokenizer's special tokens (add_special_tokens=False)");
  p.add_flag({"--skip-special-tokens"}, &skip_special, "Drop special tokens when decoding");
  p.add_flag({"--tokens"}, &show_tokens, "Also print each id's token string (tab separated)");
  if (!p.parse(argv)) return 0;
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(model_dir_from_flag(model_flag));
  std::string input = (!prompt || *prompt == "-") ? read_stdin() : *prompt;
  if (decode) {
    std::vector<int32_t> ids = parse_ids(input);
    for (int32_t id : ids)
      if (id >= tokenizer.vocab_size())
        fail(ErrorCode::invalid_argument, "token id {} is outside the vocabulary (size {})", id,
             tokenizer.vocab_size());
    std::string text = tokenizer.decode(ids, skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
    return 0;
  }
  std::vector<int32_t> ids = tokenizer.encode(input, !no_special);
  if (show_tokens) {
    for (int32_t id : ids) {
      std::string token = tokenizer.id_to_token(id).value_or("");
      std::printf("%d\t%s\n", id, token.c_str());
    }
    return 0;
  }
  for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
  std::printf("\n");
  return 0;
}

int run_chat_template(const std::vector<std::string>& argv) {
  std::optional<std::string> model_flag, tools_path, documents_path, config, name;
  std::string messages_path;
  bool no_generation_prompt = false, continue_final = false;
  ArgParser p("hearth chat-template",
              "Print the prompt the model's chat template renders for a conversation.");
  p.add_optional_string({"--model"}, &model_flag, "Model folder (default: the bundled model)");
  p.add_string({"--messages"}, &messages_path,
               "JSON file with the messages array ([{\"role\": ..., \"content\": ...}, ...]); "
               "'-' reads stdin");
  p.add_optional_string({"--tools"}, &tools_path, "JSON file with an array of tool definitions");
  p.add_optional_string({"--documents"}, &documents_path, "JSON file with an array of documents");
  p.add_optional_string(
      {"--chat-template-config"}, &config,
      "Extra template arguments as a JSON object (e.g. {\"enable_thinking\": false})");
  p.add_optional_string({"--template-name"}, &name, "Which named template to use (e.g. tool_use)");
  p.add_flag({"--no-generation-prompt"}, &no_generation_prompt,
             "Do not append the assistant generation prompt");
  p.add_flag({"--continue-final-message"}, &continue_final,
             "Leave the final message open for the model to continue");
  if (!p.parse(argv)) return 0;
  if (messages_path.empty()) throw UsageError("the following arguments are required: --messages");
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(model_dir_from_flag(model_flag));
  nlohmann::ordered_json messages;
  if (messages_path == "-") {
    try {
      messages = nlohmann::ordered_json::parse(read_stdin());
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::format, "messages from stdin: invalid JSON: {}", e.what());
    }
  } else {
    messages = io::read_ordered_json_file(messages_path);
  }
  if (!messages.is_array())
    fail(ErrorCode::invalid_argument, "--messages: expected a JSON array of messages");
  text::ChatOptions options;
  options.add_generation_prompt = !no_generation_prompt && !continue_final;
  options.continue_final_message = continue_final;
  if (tools_path) options.tools = io::read_ordered_json_file(*tools_path);
  if (documents_path) options.documents = io::read_ordered_json_file(*documents_path);
  if (config) {
    try {
      options.extra = nlohmann::ordered_json::parse(*config);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("argument --chat-template-config: invalid JSON: ") + e.what());
    }
    if (!options.extra.is_object())
      throw UsageError("argument --chat-template-config: expected a JSON object");
  }
  if (!tokenizer.has_chat_template())
    fail(ErrorCode::not_found, "this model's tokenizer has no chat template");
  std::string rendered = tokenizer.apply_chat_template(messages, options, name);
  std::fwrite(rendered.data(), 1, rendered.size(), stdout);
  return 0;
}

}  // namespace hearth::cli
