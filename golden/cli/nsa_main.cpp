// Entry point of `nsa`: dispatches to the registered subcommands.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "command.hpp"

namespace nsa::cli {

std::vector<Command>& registry() {
  static std::vector<Command> cmds;
  return cmds;
}

bool register_command(const Command& cmd) {
  registry().push_back(cmd);
  return true;
}

const std::vector<Command>& commands() { return registry(); }

}  // namespace nsa::cli

namespace {

void usage() {
  std::fprintf(stderr, "usage: nsa <command> [args]\n\ncommands:\n");
  for (const auto& c : nsa::cli::commands()) std::fprintf(stderr, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(stderr, "\n`nsa <command> --help` describes one command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  for (const auto& c : nsa::cli::commands()) {
    if (name != c.name) continue;
    try {
      return c.run(std::vector<std::string>(argv + 2, argv + argc));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "nsa %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "nsa: unknown command '%s'\n\n", name.c_str());
  usage();
  return 2;
}
