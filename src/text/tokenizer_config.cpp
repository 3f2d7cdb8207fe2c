// What tokenizer_config.json (and special_tokens_map.json, chat_template.jinja) add to
// tokenizer.json: special token strings, added_tokens_decoder, chat templates and transformers'
// add_bos_token / add_eos_token.
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer_impl.h"

namespace hearth::text {
namespace {

// A special token given as a string or as an AddedToken dict {"content": ...}.
std::optional<std::string> token_string(const nlohmann::json& v, const JsonPath& path) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) return json_string(v, "content", path);
  path.fail("must be a string or an object with 'content'");
}

// transformers' Llama/Gemma-style tokenizers rebuild the post-processor from add_bos_token /
// add_eos_token (update_post_processor), overriding tokenizer.json; others keep tokenizer.json's.
bool rebuilds_post_processor(const std::string& tokenizer_class) {
  std::string c = tokenizer_class;
  if (c.size() > 4 && c.compare(c.size() - 4, 4, "Fast") == 0) c.resize(c.size() - 4);
  return c == "LlamaTokenizer" || c == "GemmaTokenizer" || c == "CodeLlamaTokenizer" ||
         c == "CohereTokenizer";
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

  const auto special = [&](const char* key) -> std::optional<std::string> {
    if (config && config->contains(key)) return token_string((*config)[key], cpath.child(key));
    if (map && map->contains(key)) return token_string((*map)[key], mpath.child(key));
    return std::nullopt;
  };
  bos_token = special("bos_token");
  eos_token = special("eos_token");
  unk_token = special("unk_token");
  pad_token = special("pad_token");
  for (const auto* source : {&config, &map}) {
    if (*source && (*source)->contains("additional_special_tokens") &&
        additional_special_tokens.is_null()) {
      const JsonPath p = (source == &config ? cpath : mpath).child("additional_special_tokens");
      const auto& list = (**source)["additional_special_tokens"];
      if (!list.is_array()) p.fail("must be an array");
      additional_special_tokens = nlohmann::json::array();
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto s = token_string(list[i], p.index(i))) additional_special_tokens.push_back(*s);
      }
    }
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
        default_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) {
          const auto& e = (*it)[i];
          named_templates.emplace_back(json_string(e, "name", p.index(i)),
                                       json_string(e, "template", p.index(i)));
        }
      } else {
        p.fail("must be a string or a list of {name, template}");
      }
    }

    const std::string cls = json_string_or(*config, "tokenizer_class", "", cpath);
    if (rebuilds_post_processor(cls) &&
        (config->contains("add_bos_token") || config->contains("add_eos_token"))) {
      const bool add_bos = json_bool_or(*config, "add_bos_token", true, cpath);
      const bool add_eos = json_bool_or(*config, "add_eos_token", false, cpath);
      nlohmann::json single = nlohmann::json::array();
      nlohmann::json specials = nlohmann::json::object();
      const auto add_token = [&](const std::optional<std::string>& token, const char* key) {
        if (!token) cpath.child(key).fail("is required by add_bos_token / add_eos_token");
        const auto id = token_to_id(*token);
        if (!id) cpath.child(key).fail(fmt::format("'{}' is not in the vocabulary", *token));
        single.push_back({{"SpecialToken", {{"id", *token}, {"type_id", 0}}}});
        specials[*token] = {{"id", *token}, {"ids", {*id}}, {"tokens", {*token}}};
      };
      if (add_bos) add_token(bos_token, "bos_token");
      single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
      if (add_eos) add_token(eos_token, "eos_token");
      post_processor = make_post_processor(
          {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}},
          cpath.child("add_bos_token"));
    }
  }

  // Newer HF layout: the template in its own file, which takes precedence.
  const auto jinja = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja)) {
    std::ifstream in(jinja, std::ios::binary);
    if (!in) fail(ErrorCode::io, "{}: cannot open file", jinja.string());
    std::ostringstream s;
    s << in.rdbuf();
    default_template = s.str();
    template_origin = jinja.string();
  }
}

}  // namespace hearth::text
