// Argument parsing for the golden and verify commands: "--name value" options, flags and
// positionals, each checked with a message naming the argument, its value and what is expected.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace nsa::cli {

// A bad command line; the command prints it and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // `with_value`: options taking a value; `flags`: options without one.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
       const std::set<std::string>& flags = {}) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
      const auto& a = argv[i];
      if (a.size() > 2 && a.rfind("--", 0) == 0) {
        std::string name = a, value;
        const auto eq = a.find('=');
        const bool inline_value = eq != std::string::npos;
        if (inline_value) {
          name = a.substr(0, eq);
          value = a.substr(eq + 1);
        }
        if (flags.count(name)) {
          if (inline_value) throw UsageError(name + " takes no value (got '" + value + "')");
          if (!flags_.insert(name).second) throw UsageError(name + " given twice");
          continue;
        }
        if (!with_value.count(name)) throw UsageError("unknown option " + name);
        if (!inline_value) {
          if (i + 1 >= argv.size()) throw UsageError(name + " needs a value");
          value = argv[++i];
        }
        if (!values_.emplace(name, value).second) throw UsageError(name + " given twice");
      } else {
        positional_.push_back(a);
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) || flags_.count(name); }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  const std::vector<std::string>& positional() const { return positional_; }

  // An unsigned 64-bit integer option (decimal).
  uint64_t get_u64(const std::string& name, uint64_t fallback) const {
    if (!values_.count(name)) return fallback;
    const auto& s = values_.at(name);
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || *end != '\0' || errno == ERANGE)
      throw UsageError(name + " = '" + s + "': expected an unsigned integer below 2^64");
    return v;
  }
  int64_t get_int(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
    if (!values_.count(name)) return fallback;
    const auto& s = values_.at(name);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
      throw UsageError(name + " = '" + s + "': expected an integer in [" + std::to_string(lo) +
                       ", " + std::to_string(hi) + "]");
    return v;
  }
  double get_double(const std::string& name, double fallback, double lo) const {
    if (!values_.count(name)) return fallback;
    const auto& s = values_.at(name);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(v >= lo) || v > 1e300)
      throw UsageError(name + " = '" + s + "': expected a finite number >= " + std::to_string(lo));
    return v;
  }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace nsa::cli
