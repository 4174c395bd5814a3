"""The optional native part of the client: local frames read and hashed outside the GIL
(src/framereader.c). Without a C compiler the package installs without it and reads
local frames on the consumer's thread."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mbdata_client._framereader", ["src/framereader.c"], optional=True, extra_compile_args=["-O2", "-Wall", "-Wextra"])])
