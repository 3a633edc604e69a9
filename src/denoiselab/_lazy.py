"""Names a package offers, imported on first use (PEP 562): the command line imports
``denoiselab`` and ``denoiselab.runs.folder`` and must not wait for torch."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]], namespace: dict):
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose ``exports`` map a submodule
    (".config") to the names it offers; ``namespace`` is the package's ``globals()``, where a
    name is kept once loaded."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *module_of])

    return __getattr__, __dir__, sorted(module_of)
