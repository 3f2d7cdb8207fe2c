// Tokenizer::apply_chat_template: picks the model's template as transformers 5.17's
// get_chat_template does and renders it with ChatTemplate. Kept in its own translation unit so
// that programs which never render templates do not need the Jinja engine at link time.
#include "core/error.h"
#include "text/chat_template.h"
#include "text/tokenizer_impl.h"

namespace hearth::text {

std::string Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages,
                                           const ChatOptions& options,
                                           const std::optional<std::string>& name) const {
  const auto& templates = impl_->templates;
  const std::string origin = impl_->template_origin.empty() ? impl_->file : impl_->template_origin;
  // An explicit name wins; with tools, a "tool_use" template; otherwise "default".
  std::string pick = "default";
  if (name) {
    pick = *name;
  } else if (options.tools.is_array() && templates.count("tool_use") != 0) {
    pick = "tool_use";
  }
  const auto it = templates.find(pick);
  if (it == templates.end()) {
    std::string names;
    for (const auto& [n, _] : templates) names += (names.empty() ? "" : ", ") + n;
    fail(ErrorCode::not_found, "{}: no chat template named '{}' (available: {})", origin, pick,
         names.empty() ? "none" : names);
  }
  // Compiled per call: templates are small and this keeps Tokenizer immutable and thread-safe.
  const ChatTemplate tmpl = ChatTemplate::compile(it->second, origin);
  return tmpl.apply(messages, options, special_tokens());
}

}  // namespace hearth::text
