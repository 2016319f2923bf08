"""Repository rules for LibTorch (from the pip `torch` wheel) and the optional CUDA + NCCL toolchain.

LibTorch is found, in order, at $TORCH_DIR, at <workspace>/.venv/lib/python3*/site-packages/torch (what
scripts/setup.sh creates), or wherever `python3 -c 'import torch'` points. The generated BUILD links by absolute
path with an rpath, so binaries run without LD_LIBRARY_PATH.

CUDA and NCCL are used when present (nvcc's toolkit at $CUDA_HOME or /usr/local/cuda, and the NCCL that the torch
wheel itself loads from site-packages/nvidia/nccl); the build works without them.
"""

def _workspace_root(ctx):
    return ctx.path(Label("//:WORKSPACE")).dirname

def _find_torch(ctx):
    env = ctx.os.environ.get("TORCH_DIR", "")
    if env:
        return ctx.path(env)
    venv_lib = _workspace_root(ctx).get_child(".venv").get_child("lib")
    if venv_lib.exists:
        for py in venv_lib.readdir():
            cand = py.get_child("site-packages").get_child("torch")
            if cand.get_child("include").exists:
                return cand
    res = ctx.execute(["python3", "-c", "import torch, os; print(os.path.dirname(torch.__file__))"])
    if res.return_code == 0 and res.stdout.strip():
        return ctx.path(res.stdout.strip())
    fail("LibTorch not found: run ./scripts/setup.sh (creates .venv with torch 2.11.0) or set --repo_env=TORCH_DIR=<site-packages>/torch")

def _torch_impl(ctx):
    torch = _find_torch(ctx)
    if not torch.get_child("lib").get_child("libtorch_cpu.so").exists:
        fail("LibTorch at %s has no lib/libtorch_cpu.so" % torch)
    # The wheel bundles its own fmt (v12) in include/fmt; spdlog is built against the system fmt, so leave torch's
    # copy out and let <fmt/...> resolve to the system headers.
    for entry in torch.get_child("include").readdir():
        if entry.basename != "fmt":
            ctx.symlink(entry, "include/" + entry.basename)
    lib = str(torch.get_child("lib"))
    site = torch.dirname
    rpath_link = []
    nvidia = site.get_child("nvidia")
    if nvidia.exists:
        for pkg in nvidia.readdir():
            if pkg.get_child("lib").exists:
                rpath_link.append("-Wl,-rpath-link," + str(pkg.get_child("lib")))
    has_cuda_lib = torch.get_child("lib").get_child("libtorch_cuda.so").exists
    libs = ["-ltorch", "-ltorch_cpu", "-lc10"]
    if has_cuda_lib:
        # Keep libtorch_cuda as a dependency even though nothing references it by symbol: it registers the CUDA
        # backend at load time (torch::cuda::is_available()).
        libs = ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"] + libs
    # libtorch.so exports its own copy of 64 std::filesystem functions (built against another libstdc++);
    # binding our calls to it crashes (remove_all on a non-empty folder segfaults). Listing libstdc++ first in
    # DT_NEEDED makes the dynamic linker resolve those symbols to the system libstdc++.
    first = ["-Wl,--push-state,--no-as-needed", "-lstdc++", "-Wl,--pop-state"]
    linkopts = first + ["-L" + lib, "-Wl,-rpath," + lib] + rpath_link + libs
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "torch",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"]),
    includes = ["include", "include/torch/csrc/api/include"],
    linkopts = {linkopts},
)
""".format(linkopts = repr(linkopts)))
    ctx.file("torch_info.bzl", "TORCH_LIB = %r\nTORCH_HAS_CUDA = %r\n" % (lib, has_cuda_lib))

torch_repository = repository_rule(
    implementation = _torch_impl,
    environ = ["TORCH_DIR"],
    local = True,
)

def _nccl_impl(ctx):
    cuda_home = ctx.os.environ.get("CUDA_HOME", "/usr/local/cuda")
    cuda = ctx.path(cuda_home)
    nccl_h = None
    for cand in [cuda.get_child("include").get_child("nccl.h"), ctx.path("/usr/include/nccl.h")]:
        if cand.exists:
            nccl_h = cand
            break

    # The NCCL that torch loads: <site-packages>/nvidia/nccl/lib/libnccl.so.2 (one copy per process).
    nccl_lib = None
    torch_dir = ctx.os.environ.get("TORCH_DIR", "")
    roots = []
    if torch_dir:
        roots.append(ctx.path(torch_dir).dirname)
    venv_lib = ctx.path(Label("//:WORKSPACE")).dirname.get_child(".venv").get_child("lib")
    if venv_lib.exists:
        for py in venv_lib.readdir():
            roots.append(py.get_child("site-packages"))
    for root in roots:
        cand = root.get_child("nvidia").get_child("nccl").get_child("lib")
        if cand.get_child("libnccl.so.2").exists:
            nccl_lib = cand
            break

    if nccl_h == None or nccl_lib == None:
        ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])
# CUDA/NCCL not found at build time: the NCCL backend is compiled out.
cc_library(name = "nccl")
""")
        ctx.file("nccl_info.bzl", "HAS_NCCL = False\n")
        return
    ctx.symlink(nccl_h.dirname, "cuda_include")
    lib = str(nccl_lib)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])
cc_library(
    name = "nccl",
    hdrs = glob(["cuda_include/**"]),
    includes = ["cuda_include"],
    defines = ["ALIGNTRAIN_WITH_NCCL=1"],
    linkopts = ["{lib}/libnccl.so.2", "-Wl,-rpath,{lib}"],
)
""".format(lib = lib))
    ctx.file("nccl_info.bzl", "HAS_NCCL = True\n")

nccl_repository = repository_rule(
    implementation = _nccl_impl,
    environ = ["CUDA_HOME", "TORCH_DIR"],
    local = True,
)
