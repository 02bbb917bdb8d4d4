"""A user's class from its dotted path: import, ``__init__`` arguments and annotations, Lightning package."""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from typing import Any, Optional

from tunecv.config.schema import CLASS_SECTIONS
from tunecv.errors import ConfigError


def import_class(path: str, key: str) -> Any:
    """Import ``package.module.Name``; a :class:`ConfigError` naming ``key`` when it fails."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"`{key}` must be an importable dotted path such as my_pkg.models.Net; got {path!r} (a short "
                          f"name resolves only under the project's own CLI, whose imports define it: --cli main.py)")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"`{key}` must be importable; got {path!r}: {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"`{key}` must be importable; got {path!r}: module {module_name!r} has no "
                          f"attribute {attr!r}") from None


def init_parameters(cls: Any) -> Optional[set[str]]:
    """Names accepted by ``cls(...)``, or ``None`` when it takes ``**kwargs`` (anything goes)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else [cls]:
        init = klass.__init__ if inspect.isclass(cls) else klass
        if init is object.__init__:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        has_var_kw = False
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
            elif p.kind is not p.VAR_POSITIONAL:
                names.add(p.name)
        if not has_var_kw:
            return names
    return names or None


def _section_bases(section: str) -> tuple[type, ...]:
    import lightning as L  # lazy: heavy; importing tunecv.config stays light
    from lightning.pytorch.cli import LRSchedulerTypeTuple
    from torch.optim import Optimizer

    return {"model": (L.LightningModule,), "data": (L.LightningDataModule,), "optimizer": (Optimizer,),
            "lr_scheduler": LRSchedulerTypeTuple}[section]


_SECTION_BASES = {name: functools.partial(_section_bases, name) for name in CLASS_SECTIONS}

_SHORT_MODULES = {"optimizer": "torch.optim", "lr_scheduler": "torch.optim.lr_scheduler"}


def _resolve_class(class_path: str, section: str) -> Any:
    if "." not in class_path and section in _SHORT_MODULES:
        class_path = f"{_SHORT_MODULES[section]}.{class_path}"
    return import_class(class_path, f"{section}.class_path")


def _annotation(fn: Any, name: str) -> Any:
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:
        hints = {}
    if name in hints:
        return hints[name]
    try:
        target = fn.__init__ if inspect.isclass(fn) else fn
        return inspect.signature(target).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return inspect.Parameter.empty


def _lightning_package(class_path: Any) -> Optional[str]:
    """``lightning.pytorch`` or ``pytorch_lightning``: the package whose base class ``class_path`` derives from."""
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    try:
        cls = import_class(class_path, "class_path")
    except ConfigError:
        return None
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else []:
        mod = klass.__module__
        if mod.startswith("pytorch_lightning."):
            return "pytorch_lightning"
        if mod.startswith("lightning.pytorch."):
            return "lightning.pytorch"
    return None
