// `nsa bench`: placeholder, filled in below.
#include "command.hpp"
