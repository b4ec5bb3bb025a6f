"""Import-only stand-ins for the NNCodec benchmark venv (.venv-nncodec), loaded by a .pth file.

NNCodec 2.1.3 imports torchvision, OpenCV, scikit-learn, torchmetrics and ptflops at module level
for its data sets, model zoo and evaluation, none of which its tensor coder (``nncodec.nnc``,
DeepCABAC) uses; the real torchvision would replace the pinned torch. Any import of those names
gets a module whose every attribute, and every call, gives another placeholder, so module-level
set-up code (transform pipelines) runs and does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

STANDINS = ("torchvision", "cv2", "sklearn", "torchmetrics", "ptflops")


class _Missing:
    """A placeholder: any attribute of it, and calling it, give another placeholder."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Missing:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> _Missing:
        return _Missing(f"{self._name}()")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (object,)

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return f"<stand-in {self._name}>"


class _StandInModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] not in STANDINS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0+stand-in"
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
    sys.meta_path.append(_Finder())
