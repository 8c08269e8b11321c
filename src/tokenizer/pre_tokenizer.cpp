#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "tokenizer/gpt2_split.h"

namespace mamba2 {
namespace {

Result<bool> OptionalBool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) return Status::Error(where + ": field \"" + key + "\" must be a boolean");
  return j[key].get<bool>();
}

}  // namespace

Status PreTokenizer::AddSteps(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Error(where + ": expected an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return Status::Error(where + " (Sequence): missing array \"pretokenizers\"");
    }
    size_t k = 0;
    for (const auto& sub : j["pretokenizers"]) {
      RETURN_IF_ERROR(AddSteps(sub, where + ".pretokenizers[" + std::to_string(k++) + "]", steps));
    }
    return Status::Ok();
  }
  if (!steps.empty() && steps.back().is_byte_level) {
    return Status::Error(where + ": a " + type +
                         " step after ByteLevel is not supported (ByteLevel must be the last pre-tokenizer)");
  }
  Step step;
  if (type == "ByteLevel") {
    step.is_byte_level = true;
    // Defaults follow HF's ByteLevel::default().
    ASSIGN_OR_RETURN(step.add_prefix_space, OptionalBool(j, "add_prefix_space", true, where + " (ByteLevel)"));
    ASSIGN_OR_RETURN(step.use_regex, OptionalBool(j, "use_regex", true, where + " (ByteLevel)"));
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "Split") {
    const std::string w = where + " (Split)";
    if (!j.contains("pattern") || !j["pattern"].is_object() || j["pattern"].size() != 1) {
      return Status::Error(w + ": \"pattern\" must be {\"Regex\": ...} or {\"String\": ...}");
    }
    const auto& pat = j["pattern"];
    bool literal;
    std::string text;
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      literal = false;
      text = pat["Regex"].get<std::string>();
    } else if (pat.contains("String") && pat["String"].is_string()) {
      literal = true;
      text = pat["String"].get<std::string>();
    } else {
      return Status::Error(w + ": \"pattern\" must be {\"Regex\": string} or {\"String\": string}");
    }
    if (!j.contains("behavior") || !j["behavior"].is_string()) return Status::Error(w + ": missing \"behavior\"");
    const std::string b = j["behavior"].get<std::string>();
    if (b == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else if (b == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (b == "MergedWithPrevious") {
      step.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "MergedWithNext") {
      step.behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "Contiguous") {
      step.behavior = SplitBehavior::kContiguous;
    } else {
      return Status::Error(w + ": unknown behavior \"" + b + "\"");
    }
    ASSIGN_OR_RETURN(step.invert, OptionalBool(j, "invert", false, w));
    if (literal && text.empty()) {
      // HF: an empty String pattern never matches; model it as a regex that cannot match.
      ASSIGN_OR_RETURN(Regex re, Regex::Compile("(*FAIL)", false));
      step.regex.emplace(std::move(re));
    } else {
      auto re = Regex::Compile(text, literal);
      if (!re.ok()) return re.status().With(w);
      step.regex.emplace(std::move(re).value());
    }
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  return Status::Error(where + ": unsupported pre-tokenizer type \"" + type +
                       "\" (supported: ByteLevel, Split, Sequence of these)");
}

Result<PreTokenizer> PreTokenizer::FromJson(const nlohmann::json& j) {
  PreTokenizer p;
  if (j.is_null()) return p;
  RETURN_IF_ERROR(AddSteps(j, "pre_tokenizer", p.steps_));
  p.byte_level_ = !p.steps_.empty() && p.steps_.back().is_byte_level;
  return p;
}

Status PreTokenizer::ApplySplit(const Step& step, std::string_view piece, std::vector<std::string_view>& out) {
  thread_local std::vector<Span> matches;
  matches.clear();
  RETURN_IF_ERROR(step.regex->FindAll(piece, matches));
  // HF covers the piece with (span, is_match) parts, gaps included, then groups them by
  // behavior; empty parts are dropped at the end.
  struct Part {
    size_t b, e;
    bool is_match;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  size_t prev = 0;
  for (const Span& m : matches) {
    if (prev != m.begin) parts.push_back({prev, m.begin, step.invert});
    parts.push_back({m.begin, m.end, !step.invert});
    prev = m.end;
  }
  if (prev != piece.size()) parts.push_back({prev, piece.size(), step.invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.push_back(piece.substr(b, e - b));
  };
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) emit(p.b, p.e);
      break;
    case SplitBehavior::kRemoved:
      for (const Part& p : parts)
        if (!p.is_match) emit(p.b, p.e);
      break;
    case SplitBehavior::kContiguous:
    case SplitBehavior::kMergedWithPrevious: {
      // Contiguous merges runs of equal flags; MergedWithPrevious glues a match onto the
      // part before it when that part is not a match.
      thread_local std::vector<Span> groups;
      groups.clear();
      bool previous_match = false;
      for (const Part& p : parts) {
        const bool glue = step.behavior == SplitBehavior::kContiguous ? p.is_match == previous_match
                                                                      : p.is_match && !previous_match;
        if (glue && !groups.empty()) {
          groups.back().end = p.e;
        } else {
          groups.push_back({p.b, p.e});
        }
        previous_match = p.is_match;
      }
      for (const Span& g : groups) emit(g.begin, g.end);
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      thread_local std::vector<Span> groups;
      groups.clear();
      bool previous_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        const Part& p = parts[k];
        if (p.is_match && !previous_match && !groups.empty()) {
          groups.back().begin = p.b;
        } else {
          groups.push_back({p.b, p.e});
        }
        previous_match = p.is_match;
      }
      for (size_t k = groups.size(); k-- > 0;) emit(groups[k].begin, groups[k].end);
      break;
    }
  }
  return Status::Ok();
}

Status PreTokenizer::Split(std::string_view text, std::vector<std::string_view>& pieces,
                           std::deque<std::string>& storage) const {
  if (text.empty()) return Status::Ok();
  if (steps_.empty()) {
    pieces.push_back(text);
    return Status::Ok();
  }
  if (steps_.size() == 1 && steps_[0].is_byte_level && steps_[0].use_regex &&
      !(steps_[0].add_prefix_space && text.front() != ' ')) {
    SplitGpt2(text, pieces);  // the GPT-2/NeoX case, without intermediate lists
    return Status::Ok();
  }
  thread_local std::vector<std::string_view> cur, next;
  cur.assign(1, text);
  for (const Step& step : steps_) {
    next.clear();
    for (std::string_view piece : cur) {
      if (step.is_byte_level && step.add_prefix_space && piece.front() != ' ') {
        std::string& prefixed = storage.emplace_back();
        prefixed.reserve(piece.size() + 1);
        prefixed.push_back(' ');
        prefixed.append(piece);
        piece = prefixed;
      }
      if (step.is_byte_level) {
        // The GPT-2 pattern matches every character, so its Isolated split is just the
        // list of matches.
        if (step.use_regex) {
          SplitGpt2(piece, next);
        } else {
          next.push_back(piece);
        }
      } else {
        RETURN_IF_ERROR(ApplySplit(step, piece, next));
      }
    }
    cur.swap(next);
  }
  pieces.insert(pieces.end(), cur.begin(), cur.end());
  return Status::Ok();
}

}  // namespace mamba2
