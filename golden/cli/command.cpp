// Dispatch of `nsa <command> [args]` to the command of that name (command.hpp).
#include "command.hpp"

#include <cstdio>
#include <exception>

namespace nsa::cli {
namespace {

void usage(const std::vector<Command>& commands) {
  std::fprintf(stderr, "usage: nsa <command> [args]\n\ncommands:\n");
  for (const auto& c : commands)
    std::fprintf(stderr, "  %-8s %s\n", c.name.c_str(), c.summary.c_str());
  std::fprintf(stderr, "\n`nsa <command> --help` describes one command.\n");
}

}  // namespace

int run_program(const std::vector<Command>& commands, int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage(commands);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  for (const auto& c : commands) {
    if (name != c.name) continue;
    try {
      return c.run(std::vector<std::string>(argv + 2, argv + argc));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "nsa %s: error: %s\n", c.name.c_str(), e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "nsa: unknown command '%s'\n\n", name.c_str());
  usage(commands);
  return 2;
}

}  // namespace nsa::cli
