"""``TaskModule``: train a plain ``torch.nn.Module`` from config alone.

A ``TaskModule`` wraps any ``nn.Module`` (the *net*) and supplies what Lightning needs around it: named
predictions, one loss per prediction, regularizers, torchmetrics, an optimizer with linear warm-up, and
logging. Everything is given by ``class_path`` / ``init_args`` in the config, and kept in the
hyperparameters, so ``TaskModule.load_from_checkpoint(path)`` rebuilds the same module.

Conventions (see ``docs/plain-module.md`` for a worked example):

- **Predictions.** The net returns one tensor, a tuple or a dict; ``pred_names`` names its predictions
  in order (tuple) or by key (dict).
- **Batches.** ``(inputs, targets)``, ``(inputs, target_1, target_2, ...)`` or a dict. Targets are matched
  to predictions by name (a dict of targets, or a dict batch) or by order (a tuple). The net is called as
  ``net(inputs)``, ``net(*inputs)`` for a tuple and ``net(**inputs)`` for a dict; a dict batch holds its
  inputs under ``input_key``.
- **Losses.** One entry per prediction, called ``loss(prediction, target)``; every further entry is a
  regularizer, called with the predictions by keyword (when its parameters are prediction names) or else
  with all predictions by position. The total is the weighted sum.
- **Logged names.** ``{stage}/loss`` (the total), ``{stage}/loss/{term}`` (each weighted term) and
  ``{stage}/{prediction}/{metric}``, for the stages ``train``, ``val`` and ``test``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Union

import lightning as L
import torch
from torch import nn

from tunecv.build import instantiate
from tunecv.config import import_class
from tunecv.errors import ConfigError

__all__ = ["Spec", "StepOutput", "TaskModule"]

Spec = Union[str, dict[str, Any]]
"""A dotted import path, or a mapping such as ``{class_path: ..., init_args: {...}}``."""

STAGES = ("train", "val", "test")
LOSS_KEYS = ("class_path", "init_args", "fn", "weight")
METRIC_KEYS = ("class_path", "init_args", "name")
KEY = "model.init_args"


class StepOutput(NamedTuple):
    """What :meth:`TaskModule.compute_losses` returns for one batch.

    Attributes:
        preds: the net's predictions by name.
        targets: the batch's targets by prediction name.
        loss: the total loss (the weighted sum of ``terms``).
        terms: each weighted loss and regularizer term by name.
    """

    preds: dict[str, torch.Tensor]
    targets: dict[str, Any]
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Term:
    name: str
    fn: Callable[..., Any]
    weight: float
    label: str
    is_regularizer: bool
    keywords: Optional[tuple[str, ...]] = None  # regularizer: predictions passed by keyword; None: by position


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {list(value.shape)}"
    return type(value).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _instantiate(spec: Mapping[str, Any], base: type, key: str) -> Any:
    return instantiate(spec, base, key)


def _signature(fn: Callable[..., Any]) -> Optional[inspect.Signature]:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _build_callable(spec: Any, key: str) -> tuple[Callable[..., Any], float, str]:
    """A loss or regularizer spec → ``(callable, weight, label)``; from Python, a callable is taken as is."""
    if isinstance(spec, type):
        return spec(), 1.0, spec.__qualname__
    if callable(spec):
        return spec, 1.0, getattr(spec, "__qualname__", type(spec).__name__)
    if isinstance(spec, str):
        spec = {"fn": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"`{key}` must be a dotted path or {{class_path | fn, init_args, weight}}; got {spec!r}")
    unknown = [k for k in spec if k not in LOSS_KEYS]
    if unknown:
        raise ConfigError(f"`{key}` has unknown key {unknown[0]!r}; valid: {', '.join(LOSS_KEYS)}")
    if ("class_path" in spec) == ("fn" in spec):
        raise ConfigError(f"`{key}` must have exactly one of `class_path` (a loss class) or `fn` (a function); "
                          f"got {dict(spec)!r}")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ConfigError(f"`{key}.weight` must be a number; got {weight!r}")
    init_args = dict(spec.get("init_args") or {})
    if "class_path" in spec:
        label = spec["class_path"]
        fn = _instantiate({"class_path": label, "init_args": init_args}, object, key)
    else:
        label = spec["fn"]
        fn = import_class(label, f"{key}.fn")
        if isinstance(fn, type):
            # a bare class name: build it with its defaults (init_args with `fn` bind function arguments)
            if init_args:
                raise ConfigError(f"`{key}.fn` names the class {label}; give it as `class_path` to pass init_args")
            fn = _instantiate({"class_path": label}, object, key)
        elif init_args:
            fn = functools.partial(fn, **init_args)
    if not callable(fn):
        raise ConfigError(f"`{key}` must be callable; {label} is a {type(fn).__name__}")
    return fn, float(weight), label


def _check_loss_signature(fn: Callable[..., Any], label: str, key: str) -> None:
    sig = _signature(fn)
    if sig is None:
        return
    try:
        sig.bind(object(), object())
    except TypeError:
        raise ConfigError(f"`{key}` ({label}) must accept (prediction, target); its signature is {sig}") from None


def _regularizer_keywords(fn: Callable[..., Any], label: str, key: str,
                          pred_names: list[str]) -> Optional[tuple[str, ...]]:
    """How a regularizer is called: the predictions it takes by keyword, or ``None`` for all by position."""
    sig = _signature(fn)
    if sig is None:
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return tuple(pred_names)
    by_name = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name in pred_names]
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if by_name:
        others = [n for n in required if n not in pred_names]
        if others:
            raise ConfigError(f"`{key}` ({label}) is a regularizer called with predictions by keyword, but it also "
                              f"requires {', '.join(others)}; predictions: {', '.join(pred_names)}")
        return tuple(by_name)
    try:
        sig.bind(*[object()] * len(pred_names))
    except TypeError:
        raise ConfigError(
            f"`{key}` ({label}) is a regularizer (no prediction is named {key.rsplit('.', 1)[-1]!r}): it must take "
            f"predictions by name ({', '.join(pred_names)}) or all {len(pred_names)} by position; its signature "
            f"is {sig}") from None
    return None


class TaskModule(L.LightningModule):
    """A LightningModule around a plain ``nn.Module``, configured by ``class_path`` / ``init_args`` alone.

    In a config:

    ```yaml
    model:
      class_path: tunecv.TaskModule
      init_args:
        net: {class_path: tunecv.examples.plain.MLP, init_args: {hidden_dim: 64}}
        pred_names: [digit]
        losses:
          digit: {class_path: torch.nn.CrossEntropyLoss, weight: 1.0}
        metrics:
          digit:
            - {class_path: torchmetrics.classification.MulticlassAccuracy,
               init_args: {num_classes: 10}, name: acc}
        lr: 0.01
    ```

    Args:
        net: the network, as ``{class_path, init_args}`` (nested ``class_path`` specs are built too). From
            Python an ``nn.Module`` instance also works; ``load_from_checkpoint`` then needs ``net=`` again.
        pred_names: names of the net's predictions, in the order of its outputs (for a tuple) or as keys
            of its output (for a dict). A single name may be given as a string.
        losses: by name, each a dotted path or ``{class_path | fn, init_args, weight}``: ``class_path``
            builds a loss class with ``init_args``; ``fn`` names a function (``init_args`` are bound as
            keyword arguments); ``weight`` (default 1) scales the term. Every prediction needs one entry,
            called ``loss(prediction, target)``; other entries are regularizers, called with the
            predictions by keyword when their parameters are prediction names, else with all predictions
            by position.
        metrics: by prediction name, a torchmetrics ``Metric`` spec or a list of them, each a dotted path or
            ``{class_path, init_args, name}``; logged as ``{stage}/{prediction}/{name}`` (``name``
            defaults to the class name).
        lr: learning rate of the default Adam optimizer (used when the config has no ``optimizer:``
            section).
        weight_decay: weight decay of the default Adam optimizer.
        warmup_steps: the learning rate ramps linearly from ``lr / warmup_steps`` to its value over this
            many optimizer steps; works with any optimizer and ``lr_scheduler:`` section (0: no warm-up).
        input_key: the key of the inputs in a dict batch.

    Raises:
        ConfigError: a prediction without a loss, a metric of an unknown prediction, a loss or regularizer
            whose signature does not fit; on the first batch, a net whose outputs do not match
            ``pred_names``, or a loss or metric that fails on its prediction.
    """

    def __init__(
        self,
        net: Union[dict[str, Any], nn.Module],
        pred_names: Union[str, list[str]],
        losses: dict[str, Spec],
        metrics: Optional[dict[str, Union[Spec, list[Spec]]]] = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        input_key: str = "x",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"] if isinstance(net, nn.Module) else None)
        self.pred_names = self._check_pred_names(pred_names)
        if not lr > 0:
            raise ConfigError(f"`{KEY}.lr` must be > 0; got {lr!r}")
        if weight_decay < 0:
            raise ConfigError(f"`{KEY}.weight_decay` must be >= 0; got {weight_decay!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"`{KEY}.warmup_steps` must be an int >= 0; got {warmup_steps!r}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.input_key = input_key
        self._terms = self._build_terms(losses)
        # loss modules are registered so that they move with the model (class weights, parameters)
        self.loss_modules = nn.ModuleList([t.fn for t in self._terms if isinstance(t.fn, nn.Module)])
        self._metric_names, metric_lists = self._build_metrics(metrics)
        self.train_metrics, self.val_metrics, self.test_metrics = metric_lists
        if isinstance(net, nn.Module):
            self.net = net
        elif isinstance(net, (Mapping, str)):
            self.net = _instantiate(net if isinstance(net, Mapping) else {"class_path": net}, nn.Module,
                                    f"{KEY}.net")
        else:
            raise ConfigError(f"`{KEY}.net` must be {{class_path: ..., init_args: {{...}}}}; got {net!r}")
        self._verified = False

    # -- construction checks ----------------------------------------------------------------------------
    @staticmethod
    def _check_pred_names(pred_names: Union[str, list[str]]) -> list[str]:
        names = [pred_names] if isinstance(pred_names, str) else list(pred_names or [])
        if not names:
            raise ConfigError(f"`{KEY}.pred_names` must name at least one prediction; got {pred_names!r}")
        for name in names:
            if not isinstance(name, str) or not name or any(c in name for c in "/.") or name == "loss":
                raise ConfigError(f"`{KEY}.pred_names` must be non-empty names without '/' or '.', other than "
                                  f"'loss'; got {name!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"`{KEY}.pred_names` must be unique; got {', '.join(names)}")
        return names

    def _build_terms(self, losses: Any) -> list[_Term]:
        preds = ", ".join(self.pred_names)
        if not isinstance(losses, Mapping):
            raise ConfigError(f"`{KEY}.losses` must map each prediction ({preds}) to a loss; got {losses!r}")
        for name in self.pred_names:
            if name not in losses:
                raise ConfigError(f"`{KEY}.losses` has no entry for prediction {name!r}; predictions: {preds}")
        terms = []
        for name, spec in losses.items():
            key = f"{KEY}.losses.{name}"
            if not isinstance(name, str) or not name or "/" in name or "." in name:
                raise ConfigError(f"`{KEY}.losses` names must be non-empty, without '/' or '.'; got {name!r}")
            fn, weight, label = _build_callable(spec, key)
            if name in self.pred_names:
                _check_loss_signature(fn, label, key)
                terms.append(_Term(name, fn, weight, label, is_regularizer=False))
            else:
                keywords = _regularizer_keywords(fn, label, key, self.pred_names)
                terms.append(_Term(name, fn, weight, label, is_regularizer=True, keywords=keywords))
        return terms

    def _build_metrics(self, metrics: Any) -> tuple[list[tuple[str, str, str]], list[nn.ModuleList]]:
        import torchmetrics

        lists = [nn.ModuleList() for _ in STAGES]
        names: list[tuple[str, str, str]] = []  # (prediction, logged name, config key), aligned with each list
        if metrics is None:
            return names, lists
        if not isinstance(metrics, Mapping):
            raise ConfigError(f"`{KEY}.metrics` must map prediction names to metric specs; got {metrics!r}")
        for pred, specs in metrics.items():
            if pred not in self.pred_names:
                raise ConfigError(f"`{KEY}.metrics` has an entry for unknown prediction {pred!r}; predictions: "
                                  f"{', '.join(self.pred_names)}")
            specs = specs if isinstance(specs, (list, tuple)) else [specs]
            seen: set[str] = set()
            for i, spec in enumerate(specs):
                key = f"{KEY}.metrics.{pred}[{i}]"
                if isinstance(spec, str):
                    spec = {"class_path": spec}
                if not isinstance(spec, Mapping) or "class_path" not in spec:
                    raise ConfigError(f"`{key}` must be a dotted path or {{class_path, init_args, name}}; "
                                      f"got {spec!r}")
                unknown = [k for k in spec if k not in METRIC_KEYS]
                if unknown:
                    raise ConfigError(f"`{key}` has unknown key {unknown[0]!r}; valid: {', '.join(METRIC_KEYS)}")
                build = {"class_path": spec["class_path"], "init_args": dict(spec.get("init_args") or {})}
                metric = _instantiate(build, torchmetrics.Metric, key)
                name = spec.get("name") or type(metric).__name__
                if not isinstance(name, str) or "/" in name or "." in name:
                    raise ConfigError(f"`{key}.name` must be a name without '/' or '.'; got {name!r}")
                if name in seen:
                    raise ConfigError(f"`{KEY}.metrics.{pred}` logs two metrics as {name!r}; give one a `name`")
                seen.add(name)
                names.append((pred, name, f"{key}` ({spec['class_path']})"))
                lists[0].append(metric)
                for other in lists[1:]:
                    other.append(metric.clone())
        return names, lists

    # -- predictions and targets ------------------------------------------------------------------------
    def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
        """The net's predictions on ``inputs``, by name."""
        return self.named_predictions(self._call_net(inputs))

    def _call_net(self, inputs: Any) -> Any:
        if isinstance(inputs, Mapping):
            return self.net(**inputs)
        if isinstance(inputs, (tuple, list)):
            return self.net(*inputs)
        return self.net(inputs)

    def named_predictions(self, out: Any) -> dict[str, torch.Tensor]:
        """Match the net's output (a tensor, a tuple or a dict) to ``pred_names``.

        Raises:
            ConfigError: the output does not match ``pred_names``.
        """
        names = self.pred_names
        expected = f"`{KEY}.pred_names` lists {len(names)}: {', '.join(names)}"
        if isinstance(out, torch.Tensor):
            if len(names) != 1:
                raise ConfigError(f"`{KEY}.net` returns one tensor but {expected}; return a tuple or a dict")
            return {names[0]: out}
        if isinstance(out, Mapping):
            missing = [n for n in names if n not in out]
            if missing:
                raise ConfigError(f"`{KEY}.net` returns a dict without {', '.join(map(repr, missing))} (its keys: "
                                  f"{', '.join(map(str, out))}); {expected}")
            return {n: out[n] for n in names}
        if isinstance(out, (tuple, list)):
            if len(out) != len(names):
                raise ConfigError(f"`{KEY}.net` returns {len(out)} outputs but {expected}")
            return dict(zip(names, out))
        raise ConfigError(f"`{KEY}.net` must return a tensor, a tuple or a dict; got {type(out).__name__}")

    def split_batch(self, batch: Any) -> tuple[Any, dict[str, Any]]:
        """A batch → ``(inputs, targets by prediction name)``.

        Raises:
            ConfigError: the batch holds no target for a prediction, or has an unknown form.
        """
        names = self.pred_names
        if isinstance(batch, Mapping):
            if self.input_key not in batch:
                raise ConfigError(f"a dict batch must hold its inputs under `{KEY}.input_key` "
                                  f"({self.input_key!r}); its keys: {', '.join(map(str, batch))}")
            inputs, targets = batch[self.input_key], {k: v for k, v in batch.items() if k != self.input_key}
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            inputs = batch[0]
            targets = batch[1] if len(batch) == 2 else list(batch[1:])
        else:
            raise ConfigError(f"a batch must be (inputs, targets), (inputs, target, target, ...) or a dict; got "
                              f"{_describe(batch)}")
        if isinstance(targets, Mapping):
            missing = [n for n in names if n not in targets]
            if missing:
                raise ConfigError(f"the batch has no target for prediction {missing[0]!r} (its targets: "
                                  f"{', '.join(map(str, targets)) or 'none'}); predictions: {', '.join(names)}")
            return inputs, {n: targets[n] for n in names}
        if isinstance(targets, (tuple, list)):
            if len(targets) != len(names):
                raise ConfigError(f"the batch has {len(targets)} targets but `{KEY}.pred_names` lists "
                                  f"{len(names)}: {', '.join(names)}")
            return inputs, dict(zip(names, targets))
        if len(names) != 1:
            raise ConfigError(f"the batch has one target but `{KEY}.pred_names` lists {len(names)}: "
                              f"{', '.join(names)}; return a tuple or a dict of targets")
        return inputs, {names[0]: targets}

    # -- losses ---------------------------------------------------------------------------------------
    def compute_losses(self, batch: Any) -> StepOutput:
        """Predictions, targets, total loss and weighted terms of one batch (no logging).

        The first batch is checked: an error of the net, a loss or a regularizer becomes a one-line
        :class:`ConfigError` that names the config key.
        """
        inputs, targets = self.split_batch(batch)
        try:
            out = self._call_net(inputs)
        except Exception as exc:
            if self._verified:
                raise
            raise ConfigError(f"`{KEY}.net` fails on the first batch (inputs {_describe(inputs)}): "
                              f"{_first_line(exc)}") from exc
        preds = self.named_predictions(out)
        terms: dict[str, torch.Tensor] = {}
        for term in self._terms:
            value = self._call_term(term, preds, targets)
            if not isinstance(value, torch.Tensor) or value.ndim != 0:
                raise ConfigError(f"`{KEY}.losses.{term.name}` ({term.label}) must return a scalar tensor; got "
                                  f"{_describe(value)}")
            terms[term.name] = term.weight * value
        total = torch.stack(list(terms.values())).sum()
        return StepOutput(preds, targets, total, terms)

    def _call_term(self, term: _Term, preds: dict[str, torch.Tensor], targets: dict[str, Any]) -> Any:
        if term.is_regularizer:
            args: tuple = () if term.keywords is not None else tuple(preds[n] for n in self.pred_names)
            kwargs = {n: preds[n] for n in term.keywords} if term.keywords is not None else {}
            what = "the predictions"
        else:
            args, kwargs = (preds[term.name], targets[term.name]), {}
            what = (f"prediction {term.name!r} ({_describe(preds[term.name])}) with its target "
                    f"({_describe(targets[term.name])})")
        if self._verified:
            return term.fn(*args, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = term.fn(*args, **kwargs)
            except Exception as exc:
                raise ConfigError(f"`{KEY}.losses.{term.name}` ({term.label}) does not accept {what}: "
                                  f"{_first_line(exc)}") from exc
        for w in caught:
            if "broadcast" in str(w.message):
                raise ConfigError(f"`{KEY}.losses.{term.name}` ({term.label}) would broadcast {what}; give the "
                                  f"prediction and its target the same shape")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return value

    # -- Lightning ----------------------------------------------------------------------------------------
    def _metric_list(self, stage: str) -> nn.ModuleList:
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        out = self.compute_losses(batch)
        first = next(iter(out.preds.values()))
        batch_size = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.ndim else 1
        sync = stage != "train"
        self.log(f"{stage}/loss", out.loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=batch_size, sync_dist=sync)
        for name, value in out.terms.items():
            self.log(f"{stage}/loss/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size,
                     sync_dist=sync)
        for (pred, name, where), metric in zip(self._metric_names, self._metric_list(stage)):
            p, t = out.preds[pred].detach(), out.targets[pred]
            try:
                metric.update(p, t)
            except Exception as exc:
                if self._verified:
                    raise
                raise ConfigError(f"`{where} does not accept prediction {pred!r} ({_describe(p)}) with its "
                                  f"target ({_describe(t)}): {_first_line(exc)}") from exc
            self.log(f"{stage}/{pred}/{name}", metric, on_step=False, on_epoch=True, batch_size=batch_size)
        self._verified = True
        return out.loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Predictions by name; a batch may be inputs alone, ``(inputs, ...)`` or a dict."""
        if isinstance(batch, Mapping):
            inputs = batch[self.input_key]
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            inputs = batch[0]
        else:
            inputs = batch
        return self(inputs)

    def configure_optimizers(self) -> Any:
        """Adam with ``lr`` and ``weight_decay`` (replaced by the config's ``optimizer:`` section if any)."""
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Scale the learning rate by ``(step + 1) / warmup_steps`` during warm-up.

        The scaled rate is used for this step only and the configured one is put back right after, so any
        scheduler keeps working on its own values (a ``LearningRateMonitor`` shows the unscaled rate).
        """
        step = self.trainer.global_step
        if step >= self.warmup_steps:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        factor = (step + 1) / self.warmup_steps
        groups = optimizer.param_groups
        saved = [group["lr"] for group in groups]
        for group, lr in zip(groups, saved):
            group["lr"] = lr * factor
        try:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for group, lr in zip(groups, saved):
                group["lr"] = lr
