"""Repository rule for Apache Arrow's C++ Parquet reader, from the pip `pyarrow` wheel (as LibTorch comes from the
torch wheel): its include/ folder and its libarrow.so.N / libparquet.so.N, linked by absolute path with an rpath.

pyarrow is found, in order, at $PYARROW_DIR, at <workspace>/.venv/lib/python3*/site-packages/pyarrow (what
scripts/setup.sh creates), or wherever `python3 -c 'import pyarrow'` points. Arrow's headers need C++20: only the
translation units that include them (data/parquet_rows.cc) are compiled as C++20.
"""

def _find_pyarrow(ctx):
    env = ctx.os.environ.get("PYARROW_DIR", "")
    if env:
        return ctx.path(env)
    venv_lib = ctx.path(Label("//:WORKSPACE")).dirname.get_child(".venv").get_child("lib")
    if venv_lib.exists:
        for py in venv_lib.readdir():
            cand = py.get_child("site-packages").get_child("pyarrow")
            if cand.get_child("include").get_child("parquet").exists:
                return cand
    res = ctx.execute(["python3", "-c", "import pyarrow, os; print(os.path.dirname(pyarrow.__file__))"])
    if res.return_code == 0 and res.stdout.strip():
        return ctx.path(res.stdout.strip())
    fail("pyarrow not found: run ./scripts/setup.sh (its .venv has the pinned pyarrow) or set --repo_env=PYARROW_DIR=<site-packages>/pyarrow")

def _versioned(pa, name):
    # The wheel ships libNAME.so.<major><minor> (e.g. libarrow.so.2600) and no unversioned link.
    for entry in pa.readdir():
        base = entry.basename
        if base.startswith(name + ".so.") and base[len(name) + 4:].isdigit():
            return base
    fail("pyarrow at %s has no %s.so.<version>" % (pa, name))

def _arrow_impl(ctx):
    pa = _find_pyarrow(ctx)
    ctx.symlink(pa.get_child("include"), "include")
    arrow = _versioned(pa, "libarrow")
    parquet = _versioned(pa, "libparquet")
    lib = str(pa)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "parquet",
    hdrs = glob(["include/arrow/**/*.h", "include/parquet/**/*.h"]),
    includes = ["include"],
    linkopts = ["{lib}/{parquet}", "{lib}/{arrow}", "-Wl,-rpath,{lib}"],
)
""".format(lib = lib, arrow = arrow, parquet = parquet))

arrow_repository = repository_rule(
    implementation = _arrow_impl,
    environ = ["PYARROW_DIR"],
    local = True,
)
