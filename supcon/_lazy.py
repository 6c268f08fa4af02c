"""Package attributes imported on first use (PEP 562), so importing a package stays cheap.

`supcon.flags` needs `supcon.training.config` and `supcon.evaluation.corruption_params`, which are
TensorFlow-free; eager `__init__` imports of their packages would load TensorFlow before the flags
are even checked. A package lists `{public name: module}` and gets `__getattr__` / `__dir__`.
"""

import importlib


def exports(package, names):
    """`(__getattr__, __dir__)` for a package whose public names live in submodules.

    Args:
        package: str, the package's `__name__`.
        names: dict `{public name: module name}`; a module name equal to the public name's own
            submodule (`"supcon.losses"` for `"losses"`) exports the module itself.

    Returns:
        The two functions to assign in the package's `__init__`.
    """

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(names[name])
        return module if module.__name__ == f"{package}.{name}" else getattr(module, name)

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
