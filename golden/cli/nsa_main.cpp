// The `nsa` program: the commands of every component's CLI library, in the order the usage lists
// them, and the implementations `nsa verify` checks. A new command or implementation is added here
// (and its library linked in golden/CMakeLists.txt).
#include <utility>
#include <vector>

#include "command.hpp"
#include "cuda_cli.hpp"
#include "fuzz_cli.hpp"
#include "golden_cli.hpp"
#include "implementations.hpp"

int main(int argc, char** argv) {
  std::vector<nsa::cli::Implementation> implementations = nsa::cli::reference_implementations();
  implementations.push_back(nsa::cli::cuda_implementation());
  const std::vector<nsa::cli::Command> commands = {
      nsa::cli::golden_command(),
      nsa::cli::verify_command(std::move(implementations)),
      nsa::cli::bench_command(),
      nsa::cli::fuzz_command(),
  };
  return nsa::cli::run_program(commands, argc, argv);
}
