"""Native part of the pip install: the BP kernel (lib/bp_kernel.c, see DESIGN.md "lib/").

Everything else is declared in pyproject.toml. The kernel is loaded with ctypes by
genjscc/core/fec/_native.py; it is optional: without a C compiler the install still succeeds
and the BP decoders fall back to torch (logged once at the first CPU decode).
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
        )
    ]
)
