"""Native part of the pip install: the BP kernel (lib/bp_kernel.c, docs/fec.md) and the
integer LM step (lib/lm_kernel.c, docs/lm-compression.md).

Everything else is declared in pyproject.toml. The kernels are loaded with ctypes by
genjscc/core/fec/_native.py and genjscc/core/source/_lm_native.py; they are optional: without a C compiler the install still succeeds
and the BP decoders fall back to torch (logged once at the first CPU decode), lm-small to its
torch step (the same integers, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "genjscc.core.fec._bp_kernel",
            sources=["lib/bp_kernel.c"],
            depends=["lib/bp_lanes.h"],
            define_macros=[("GJ_PYTHON_MODULE", "1")],
            # -O3 for the vector loops; no -march: bp_kernel.c dispatches on the CPU at load
            extra_compile_args=["-O3", "-std=gnu11", "-Wno-psabi"],
            extra_link_args=["-pthread"],
            libraries=["m"],
            optional=True,
        ),
        Extension(
            "genjscc.core.source._lm_kernel",
            sources=["lib/lm_kernel.c"],
            define_macros=[("GJ_PYTHON_MODULE", "1")],
            # no -march: the AVX2 code has a target attribute and is chosen at run time
            extra_compile_args=["-O3", "-std=gnu11"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
    ]
)
