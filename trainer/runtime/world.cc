// See world.h.
#include "trainer/runtime/world.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>

namespace aligntrain::runtime {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

World::World(int* argc, char*** argv) {
  if (!launched_by_mpi()) {
    // srun without a PMI plugin (`--mpi=none`, Slurm's default MpiDefault) starts N processes that know nothing of
    // each other: each would train alone, all into the same output folder. Refuse (exit 2, usage).
    const char* tasks = std::getenv("SLURM_STEP_NUM_TASKS");
    if (tasks != nullptr && std::atoi(tasks) > 1) {
      const char* procid = std::getenv("SLURM_PROCID");
      if (procid == nullptr || std::atoi(procid) == 0) {
        std::fprintf(stderr,
                     "error: started by srun as one of %s tasks without MPI process management (no PMIx or PMI "
                     "variables); launch with `srun --mpi=pmix`\n",
                     tasks);
      }
      std::exit(2);
    }
    return;
  }
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "error: MPI_Init_thread failed\n");
    std::exit(1);
  }
  mpi_ = true;
  // Errors from MPI calls come back as codes so they can be reported with context instead of a bare abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

World::~World() {
  if (mpi_ && !finalized_) {
    finalized_ = true;
    MPI_Finalize();
  }
}

bool World::all_ok(bool ok) const {
  if (!mpi_) return ok;
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

int World::max_over_ranks(int value) const {
  if (!mpi_) return value;
  int out = value;
  MPI_Allreduce(&value, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

int World::broadcast_from_root(int value) const {
  if (mpi_) MPI_Bcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return value;
}

void World::barrier() const {
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
}

void World::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

void World::exit(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_ && !finalized_) {
    finalized_ = true;
    MPI_Finalize();
  }
  std::exit(code);
}

}  // namespace aligntrain::runtime
