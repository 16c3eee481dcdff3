// lic::Error: the one exception type of lic2cpp's C++ code (runtime and codec alike): a
// bad model file, a corrupt bitstream, an unreadable image, an absurd size. The message
// is one line meant for the user; programs print it and exit non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace lic {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace lic
