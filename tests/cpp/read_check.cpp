// The C++ readers of the model formats, one file after another, for the differential test
// against the Python readers (tests/test_reader_differential.py).
//
//   read_check licm|lice FILE...    prints, per file, "ok" or "error: MESSAGE"
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "codec/entropy/context_tables.hpp"
#include "lic/model_format.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "licm") != 0 && std::strcmp(argv[1], "lice") != 0)) {
    std::fprintf(stderr, "usage: read_check licm|lice FILE...\n");
    return 2;
  }
  const bool licm = std::strcmp(argv[1], "licm") == 0;
  for (int i = 2; i < argc; ++i) {
    try {
      const std::vector<std::uint8_t> d = lic::read_file(argv[i]);
      if (licm)
        lic::parse_model(d.data(), d.size());
      else
        lic::codec::ContextTables::from_bytes(d.data(), d.size());
      std::printf("ok\n");
    } catch (const lic::Error& e) {
      std::printf("error: %s\n", e.what());
    }
  }
  return 0;
}
