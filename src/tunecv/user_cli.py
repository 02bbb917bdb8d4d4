"""The project's own LightningCLI (``cli:``): its parser, its links, its defaults, its imports.

A project keeps its CLI in code: a ``LightningCLI`` subclass (``add_arguments_to_parser``,
``link_arguments``, ``parser_kwargs={"default_config_files": [...]}``) or an entry point whose
``LightningCLI(MyModel, MyDataModule, ...)`` call fixes classes and arguments. ``cli:`` names either:

- a class: ``my_project.cli.MyCLI`` (a subclass of ``lightning.pytorch.cli.LightningCLI`` or of
  ``pytorch_lightning.cli.LightningCLI``);
- a module or a file that calls ``LightningCLI(...)`` when run as a script: ``my_project.main`` or
  ``main.py``. tunecv runs it as ``python main.py`` would, and stops it at the moment the CLI would
  start parsing: that call's class and arguments are the project's CLI. Nothing is fitted.

tunecv then builds **that** CLI's parser (``run=False``, so ``fit``'s own keys are top-level as in
``fit --print_config``; per-subcommand ``parser_kwargs={"fit": ...}`` apply), adds its own keys
(``cv``, ``split``, ``tune``, executors ...) to it, and for every run instantiates model, data module,
callbacks, loggers and plugins through that CLI (its ``before_instantiate_classes``, instantiators,
links applied on instantiation, ``trainer_defaults`` callbacks, optimizer sections), as
``python main.py fit`` would. The Trainer itself is tunecv's: it keeps the CLI's trainer arguments and
adds the run's devices, checkpoints and loggers.

Each process resolves the CLI again (cached per process), so pool workers and cluster jobs see the same
imports. Part of the config layer: imports lightning only when a ``cli`` is named.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import runpy
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunecv.errors import ConfigError

__all__ = ["BuiltRun", "CLISpec", "build_run", "cli_parser", "resolve_cli"]

PACKAGES = ("lightning.pytorch", "pytorch_lightning")


class _Captured(BaseException):
    """Raised by the patched ``LightningCLI.__init__``: the call that would have started the CLI."""

    def __init__(self, cli: Any, kwargs: dict) -> None:
        super().__init__("LightningCLI call captured")
        self.cls = type(cli)
        self.kwargs = kwargs
        self.state = dict(vars(cli))  # what a subclass's __init__ set before calling LightningCLI.__init__


class _ParserReady(BaseException):
    def __init__(self, parser: Any) -> None:
        super().__init__("parser ready")
        self.parser = parser


@dataclass(frozen=True)
class CLISpec:
    """A project's CLI: its class, the arguments of its ``LightningCLI(...)`` call, its package."""

    name: str
    cls: type
    kwargs: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    package: str = "lightning.pytorch"

    @property
    def base(self) -> type:
        return importlib.import_module(f"{self.package}.cli").LightningCLI


@dataclass
class BuiltRun:
    """What the project's CLI built for one run (fresh objects on every call)."""

    model: Any
    data: Any
    callbacks: list = field(default_factory=list)  # trainer.callbacks, forced callbacks, trainer_defaults
    loggers: list = field(default_factory=list)
    trainer: dict = field(default_factory=dict)  # every other Trainer argument, instantiated
    cli: Any = None  # the project's CLI object that built them (its before_fit / after_fit hooks)

    def before_fit(self, trainer: Any) -> None:
        """The CLI's ``before_fit`` hook, with ``cli.trainer`` the run's Trainer (as under ``main.py fit``)."""
        if self.cli is not None:
            self.cli.trainer = trainer
            hook = getattr(self.cli, "before_fit", None)
            if callable(hook):
                hook()

    def after_fit(self) -> None:
        """The CLI's ``after_fit`` hook."""
        hook = getattr(self.cli, "after_fit", None) if self.cli is not None else None
        if callable(hook):
            hook()


# -- finding the CLI ------------------------------------------------------------------------------------

def _package_of(cls: type) -> str:
    for package in PACKAGES:
        module = sys.modules.get(f"{package}.cli")
        if module is not None and inspect.isclass(cls) and issubclass(cls, module.LightningCLI):
            return package
    name = f"{cls.__module__}.{cls.__qualname__}" if inspect.isclass(cls) else repr(cls)
    raise ConfigError(f"`cli` must name a LightningCLI subclass or an entry point that calls one; {name} is not a "
                      f"subclass of lightning.pytorch.cli.LightningCLI or pytorch_lightning.cli.LightningCLI")


