"""Install mqformer_d2 and, when CUDA can be used, compile its `mqformer_d2._C` extension.

The extension holds the CUDA forward/backward kernels of multi-scale deformable attention. It is
built when torch sees a GPU, or when FORCE_CUDA=1 and a CUDA toolkit is found (compiling needs no
GPU). Without it the package is pure Python and uses the PyTorch reference of the op.

Environment:
    FORCE_CUDA=1            build the CUDA extension even though no GPU is visible
    CUDA_HOME=/path         CUDA toolkit root (the folder whose bin/ holds nvcc and include/ cuda.h)
    TORCH_CUDA_ARCH_LIST    target architectures; defaults to "9.0" (Hopper) when no GPU is visible
"""
import glob
import os
import re
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(ROOT, "mqformer_d2", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def is_toolkit_root(path):
    return bool(path) and os.path.isfile(os.path.join(path, "bin", "nvcc")) and os.path.isfile(
        os.path.join(path, "include", "cuda.h")
    )


def find_cuda_home():
    """The CUDA toolkit root, or None.

    torch guesses the root from `which nvcc`; on machines where `nvcc` is a wrapper script (e.g.
    /usr/local/bin/nvcc) that guess is wrong, so we look for a real toolkit ourselves.
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    return next((c for c in candidates if is_toolkit_root(c)), None)


def cuda_extension_modules():
    """`[CUDAExtension]` when CUDA kernels can be built here, else `[]` (with the reason printed)."""
    import torch

    force = os.environ.get("FORCE_CUDA", "0") == "1"
    if not (torch.cuda.is_available() or force):
        print("mqformer_d2: no GPU visible and FORCE_CUDA!=1: skipping the CUDA extension")
        return []
    cuda_home = find_cuda_home()
    if cuda_home is None:
        print("mqformer_d2: no CUDA toolkit found (set CUDA_HOME): skipping the CUDA extension")
        return []
    # torch.utils.cpp_extension reads CUDA_HOME when first imported.
    os.environ["CUDA_HOME"] = cuda_home
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # Without a visible GPU torch cannot pick an architecture (and crashes trying).
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"
    from torch.utils.cpp_extension import CUDAExtension

    source_dir = os.path.join("mqformer_d2", "csrc")
    sources = sorted(glob.glob(os.path.join(source_dir, "**", "*.cpp"), recursive=True))
    sources += sorted(glob.glob(os.path.join(source_dir, "**", "*.cu"), recursive=True))
    print(f"mqformer_d2: building the CUDA extension with {cuda_home} "
          f"for arch {os.environ.get('TORCH_CUDA_ARCH_LIST', 'of the visible GPU')}")
    return [
        CUDAExtension(
            name="mqformer_d2._C",
            sources=sources,
            include_dirs=[os.path.abspath(source_dir)],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-lineinfo"]},
        )
    ]


def build_settings():
    ext_modules = cuda_extension_modules()
    if not ext_modules:
        return {}
    from torch.utils.cpp_extension import BuildExtension

    return {"ext_modules": ext_modules, "cmdclass": {"build_ext": BuildExtension}}


setup(
    name="mqformer_d2",
    version=read_version(),
    description="MQ-Former (Mixed-Query Transformer) segmentation as a Detectron2 plugin",
    packages=find_packages(exclude=("tests", "tests.*", "configs", "datasets", "benchmarks")),
    # The tiny open_clip text-tower config used by the CPU configs and the tests.
    package_data={"mqformer_d2.modeling.text_encoder": ["model_configs/*.json"]},
    python_requires=">=3.9",
    # Dependencies are installed (pinned) by scripts/setup_env.sh; see requirements/.
    install_requires=[],
    **build_settings(),
)
