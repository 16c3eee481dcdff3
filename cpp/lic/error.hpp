// lic::Error: the one exception type of the runtime (bad model file, bad input, ...).
#pragma once

#include <stdexcept>
#include <string>

namespace lic {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace lic