def _capture_init(base: type) -> Any:
    original = base.__init__

    def capture(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(original).bind(self, *args, **kwargs)
        call = dict(bound.arguments)
        call.pop("self", None)
        call.update(call.pop("kwargs", {}) or {})
        raise _Captured(self, call)

    functools.update_wrapper(capture, original)
    return original, capture


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patch ``pytorch_lightning.cli.LightningCLI`` the moment a project imports it (never import it ourselves)."""

    def __init__(self, patch: Any) -> None:
        self.patch = patch

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "pytorch_lightning.cli":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader, patch = spec.loader, self.patch

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: Any) -> None:
                loader.exec_module(module)
                patch(module.LightningCLI)

        spec.loader = _Loader()
        return spec


@contextlib.contextmanager
def _capturing() -> Any:
    """While inside: constructing any LightningCLI raises :class:`_Captured` instead of running it."""
    import lightning.pytorch.cli as lcli

    undo: list[tuple[type, Any]] = []

    def patch(base: type) -> None:
        original, capture = _capture_init(base)
        undo.append((base, original))
        base.__init__ = capture

    patch(lcli.LightningCLI)
    finder = None
    if "pytorch_lightning.cli" in sys.modules:
        patch(sys.modules["pytorch_lightning.cli"].LightningCLI)
    else:
        finder = _PatchOnImport(patch)
        sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)
        for base, original in undo:
            base.__init__ = original


def _on_path(folder: str) -> None:
    folder = os.path.abspath(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _adopt_main_classes(globals_: dict, name: str, file: Optional[str]) -> None:
    """Classes an entry point defines itself (``__main__``) become importable as ``{name}.{Class}`` (the file's
    stem, or the module's name), so that a config naming them, and a worker reading it, find them."""
    if not all(part.isidentifier() for part in name.split(".")):
        return
    known = sys.modules.get(name)
    if known is not None and getattr(known, "__file__", None) != file:
        return
    module = types.ModuleType(name)
    module.__file__ = file
    for key, value in globals_.items():
        if isinstance(value, type) and getattr(value, "__module__", None) == "__main__":
            value.__module__ = name
        setattr(module, key, value)
    sys.modules[name] = module


def _run_entry(spec: str) -> _Captured:
    """Run ``spec`` (a file or a dotted module) as a script until it constructs its LightningCLI."""
    path = Path(spec)
    argv = sys.argv
    globals_holder: dict = {}
    try:
        with _capturing():
            if spec.endswith(".py") or path.is_file():
                if not path.is_file():
                    raise ConfigError(f"`cli` must name an existing entry-point file, a module or a LightningCLI "
                                      f"subclass; got {spec!r} (no such file)")
                path = path.resolve()
                _on_path(str(path.parent))
                sys.argv = [str(path), "fit"]
                globals_holder = runpy.run_path(str(path), run_name="__main__")
            else:
                _on_path(os.getcwd())
                sys.argv = [spec, "fit"]
                runpy.run_module(spec, run_name="__main__", alter_sys=False)
    except _Captured as captured:
        main_globals = _caller_globals(captured) or globals_holder
        if path.is_file():
            _adopt_main_classes(main_globals, path.resolve().stem, str(path.resolve()))
        elif main_globals:
            _adopt_main_classes(main_globals, spec, main_globals.get("__file__"))
        return captured
    except ConfigError:
        raise
    except SystemExit as exc:
        raise ConfigError(f"`cli` {spec!r} exited ({exc.code}) before it constructed a LightningCLI") from None
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ConfigError(f"`cli` {spec!r} cannot be run: {type(exc).__name__}: {first}") from None
    finally:
        sys.argv = argv
    raise ConfigError(f"`cli` must name a LightningCLI subclass or an entry point that calls one; running {spec!r} "
                      f"as a script constructed no LightningCLI (is the call under `if __name__ == \"__main__\"`?)")


def _caller_globals(captured: _Captured) -> Optional[dict]:
    """The globals of the ``__main__`` script frame that constructed the CLI (the script's own classes)."""
    tb = captured.__traceback__
    found = None
    while tb is not None:
        g = tb.tb_frame.f_globals
        if g.get("__name__") == "__main__":
            found = g
        tb = tb.tb_next
    return found


def clear_caches() -> None:
    """Forget every resolved CLI and parser of this process (a test that runs several projects in one)."""
    _resolve_cli.cache_clear()
    _parsers.cache_clear()


def _ensure_path(spec: str) -> None:
    """The folder a project's own imports resolve from, first on ``sys.path`` (as ``python main.py`` or
    ``python -m pkg.main`` put it): checked at every use, since a caller may have restored ``sys.path``."""
    if spec.endswith(".py") or Path(spec).is_file():
        _on_path(str(Path(spec).resolve().parent))
    elif spec != _PL_CLI and spec != _LIGHTNING_CLI:
        _on_path(os.getcwd())


_PL_CLI = "pytorch_lightning.cli.LightningCLI"
_LIGHTNING_CLI = "lightning.pytorch.cli.LightningCLI"


def resolve_cli(spec: str) -> CLISpec:
    """The project's CLI named by ``spec`` (class path, module or file), resolved once per process."""
    if isinstance(spec, str):
        _ensure_path(spec)
    return _resolve_cli(spec)


@functools.lru_cache(maxsize=8)
def _resolve_cli(spec: str) -> CLISpec:
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"`cli` must be a class path, a module or a .py file; got {spec!r}")
    cls: Any = None
    if not spec.endswith(".py") and not Path(spec).is_file() and "." in spec:
        _on_path(os.getcwd())
        module_name, _, attr = spec.rpartition(".")
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(module_name) is not None:
                module = importlib.import_module(module_name)
                cls = getattr(module, attr, None)
    if isinstance(cls, type):
        package = _package_of(cls)
        # its own __init__ may pass arguments up (parser_kwargs, model_class): capture them
        try:
            with _capturing():
                cls()
        except _Captured as captured:
            return CLISpec(spec, captured.cls, captured.kwargs, captured.state, package)
        except Exception as exc:
            raise ConfigError(f"`cli` {spec!r} cannot be constructed: {type(exc).__name__}: {exc}") from None
        raise ConfigError(f"`cli` {spec!r} did not call LightningCLI.__init__")
    captured = _run_entry(spec)
    return CLISpec(spec, captured.cls, captured.kwargs, captured.state, _package_of(captured.cls))


# -- the parser -------------------------------------------------------------------------------------------

_PARSER_KWARGS = {"exit_on_error": False, "allow_abbrev": False, "default_meta": False, "print_config": None}


@dataclass(frozen=True)
class _Parsers:
    top: Any  # the CLI's main parser, with its one subcommand (fit)
    fit: Any  # fit's parser: what `main.py fit --config ...` parses, with tunecv's keys added
    fit_arguments: list  # Trainer.fit's arguments that LightningCLI added (ckpt_path, ...)


# long: one class body (the project's CLI subclassed with the hooks tunecv needs), defined where its base is known
def _tunecv_class(spec: CLISpec, *, parsers: Optional[_Parsers] = None, add_keys: Any = None) -> type:
    """A subclass of the project's CLI, as ``main.py fit`` runs it but with ``fit`` as its only subcommand:
    without ``parsers`` it stops once its parsers are built (raising :class:`_ParserReady`); with them it
    parses one run's config, runs the project's hooks and instantiates everything but the Trainer."""
    base = spec.cls
    fit_skip = set(spec.base.subcommands()["fit"])

    class TunecvCLI(base):  # type: ignore[misc, valid-type]
        _tunecv_trainer: Optional[dict] = None

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            return {"fit": set(fit_skip)}

        def _setup_parser_kwargs(self, parser_kwargs: dict) -> tuple[dict, dict]:
            names = set(base.subcommands()) | set(spec.base.subcommands())  # every subcommand's, not the main's
            main = {k: v for k, v in parser_kwargs.items() if k not in names}
            return main, {k: v for k, v in parser_kwargs.items() if k == "fit"}

        def init_parser(self, **kwargs: Any) -> Any:
            merged = {**kwargs, **_PARSER_KWARGS}
            merged.setdefault("parser_mode", (self.parser_kwargs or {}).get("parser_mode", "omegaconf"))
            return super().init_parser(**merged)

        def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            if add_keys is not None:
                add_keys(parser)  # after Trainer.fit's own arguments (ckpt_path, weights_only)
            return parser

        def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
            if parsers is None:
                super().setup_parser(True, main_kwargs, subparser_kwargs)
                return
            self.parser = parsers.top
            self._subcommand_parsers = {"fit": parsers.fit}
            self._subcommand_method_arguments = {"fit": list(parsers.fit_arguments)}

        def parse_arguments(self, parser_: Any, args: Any) -> None:
            if parsers is None:
                raise _ParserReady(_Parsers(self.parser, self._subcommand_parsers["fit"],
                                            list(self._subcommand_method_arguments["fit"])))
            super().parse_arguments(parser_, args)

        def _set_seed(self) -> None:  # tunecv seeds every run itself (the run's seed), without a log line
            seed = self._get(self.config, "seed_everything")
            if seed is not False and not isinstance(seed, bool):
                importlib.import_module(spec.package).seed_everything(seed, workers=True, verbose=False)

        def _instantiate_trainer(self, config: dict, callbacks: list) -> Any:
            cbs = config.get("callbacks")
            cbs = [] if cbs is None else (list(cbs) if isinstance(cbs, (list, tuple)) else [cbs])
            cbs += list(callbacks)
            extra = self.trainer_defaults.get("callbacks")
            if extra is not None:
                cbs += list(extra) if isinstance(extra, (list, tuple)) else [extra]
            self._tunecv_trainer = {**config, "callbacks": cbs}
            return None

        def _run_subcommand(self, subcommand: str) -> None:
            """tunecv fits the run itself (its Trainer, its folder); the CLI's before_fit / after_fit hooks run
            around that fit (:meth:`BuiltRun.before_fit`)."""

    TunecvCLI.__name__ = TunecvCLI.__qualname__ = base.__name__
    TunecvCLI.__module__ = base.__module__
    return TunecvCLI


def _construct(klass: type, spec: CLISpec, args: Any) -> Any:
    """``klass(**spec.kwargs, args=args)`` without re-running a subclass's own ``__init__``."""
    cli = object.__new__(klass)
    vars(cli).update(spec.state)
    kwargs = {**spec.kwargs, "run": True, "args": args, "save_config_callback": None}
    argv = sys.argv
    sys.argv = sys.argv[:1]  # LightningCLI warns when args and a command line are both given
    try:
        spec.base.__init__(cli, **kwargs)
    finally:
        sys.argv = argv
    return cli


@functools.lru_cache(maxsize=8)
def _parsers(spec_name: str, add_tunecv_keys: Any) -> _Parsers:
    spec = resolve_cli(spec_name)
    try:
        _construct(_tunecv_class(spec, add_keys=add_tunecv_keys), spec, [])
    except _ParserReady as ready:
        return ready.parser
    except ConfigError:
        raise
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ConfigError(f"`cli` {spec_name!r}: its parser cannot be built: {type(exc).__name__}: {first}") from None
    raise ConfigError(f"`cli` {spec_name!r}: its LightningCLI never reached parsing")


def cli_parser(spec_name: str, add_tunecv_keys: Any) -> Any:
    """The project's ``fit`` parser with tunecv's keys added by ``add_tunecv_keys(parser)`` (cached per
    process; the config layer passes its own function, so that this module never imports it)."""
    resolve_cli(spec_name)  # its folder on sys.path again
    return _parsers(spec_name, add_tunecv_keys).fit


def top_level_keys(spec_name: str, add_tunecv_keys: Any) -> list[str]:
    """The top-level keys of the project's parser (tunecv's included)."""
    parser = cli_parser(spec_name, add_tunecv_keys)
    keys = []
    for action in parser._actions:
        dest = getattr(action, "dest", "")
        if dest and dest not in ("help", "config") and not dest.startswith("__"):
            top = dest.split(".")[0]
            if top not in keys:
                keys.append(top)
    return keys


def build_run(spec_name: str, config: dict, add_tunecv_keys: Any) -> BuiltRun:
    """Model, data module, callbacks, loggers and trainer arguments of one run, built by the project's CLI."""
    spec = resolve_cli(spec_name)
    parsers = _parsers(spec_name, add_tunecv_keys)
    cli = _construct(_tunecv_class(spec, parsers=parsers), spec, {"subcommand": "fit", "fit": config})
    made = dict(cli._tunecv_trainer or {})
    callbacks = list(made.pop("callbacks", []) or [])
    logger = made.pop("logger", None)
    loggers = [] if logger in (None, True, False) else (list(logger) if isinstance(logger, (list, tuple))
                                                           else [logger])
    # scalar Trainer arguments come from the config (``trainer:``); only built objects are taken from here
    trainer: dict[str, Any] = {k: made[k] for k in _OBJECT_ARGS if made.get(k) is not None}
    if logger is False:
        trainer["logger"] = False
    return BuiltRun(model=cli.model, data=cli.datamodule, callbacks=callbacks, loggers=loggers, trainer=trainer,
                    cli=cli)


_OBJECT_ARGS = ("plugins", "profiler")
