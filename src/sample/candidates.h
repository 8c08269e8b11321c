// The working set a sampling chain transforms: (id, logit) pairs that are still
// allowed, plus what is known about their order so steps can skip re-sorting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mamba2 {

struct Candidate {
  int32_t id;
  float logit;
};

// The one total order every step uses: higher logit first, ties by lower id.
// A total order (no two candidates compare equal) makes nth_element/sort give
// the same result with every standard library, so a seed gives the same tokens
// everywhere.
inline bool RanksBefore(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

struct CandidateSet {
  std::vector<Candidate> items;
  bool sorted = false;      // items follow RanksBefore
  bool id_indexed = false;  // items[i].id == i (fresh from Reset, nothing dropped or moved)

  // Candidates are ids [0, n_valid). NaN logits become -inf so they can never
  // win and never poison a softmax.
  void Reset(const float* logits, int64_t n_valid);
  void SortDescending();
  // Softmax over the current logits, in double; probs[i] belongs to items[i].
  void Softmax(std::vector<double>& probs) const;
  // The highest-ranked item's index (max logit, ties -> lowest id). Requires non-empty.
  size_t BestIndex() const;
};

}  // namespace mamba2
