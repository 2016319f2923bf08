// The main() shared by gtest binaries that run alone or under `mpirun -np N`: it starts the process world (MPI
// under a launcher), uses one intra-op thread per rank, lets only rank 0 write the XML report and the full console
// output (other ranks print their failures with a rank prefix), and exits non-zero on every rank if any rank failed.
#pragma once

#include "trainer/runtime/world.h"

namespace aligntrain::testing {

// The world main() started; valid inside tests.
const runtime::World& world();

// Whether `flag` (e.g. "--cuda") is among the arguments gtest did not consume.
bool has_flag(const char* flag);

}  // namespace aligntrain::testing
