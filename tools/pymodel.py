"""Moved to python/picoformer/pymodel.py, where the `picoformer` package's `export` uses it; this
shim keeps `import pymodel` working for the scripts in tools/ (it loads that file by path, so the
package need not be installed)."""
import importlib.util as _util
import os as _os
import sys as _sys

_spec = _util.spec_from_file_location(
    __name__, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "python", "picoformer", "pymodel.py"))
_module = _util.module_from_spec(_spec)
_sys.modules[__name__] = _module
_spec.loader.exec_module(_module)
