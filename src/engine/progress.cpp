#include "engine/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace mamba2 {

Progress::Progress(std::string label, int64_t total, std::FILE* out, Mode mode, double log_interval_s)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 0)),
      out_(out),
      mode_(mode),
      log_interval_s_(log_interval_s),
      start_(std::chrono::steady_clock::now()) {
  if (mode_ == Mode::kAuto) mode_ = (out_ && isatty(fileno(out_))) ? Mode::kTerminal : Mode::kLines;
  if (!out_) mode_ = Mode::kOff;
  if (mode_ != Mode::kOff) ticker_ = std::thread([this] { Tick(); });
}

Progress::~Progress() { Finish(); }

double Progress::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

std::string Progress::Line(const std::string& label, int64_t done, int64_t total, double elapsed_s, bool bar) {
  const double frac = total > 0 ? std::min(1.0, double(done) / double(total)) : 0.0;
  const double rate = elapsed_s > 0 ? double(done) / elapsed_s : 0.0;
  const double eta = rate > 0 ? double(total - done) / rate : -1.0;
  std::string line = label;
  line.push_back(' ');
  if (bar) {
    constexpr int kWidth = 24;
    const int filled = int(frac * kWidth);
    line.push_back('[');
    line.append(size_t(filled), '#');
    line.append(size_t(kWidth - filled), '.');
    line.append("] ");
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%5.1f%% %lld/%lld tokens, %.1f tok/s, elapsed %s, ETA %s", 100.0 * frac,
                (long long)done, (long long)total, rate, FormatDuration(elapsed_s).c_str(),
                done > 0 ? FormatDuration(eta).c_str() : "?");
  return line + buf;
}

void Progress::Draw(bool final) {
  const double t = Elapsed();
  const int64_t done = done_.load();
  if (mode_ == Mode::kTerminal) {
    std::string line = Line(label_, done, total_, t, /*bar=*/true);
    const size_t width = line.size();
    if (width < last_width_) line.append(last_width_ - width, ' ');  // erase the longer old line
    last_width_ = width;
    std::fprintf(out_, "\r%s%s", line.c_str(), final ? "\n" : "");
  } else {
    if (final) {
      std::fprintf(out_, "%s done: %lld tokens in %.2f s (%.1f tok/s)\n", label_.c_str(), (long long)done, t,
                   t > 0 ? double(done) / t : 0.0);
    } else {
      std::fprintf(out_, "%s\n", Line(label_, done, total_, t, /*bar=*/false).c_str());
    }
  }
  std::fflush(out_);
  last_line_s_ = t;
}

void Progress::Tick() {
  // The terminal line is redrawn twice a second; plain lines come every log_interval_s.
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(mode_ == Mode::kTerminal ? 500 : 250));
    if (stop_) break;
    if (mode_ == Mode::kTerminal || Elapsed() - last_line_s_ >= log_interval_s_) Draw(false);
  }
}

void Progress::Add(int64_t n) {
  const int64_t done = done_.fetch_add(n) + n;
  if (mode_ != Mode::kLines || total_ <= 0) return;
  const int decile = int(std::min<int64_t>(10, done * 10 / total_));
  std::lock_guard<std::mutex> lock(mu_);
  if (decile > last_decile_ && decile < 10) Draw(false);  // 100% is the final line's
  last_decile_ = std::max(last_decile_, decile);
}

void Progress::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (mode_ == Mode::kOff) return;
  std::lock_guard<std::mutex> lock(mu_);
  Draw(true);
}

}  // namespace mamba2
