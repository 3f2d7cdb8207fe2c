// ChatTemplate: transformers' apply_chat_template / render_jinja_template on top of the Jinja
// engine — the same context (messages, tools, documents, add_generation_prompt, special tokens
// overridden by extra kwargs) and the same continue_final_message cut.
#include "text/chat_template.h"

#include "core/error.h"
#include "text/jinja/pystr.h"
#include "text/jinja/template.h"

namespace hearth::text {
namespace {

// transformers appends this to the final message and cuts the rendered prompt where it lands.
constexpr std::string_view kContinueTag = "CONTINUE_FINAL_MESSAGE_TAG ";

std::string describe(const std::string& origin, const jinja::TemplateError& e) {
  if (e.line > 0) return fmt::format("{}, line {}: {}", origin, e.line, e.message);
  return fmt::format("{}: {}", origin, e.message);
}

// Python's str.strip() / rstrip(), which transformers applies around the tag.
std::string trim(std::string_view s) {
  return jinja::py::strip(s, jinja::py::StripSide::both, std::nullopt);
}
std::string rstrip(std::string_view s) {
  return jinja::py::strip(s, jinja::py::StripSide::right, std::nullopt);
}

}  // namespace

struct ChatTemplate::Impl {
  std::string source;
  std::string origin;
  jinja::Template compiled;
};

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

const std::string& ChatTemplate::source() const {
  return impl_->source;
}

ChatTemplate ChatTemplate::compile(const std::string& source, const std::string& origin) {
  try {
    jinja::Template compiled = jinja::Template::parse(source);
    return ChatTemplate(std::unique_ptr<Impl>(new Impl{source, origin, std::move(compiled)}));
  } catch (const jinja::TemplateError& e) {
    fail(ErrorCode::format, "chat template syntax error: {}", describe(origin, e));
  }
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages, const ChatOptions& options,
                                const nlohmann::json& special_tokens) const {
  const std::string& origin = impl_->origin;
  if (!messages.is_array()) {
    fail(ErrorCode::invalid_argument, "chat template {}: messages must be a JSON array, got {}",
         origin, messages.type_name());
  }
  if (messages.empty()) {
    fail(ErrorCode::invalid_argument,
         "chat template {}: Cannot apply chat template to an empty conversation. Provide at least "
         "one message.",
         origin);
  }
  if (!options.extra.is_null() && !options.extra.is_object()) {
    fail(ErrorCode::invalid_argument, "chat template {}: template kwargs must be a JSON object",
         origin);
  }
  if (!special_tokens.is_null() && !special_tokens.is_object()) {
    fail(ErrorCode::invalid_argument, "chat template {}: special tokens must be a JSON object",
         origin);
  }
  if (!options.documents.is_null()) {
    if (!options.documents.is_array()) {
      fail(ErrorCode::invalid_argument, "chat template {}: documents must be a JSON array", origin);
    }
    for (const auto& doc : options.documents) {
      if (!doc.is_object()) {
        fail(ErrorCode::invalid_argument,
             "chat template {}: Documents should be a list of dicts with 'title' and 'text' keys!",
             origin);
      }
    }
  }

  nlohmann::ordered_json chat = messages;
  std::string final_message;
  if (options.continue_final_message) {
    if (options.add_generation_prompt) {
      fail(ErrorCode::invalid_argument,
           "chat template {}: continue_final_message and add_generation_prompt are not compatible. "
           "Use "
           "continue_final_message when you want the model to continue the final message, and "
           "add_generation_prompt when you want to add a header that will prompt it to start a new "
           "assistant message instead.",
           origin);
    }
    if (chat.empty() || !chat.back().is_object() || !chat.back().contains("content") ||
        chat.back()["content"].is_null()) {
      fail(ErrorCode::invalid_argument,
           "chat template {}: continue_final_message is set but the final message has no "
           "\"content\" to "
           "continue!",
           origin);
    }
    if (impl_->source.find("content") == std::string::npos) {
      fail(ErrorCode::invalid_argument,
           "chat template {}: continue_final_message is set to \"content\" but this is not an "
           "accepted "
           "field in the chat_template",
           origin);
    }
    auto& content = chat.back()["content"];
    if (content.is_array()) {
      bool found = false;
      for (auto it = content.rbegin(); it != content.rend(); ++it) {
        if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
          final_message = (*it)["text"].get<std::string>();
          (*it)["text"] = final_message + std::string(kContinueTag);
          found = true;
          break;
        }
      }
      if (!found) {
        fail(ErrorCode::invalid_argument,
             "chat template {}: continue_final_message is set but we could not find any text to "
             "continue "
             "in the final message!",
             origin);
      }
    } else if (content.is_string()) {
      final_message = content.get<std::string>();
      content = final_message + std::string(kContinueTag);
    } else {
      fail(ErrorCode::invalid_argument,
           "chat template {}: the final message's content must be text to continue", origin);
    }
  }

