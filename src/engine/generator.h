// The prefill/decode loop: prompt ids in, streamed text out, one sequence in one state slot.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/mamba2_model.h"
#include "sample/pick_rule.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace mamba2 {

struct GenerateOptions {
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  bool stop_at_eos = true;
  int32_t slot = 0;
  bool reset_slot = true;  // false: continue from the slot's state (prompt is then a continuation)
  // Pick tokens on the backend (sample/pick_rule.h) when the parameters allow it (no repetition
  // penalty); false: the host Sampler. The two draw different random streams for one seed.
  bool pick_on_backend = true;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (the stop string's tokens included)
  std::string text;             // generated text, cut before a stop string
  std::string finish_reason;    // "length", "eos", "stop", "cancelled"
  bool picked_on_backend = false;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

// Streams whole UTF-8 characters of generated text; returns false to cancel.
using TextCallback = std::function<bool(const std::string& piece)>;

// Holds back text that may be the start of a stop string, so what is streamed never has to be
// taken back.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what is safe to emit now. Sets stopped() when a stop string completes.
  std::string Push(const std::string& text);
  std::string Flush();  // the held-back text, at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

class Generator {
 public:
  Generator(Mamba2Model* model, const Tokenizer* tokenizer) : model_(model), tokenizer_(tokenizer) {}
  Result<GenerateResult> Generate(const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                  const TextCallback& on_text);

 private:
  Mamba2Model* model_;
  const Tokenizer* tokenizer_;
};

}  // namespace mamba2
