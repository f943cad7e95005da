// The `nsa` program's subcommand registry. Each component adds its subcommands from its own
// source file (golden: golden, verify; kernels: bench; fuzz: fuzz) with NSA_REGISTER_COMMAND;
// the CLI only parses arguments and prints, the logic lives in the libraries.
#pragma once

#include <string>
#include <vector>

namespace nsa::cli {

// Runs a subcommand on its arguments (argv after the subcommand name); returns the exit code.
// Bad arguments: print a message naming the argument to stderr and return 2.
using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};

bool register_command(const Command& cmd);
const std::vector<Command>& commands();

}  // namespace nsa::cli

#define NSA_CLI_CONCAT_(a, b) a##b
#define NSA_CLI_CONCAT(a, b) NSA_CLI_CONCAT_(a, b)
#define NSA_REGISTER_COMMAND(name, summary, fn)                     \
  static const bool NSA_CLI_CONCAT(nsa_cli_registered_, __LINE__) = \
      ::nsa::cli::register_command({name, summary, fn})
