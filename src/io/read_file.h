// Whole-file reads for small inputs (configs, prompts, text to score); weights use MappedFile.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "core/status.h"

namespace mamba2 {

inline Result<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::Error(path + ": read error");
  return ss.str();
}

}  // namespace mamba2
