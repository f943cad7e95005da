// The CPU property executable: fixed RapidCheck defaults, then Catch.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "../rc_main.hpp"

int main(int argc, char** argv) {
  nsa::props::set_default_rc_params();
  return Catch::Session().run(argc, argv);
}
