// How a target reports a finding: a message on stderr, then abort(), which libFuzzer records as
// a crash (and saves the input) and which fails a ctest replay.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace nsa::fuzz {

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace nsa::fuzz

// The message is only built when the check fails (checks sit in per-element loops).
#define NSA_FUZZ_EXPECT(cond, message)          \
  do {                                          \
    if (!(cond)) ::nsa::fuzz::finding(message); \
  } while (0)