  // render(messages=..., tools=..., documents=..., add_generation_prompt=..., **{**special_tokens,
  // **kwargs})
  std::vector<std::pair<std::string, jinja::Value>> context;
  context.emplace_back("messages", jinja::from_json(chat));
  context.emplace_back("tools", jinja::from_json(options.tools));
  context.emplace_back("documents", jinja::from_json(options.documents));
  context.emplace_back("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  auto add_kwarg = [&](const std::string& key, const nlohmann::ordered_json& value) {
    for (auto& [name, existing] : context) {
      if (name != key) continue;
      if (name == "messages" || name == "tools" || name == "documents" ||
          name == "add_generation_prompt") {
        fail(ErrorCode::invalid_argument,
             "chat template {}: template kwarg '{}' clashes with apply_chat_template's own", origin,
             key);
      }
      existing = jinja::from_json(value);
      return;
    }
    context.emplace_back(key, jinja::from_json(value));
  };
  if (special_tokens.is_object()) {
    for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it) {
      add_kwarg(it.key(), nlohmann::ordered_json(it.value()));
    }
  }
  if (options.extra.is_object()) {
    for (auto it = options.extra.begin(); it != options.extra.end(); ++it)
      add_kwarg(it.key(), it.value());
  }

  std::string rendered;
  try {
    rendered = impl_->compiled.render(context);
  } catch (const jinja::TemplateError& e) {
    if (e.kind == jinja::TemplateError::Kind::raised) {
      fail(ErrorCode::invalid_argument, "chat template raised an exception: {}",
           describe(origin, e));
    }
    fail(ErrorCode::invalid_argument, "chat template error: {}", describe(origin, e));
  }

  if (options.continue_final_message) {
    std::string tag = trim(kContinueTag);
    if (rendered.find(trim(final_message)) == std::string::npos ||
        rendered.find(tag) == std::string::npos) {
      fail(ErrorCode::invalid_argument,
           "chat template {}: continue_final_message is set but the final message does not appear "
           "in the chat "
           "after applying the chat template! This can happen if the chat template deletes "
           "portions of the "
           "final message.",
           origin);
    }
    size_t at = rendered.rfind(tag);
    if (rendered.compare(at, kContinueTag.size(), kContinueTag) == 0) {
      rendered.resize(at);
    } else {
      rendered = rstrip(std::string_view(rendered).substr(0, at));
    }
  }
  return rendered;
}

ChatRequest parse_chat_request(const nlohmann::ordered_json& request) {
  ChatRequest out;
  if (request.is_array()) {
    out.messages = request;
    return out;
  }
  if (!request.is_object()) {
    fail(ErrorCode::invalid_argument,
         "chat request must be a JSON object or an array of messages, got {}", request.type_name());
  }
  auto field = [&](const char* name) -> const nlohmann::ordered_json* {
    auto it = request.find(name);
    return it == request.end() || it->is_null() ? nullptr : &*it;
  };
  auto flag = [&](const char* name) -> std::optional<bool> {
    const auto* v = field(name);
    if (!v) return std::nullopt;
    if (!v->is_boolean())
      fail(ErrorCode::invalid_argument, "chat request: '{}' must be true or false", name);
    return v->get<bool>();
  };
  const auto* messages = field("messages");
  if (!messages || !messages->is_array()) {
    fail(ErrorCode::invalid_argument, "chat request: 'messages' must be an array of messages");
  }
  for (const auto& m : *messages) {
    if (!m.is_object())
      fail(ErrorCode::invalid_argument,
           "chat request: every entry of 'messages' must be an object");
  }
  out.messages = *messages;
  if (const auto* tools = field("tools")) {
    if (!tools->is_array())
      fail(ErrorCode::invalid_argument, "chat request: 'tools' must be an array");
    out.options.tools = *tools;
  }
  if (const auto* documents = field("documents")) {
    if (!documents->is_array())
      fail(ErrorCode::invalid_argument, "chat request: 'documents' must be an array");
    out.options.documents = *documents;
  }
  if (const auto* kwargs = field("chat_template_kwargs")) {
    if (!kwargs->is_object()) {
      fail(ErrorCode::invalid_argument, "chat request: 'chat_template_kwargs' must be an object");
    }
    out.options.extra = *kwargs;
  }
  out.options.continue_final_message = flag("continue_final_message").value_or(false);
  out.options.add_generation_prompt =
      flag("add_generation_prompt").value_or(!out.options.continue_final_message);
  return out;
}

}  // namespace hearth::text
