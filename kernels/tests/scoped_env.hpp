// A kernel switch (an environment variable of docs/kernels.md, "Switches") set for the plans
// built in a scope, restored after it.
#pragma once

#include <cstdlib>
#include <string>

namespace nsa::cuda::test {

// Sets a kernel switch (docs/kernels.md) for the plans built in its scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) had_ = true, old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_, old_.c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

}  // namespace nsa::cuda::test
