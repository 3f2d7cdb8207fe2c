// tokenizer.json post-processors: the special tokens added around a sequence when
// add_special_tokens is on (TemplateProcessing, BertProcessing, RobertaProcessing), ByteLevel
// (offsets only, ids unchanged) and Sequence.
#include "core/error.h"
#include "text/components.h"

namespace hearth::text {
namespace {

// Adds fixed id lists before and after the sequence (the single-sequence template).
class Template final : public PostProcessor {
 public:
  Template(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_, after_;
};

class NoOp final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : items_) p->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> make_template(const nlohmann::json& j, const JsonPath& path) {
  const auto& single = json_field(j, "single", path);
  const auto& specials =
      j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json::object();
  if (!single.is_array()) path.child("single").fail("must be a list of pieces");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const auto& piece = single[i];
    const JsonPath ppath = path.child("single").index(i);
    if (piece.contains("Sequence")) {
      if (seen_sequence) ppath.fail("more than one sequence in the single template");
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken")) ppath.fail("expected SpecialToken or Sequence");
    const std::string name = json_string(piece["SpecialToken"], "id", ppath.child("SpecialToken"));
    const auto it = specials.find(name);
    if (it == specials.end()) {
      path.child("special_tokens").fail(fmt::format("missing special token '{}'", name));
    }
    const auto& ids = json_field(*it, "ids", path.child("special_tokens").child(name));
    for (const auto& id : ids) (seen_sequence ? after : before).push_back(id.get<int32_t>());
  }
  return std::make_unique<Template>(std::move(before), std::move(after));
}

// Bert/Roberta: cls A sep, each given as [token, id].
std::unique_ptr<PostProcessor> make_cls_sep(const nlohmann::json& j, const JsonPath& path) {
  const auto id_of = [&](const char* key) {
    const auto& v = json_field(j, key, path);
    if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer()) {
      path.child(key).fail("must be [token, id]");
    }
    return v[1].get<int32_t>();
  };
  return std::make_unique<Template>(std::vector<int32_t>{id_of("cls")},
                                    std::vector<int32_t>{id_of("sep")});
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const JsonPath& path) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, path);
  if (type == "TemplateProcessing") return make_template(j, path);
  if (type == "ByteLevel") return std::make_unique<NoOp>();
  if (type == "BertProcessing" || type == "RobertaProcessing") return make_cls_sep(j, path);
  if (type == "Sequence") {
    const auto& list = json_field(j, "processors", path);
    if (!list.is_array()) path.fail("'processors' must be an array");
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_post_processor(list[i], path.child("processors").index(i));
      if (p) items.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  path.fail(fmt::format("unknown post_processor type '{}'", type));
}

}  // namespace hearth::text
