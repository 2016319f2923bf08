"""`rank_tests`: one gtest binary run twice, alone (a world of one) and under `mpirun -np 2`."""

def rank_tests(name, binary, size = "small", mpi_size = "medium"):
    """Declares <name>_single_test (run alone) and <name>_mpi_test (2 ranks, tagged mpi) for `binary`."""
    # Two ranks keep both cores busy: "cpu:2" keeps Bazel from running another test beside them.
    for suffix, ranks, test_size, tags in [("single", "1", size, []), ("mpi", "2", mpi_size, ["cpu:2", "mpi"])]:
        native.sh_test(
            name = "%s_%s_test" % (name, suffix),
            size = test_size,
            srcs = ["//test/runtime:run_ranks.sh"],
            args = [ranks, "$(location %s)" % binary],
            data = [binary],
            tags = tags,
        )
