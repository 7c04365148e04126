"""Point the ros-jazzy-* wheels' CMake exports at this venv's Python and numpy headers.

The wheels were built elsewhere and their exported targets name the builder's include
directories, so CMake refuses to configure any interface package against them. Re-run after
every install of a ros-* message wheel: each brings the builder's paths again.
"""

import pathlib
import re
import sys
import sysconfig

import numpy

# The builder's CPython include dir and numpy's include dir, for any Python version.
BUILDER_PYTHON_INCLUDE = re.compile(r'/opt/python/cp\d+-cp\d+t?/include/python3\.\d+t?')
BUILDER_NUMPY_INCLUDE = re.compile(
    r'/opt/python/cp\d+-cp\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_)?core/include')


def fix_file(path: pathlib.Path, python_include: str, numpy_include: str) -> bool:
    """Rewrite one export file in place; return whether it changed."""
    text = path.read_text()
    fixed = BUILDER_NUMPY_INCLUDE.sub(numpy_include, text)
    fixed = BUILDER_PYTHON_INCLUDE.sub(python_include, fixed)
    if fixed == text:
        return False
    path.write_text(fixed)
    return True


def main() -> int:
    prefix = pathlib.Path(sys.prefix)
    python_include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    exports = sorted(prefix.glob('share/**/*_rosidl_generator_pyExport*.cmake'))
    changed = [p for p in exports if fix_file(p, python_include, numpy_include)]
    print(f'fix_ros_cmake_exports: {len(changed)} of {len(exports)} export files rewritten')
    return 0


if __name__ == '__main__':
    sys.exit(main())
