"""Names a package exports on first use (PEP 562), so that importing it loads none of its heavy modules."""

import importlib


def lazy_exports(package, exports, renamed=None):
    """``(__getattr__, __dir__, __all__)`` of ``package`` whose names ``exports`` ({submodule: names}) import their
    submodule on first use; any submodule is an attribute too; ``renamed``: {exported name: its name in the submodule}."""
    module_of = {name: module for module, names in exports.items() for name in names}
    renamed = renamed or {}

    def __getattr__(name):
        if name in module_of:
            return getattr(importlib.import_module(f"{package}.{module_of[name]}"), renamed.get(name, name))
        try:
            return importlib.import_module(f"{package}.{name}")  # a submodule: mindgap.training.callbacks
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(module_of))

    return __getattr__, __dir__, sorted(module_of)
