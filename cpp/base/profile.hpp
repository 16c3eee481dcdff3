// LIC_PROFILE=1 in the environment: named scopes print their wall time to stderr
// ("lic profile: <name> <ms> ms (at <ms since the process started>) rss <MB>"), for finding where a
// program's time goes. Off by default, and then a scope costs one branch.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace lic {

inline bool profiling() {
  static const bool on = std::getenv("LIC_PROFILE") != nullptr;
  return on;
}

// Milliseconds since the first call (the programs call it first thing in main).
inline double profile_clock_ms() {
  static const auto start = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The process's resident memory now, in MB (10^6 bytes); -1 where /proc does not say.
inline double resident_mb() {
  long pages = 0, resident = -1;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    std::fclose(f);
  }
  return resident < 0 ? -1.0 : static_cast<double>(resident) * 4096.0 / 1e6;
}

class ProfileScope {
 public:
  explicit ProfileScope(const char* name) : name_(name), t0_(profiling() ? profile_clock_ms() : 0) {}
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;
  ~ProfileScope() {
    if (!profiling()) return;
    const double t1 = profile_clock_ms();
    const double rss = resident_mb();
    if (rss >= 0)
      std::fprintf(stderr, "lic profile: %-24s %8.2f ms (at %.2f ms) rss %.1f MB\n", name_,
                   t1 - t0_, t1, rss);
    else
      std::fprintf(stderr, "lic profile: %-24s %8.2f ms (at %.2f ms)\n", name_, t1 - t0_, t1);
  }

 private:
  const char* name_;
  double t0_;
};

}  // namespace lic
