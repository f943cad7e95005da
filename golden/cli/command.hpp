// A subcommand of the `nsa` program. Each component's CLI library returns the commands it
// provides from a function (golden: golden, verify; kernels: bench; fuzz: fuzz), and nsa_main.cpp,
// which assembles the program, lists them. The list is explicit on purpose: objects that register
// themselves from static initializers in a static library are dropped by the linker when nothing
// else refers to their file. The CLI only parses arguments and prints; the logic lives in the
// libraries.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace nsa::cli {

// Runs a subcommand on its arguments (argv after the subcommand name); returns the exit code.
// Bad arguments: print a message naming the argument to stderr and return 2.
using CommandFn = std::function<int(const std::vector<std::string>& args)>;

struct Command {
  std::string name;
  std::string summary;
  CommandFn run;
};

// The whole program: `argv[1]` names the command, the rest are its arguments. No command or an
// unknown one prints the usage (the commands and their summaries) and returns 2, `--help` prints it
// and returns 0; an exception out of a command is printed as "nsa <name>: error: ..." and
// returns 1.
int run_program(const std::vector<Command>& commands, int argc, char** argv);

}  // namespace nsa::cli
