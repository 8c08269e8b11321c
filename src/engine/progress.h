// Progress of a long token-processing job, on stderr (never stdout: results go there).
//
// On a terminal: one line redrawn in place ("\r") by a ticker thread at least once a second,
// with a bar, tokens/s and ETA, so it moves even while one long model call runs. Not on a
// terminal (logs, CI): a plain line every `log_interval_s` seconds or each 10% of the total,
// whichever comes first, and a final summary line.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

namespace mamba2 {

class Progress {
 public:
  enum class Mode { kAuto, kTerminal, kLines, kOff };
  // total: units expected (tokens); `out` is usually stderr. kAuto picks kTerminal when `out`
  // is a terminal.
  Progress(std::string label, int64_t total, std::FILE* out = stderr, Mode mode = Mode::kAuto,
           double log_interval_s = 5.0);
  ~Progress();  // calls Finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Adds finished units. Call from one thread.
  void Add(int64_t n);
  // Final redraw / summary line; later calls do nothing.
  void Finish();

  Mode mode() const { return mode_; }
  int64_t done() const { return done_.load(); }

  // "1:02:03" / "2:03" for ETAs; "?" for a negative or non-finite value.
  static std::string FormatDuration(double seconds);
  // The line drawn for `done` of `total` after `elapsed_s` seconds (no "\r"); for tests.
  static std::string Line(const std::string& label, int64_t done, int64_t total, double elapsed_s, bool bar);

 private:
  void Tick();
  void Draw(bool final);  // caller holds mu_
  double Elapsed() const;

  std::string label_;
  int64_t total_;
  std::FILE* out_;
  Mode mode_;
  double log_interval_s_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> done_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool finished_ = false;
  double last_line_s_ = 0.0;
  int last_decile_ = 0;
  size_t last_width_ = 0;
  std::thread ticker_;
};

}  // namespace mamba2
