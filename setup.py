"""Build of the optional C accelerator; all other metadata is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: without a C compiler the collector runs its pure-Python fast path
        Extension("host_tools.collector._fastpath", ["host_tools/collector/_fastpath.c"],
                  optional=True, extra_compile_args=["-O2", "-Wall", "-Wextra",
                                                     "-Wno-unused-parameter"]),
        # optional, Linux: recvmmsg/sendmmsg for the server; plain socket calls without it
        Extension("host_tools.collector._batchio", ["host_tools/collector/_batchio.c"],
                  optional=True, extra_compile_args=["-O2", "-Wall", "-Wextra",
                                                     "-Wno-unused-parameter"]),
    ],
)
