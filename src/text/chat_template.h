// Chat templates: HF Jinja templates rendered exactly as transformers renders them.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace hearth::text {

// JSON here is nlohmann::ordered_json: templates print dicts (tojson, str) in insertion order,
// as Python does, so key order must survive from the request to the template. A plain
// nlohmann::json converts implicitly (its keys then come sorted).
struct ChatOptions {
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::ordered_json tools;  // null or an array of tool definitions (JSON schema, as OpenAI's)
  nlohmann::ordered_json documents;                                 // null or an array of documents
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // other template kwargs
                                                                    // (enable_thinking, ...)
};

// A chat request as scripts and HTTP clients write it: a bare array of messages, or an object
// with "messages" and optionally "tools", "documents", "add_generation_prompt",
// "continue_final_message" and "chat_template_kwargs" (extra template kwargs, as vLLM names them).
struct ChatRequest {
  nlohmann::ordered_json messages;
  ChatOptions options;
};

// Splits a request into what ChatTemplate::apply takes; `invalid_argument` errors name the field.
// add_generation_prompt defaults to true unless continue_final_message is set.
ChatRequest parse_chat_request(const nlohmann::ordered_json& request);

class ChatTemplate {
 public:
  // Parses the template; a syntax error is a `format` error naming `origin` (e.g. the file) and the
  // template line.
  static ChatTemplate compile(const std::string& source, const std::string& origin);

  // Renders `messages` (an array of {role, content, ...}) as transformers' apply_chat_template
  // does: the context holds messages, tools, documents, add_generation_prompt, every entry of
  // `special_tokens` (bos_token, eos_token, ...) and the extra kwargs. raise_exception() in the
  // template and runtime errors become `invalid_argument` errors naming the template line.
  std::string apply(const nlohmann::ordered_json& messages, const ChatOptions& options,
                    const nlohmann::json& special_tokens) const;

  const std::string& source() const;

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

 private:
  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::text
