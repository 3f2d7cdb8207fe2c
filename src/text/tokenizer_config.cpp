// What tokenizer_config.json, special_tokens_map.json and chat template files add to
// tokenizer.json, following transformers 5.17's from_pretrained: named special tokens,
// added_tokens_decoder and chat templates. add_bos_token / add_eos_token are not applied:
// transformers 5 drops them when a tokenizer.json exists, whose post-processor decides.
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer_impl.h"

namespace hearth::text {
namespace {

// A special token given as a string or as an AddedToken dict {"content": ...}; nullopt for
// anything else (booleans such as add_bos_token, null).
std::optional<std::string> token_string(const nlohmann::json& v, const JsonPath& path) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return json_string(v, "content", path);
  return std::nullopt;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::io, "{}: cannot open file", path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Named special tokens of one file: "*_token" keys holding a token, and extra_special_tokens
// when it is a dict of name -> token (model-specific tokens such as Gemma 3's image_token).
void collect_special(const nlohmann::json& obj, const JsonPath& path,
                     std::map<std::string, std::string>& out) {
  for (const auto& [key, value] : obj.items()) {
    if (key == "extra_special_tokens" && value.is_object()) {
      for (const auto& [name, token] : value.items()) {
        if (auto s = token_string(token, path.child(key).child(name))) out[name] = *s;
      }
    } else if (ends_with(key, "_token")) {
      if (value.is_null()) {
        out.erase(key);
      } else if (value.is_string() || value.is_object()) {
        const auto s = token_string(value, path.child(key));
        if (!s) path.child(key).fail("must be a string or an object with 'content'");
        out[key] = *s;
      } else if (!value.is_boolean()) {
        path.child(key).fail("must be a string or an object with 'content'");
      }
    }
  }
}

}  // namespace

void Tokenizer::Impl::load_config(const std::filesystem::path& dir) {
  const auto config_file = dir / "tokenizer_config.json";
  const auto map_file = dir / "special_tokens_map.json";
  const auto config = read_json_file(config_file, false);
  const auto map = read_json_file(map_file, false);
  const JsonPath cpath{config_file.string(), ""};
  const JsonPath mpath{map_file.string(), ""};
  if (config && !config->is_object()) cpath.fail("expected a JSON object");
  if (map && !map->is_object()) mpath.fail("expected a JSON object");

  if (config) collect_special(*config, cpath, named_special);
  // transformers reads special_tokens_map.json only for configs without added_tokens_decoder
  // (the legacy layout); its values then win.
  if (map && !(config && config->contains("added_tokens_decoder"))) {
    collect_special(*map, mpath, named_special);
  }

  if (config) {
    if (const auto it = config->find("added_tokens_decoder"); it != config->end()) {
      const JsonPath p = cpath.child("added_tokens_decoder");
      if (!it->is_object()) p.fail("must be an object of id -> token");
      for (const auto& [key, value] : it->items()) {
        int32_t id = -1;
        try {
          id = std::stoi(key);
        } catch (const std::exception&) {
          p.fail(fmt::format("key '{}' is not a token id", key));
        }
        AddedToken t;
        t.content = json_string(value, "content", p.child(key));
        t.special = json_bool_or(value, "special", false, p.child(key));
        t.single_word = json_bool_or(value, "single_word", false, p.child(key));
        t.lstrip = json_bool_or(value, "lstrip", false, p.child(key));
        t.rstrip = json_bool_or(value, "rstrip", false, p.child(key));
        t.normalized = json_bool_or(value, "normalized", !t.special, p.child(key));
        added.add_with_id(t, id, normalizer.get());
      }
    }

    if (const auto it = config->find("chat_template"); it != config->end() && !it->is_null()) {
      const JsonPath p = cpath.child("chat_template");
      template_origin = config_file.string();
      if (it->is_string()) {
        templates["default"] = it->get<std::string>();
      } else if (it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) {
          const auto& e = (*it)[i];
          templates[json_string(e, "name", p.index(i))] = json_string(e, "template", p.index(i));
        }
      } else {
        p.fail("must be a string or a list of {name, template}");
      }
    }
  }

  // Newer layout: chat_template.jinja (the default) and additional_chat_templates/NAME.jinja;
  // when present they replace the config's templates.
  std::map<std::string, std::string> from_files;
  std::string files_origin;
  if (const auto jinja = dir / "chat_template.jinja"; std::filesystem::exists(jinja)) {
    from_files["default"] = read_text(jinja);
    files_origin = jinja.string();
  }
  if (const auto extra = dir / "additional_chat_templates"; std::filesystem::is_directory(extra)) {
    for (const auto& entry : std::filesystem::directory_iterator(extra)) {
      if (entry.path().extension() != ".jinja") continue;
      from_files[entry.path().stem().string()] = read_text(entry.path());
      if (files_origin.empty()) files_origin = entry.path().string();
    }
  }
  if (!from_files.empty()) {
    templates = std::move(from_files);
    template_origin = files_origin;
  }
}

}  // namespace hearth::text
