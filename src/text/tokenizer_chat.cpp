// Tokenizer::apply_chat_template: picks the model's template and renders it with ChatTemplate.
// Kept in its own translation unit so that programs which never render templates do not need the
// Jinja engine at link time.
#include "core/error.h"
#include "text/chat_template.h"
#include "text/tokenizer_impl.h"

namespace hearth::text {

std::string Tokenizer::apply_chat_template(const nlohmann::json& messages,
                                           const ChatOptions& options,
                                           const std::optional<std::string>& name) const {
  const std::string* source = nullptr;
  std::string label = "default";
  if (name) {
    label = *name;
    for (const auto& [n, t] : impl_->named_templates) {
      if (n == *name) source = &t;
    }
  } else if (impl_->default_template) {
    source = &*impl_->default_template;
  } else {
    for (const auto& [n, t] : impl_->named_templates) {
      if (n == "default") source = &t;
    }
  }
  if (source == nullptr) {
    fail(ErrorCode::not_found, "{}: no chat template named '{}'",
         impl_->template_origin.empty() ? impl_->file : impl_->template_origin, label);
  }
  // Compiled per call: templates are small and this keeps Tokenizer immutable and thread-safe.
  const ChatTemplate tmpl = ChatTemplate::compile(*source, impl_->template_origin);
  return tmpl.apply(messages, options, special_tokens());
}

}  // namespace hearth::text
