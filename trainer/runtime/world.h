// The process world: MPI start-up and shut-down, rank, world size and node-local rank, and the two ways a job
// ends on error (an agreed exit when every rank reaches the same check, MPI_Abort when one rank fails alone).
//
// A process started without a launcher (no mpirun) never calls MPI: world size 1, rank 0. This keeps a
// single-process run working on machines without an MPI runtime configured.
#pragma once

#include <string>

namespace aligntrain::runtime {

class World {
 public:
  // Initialises MPI when launched by mpirun/srun (detected from the launcher's environment), else runs alone.
  // One of several srun tasks without PMIx/PMI (srun --mpi=none) exits with code 2 and an error (task 0 prints it).
  World(int* argc, char*** argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  bool uses_mpi() const { return mpi_; }
  bool is_root() const { return rank_ == 0; }

  // Collective: true on every rank iff `ok` is true on every rank. Every rank must call it.
  bool all_ok(bool ok) const;
  // Collective: the maximum of `value` over ranks.
  int max_over_ranks(int value) const;
  // Collective: rank 0's `value` on every rank.
  int broadcast_from_root(int value) const;
  // Collective: a barrier (no-op alone).
  void barrier() const;

  // Ends the whole job now with `code` (MPI_Abort under MPI; std::exit alone). Use when a rank fails on its own
  // and the others may be blocked in a collective.
  [[noreturn]] void abort(int code) const;

  // Finalises MPI (if used) and exits with `code`. Every rank must call it (e.g. after all_ok()).
  [[noreturn]] void exit(int code);

 private:
  bool mpi_ = false;
  bool finalized_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
};

// True when the environment says a launcher (OpenMPI's mpirun, PMIx, Slurm's srun with PMI) started this process.
bool launched_by_mpi();

}  // namespace aligntrain::runtime
