"""Gradient-flow diagnostics: which parameters' gradients vanish, explode or go NaN.

`grad_report(model)` after a backward returns one row per parameter (its name as in
`named_parameters()`, shape, gradient norm, share of exact zeros, update/weight ratio when an
`lr` is given, and its flags); `plot_grad_flow` draws the same as a bar chart, and
`GradientMonitor` records it over training and warns the first time a parameter raises a flag.

>>> import tensorgrad as tg
>>> model = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.Linear(4, 1))
>>> model(tg.ones(2, 3)).sum().backward()
>>> report = tg.diagnostics.grad_report(model)
>>> [row.name for row in report.rows]
['0.weight', '0.bias', '1.weight', '1.bias']
>>> report.flagged("vanishing")
[]

Norms are computed with tensorgrad ops under `no_grad`, in float64 (a float32 sum of squares
overflows long before the gradient does); the report then reads them to the host in one
transfer, since it is a reporting tool. Imports core (tensor, ops, autograd.graph) and, lazily,
matplotlib; never a backend or an array library.
"""

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .autograd.graph import no_grad
from .dtypes import float64
from .ops.join import stack

__all__ = ["FLAGS", "GradRow", "GradReport", "GradientMonitor", "GradientWarning",
           "grad_report", "plot_grad_flow"]

FLAGS = ("vanishing", "exploding", "nonfinite")
_COLORS = {"nonfinite": "tab:red", "exploding": "tab:orange", "vanishing": "tab:blue",
           None: "tab:gray"}
_HINTS = {
    "vanishing": "it is below {vanishing:g} x the largest gradient norm in the model; "
                 "ReLU-family activations with He init, normalization layers or residual "
                 "connections keep gradients alive through depth",
    "exploding": "it is above {exploding:g}; lower the learning rate, clip the gradients "
                 "(tg.nn.utils.clip_grad_norm_) or normalize the inputs",
    "nonfinite": "a NaN or Inf reached this gradient; run the step under "
                 "tg.autograd.detect_anomaly() to find the op that made it",
}


class GradientWarning(UserWarning):
    """What `GradientMonitor(warn=True)` emits the first time a parameter raises a flag."""


@dataclass(frozen=True)
class GradRow:
    """One parameter's line of a `GradReport`; the numbers are None when it has no grad."""

    name: str
    shape: tuple
    grad_norm: float | None
    zero_fraction: float | None
    weight_norm: float | None
    update_ratio: float | None  # lr * grad norm / weight norm: the relative size of an SGD step
    flags: tuple = ()

    @property
    def has_grad(self):
        return self.grad_norm is not None


class GradReport:
    """The gradient-flow table `grad_report` returns: `rows`, `flagged(flag)`, `to_dict()`,
    and `str(report)` as a text table."""

    def __init__(self, rows, lr, vanishing, exploding):
        self.rows = list(rows)
        self.lr, self.vanishing, self.exploding = lr, vanishing, exploding
        self.largest = max((r.grad_norm for r in self.rows
                            if r.has_grad and math.isfinite(r.grad_norm)), default=0.0)

    def flagged(self, flag=None):
        """Names of the parameters that raise `flag` (any flag when None), in model order."""
        if flag is not None and flag not in FLAGS:
            raise ValueError(f"flagged: unknown flag {flag!r}\n  hint: use one of {FLAGS}")
        return [r.name for r in self.rows if (r.flags if flag is None else flag in r.flags)]

    def __getitem__(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"{name!r} is not a parameter of this report; names: "
                       f"{[r.name for r in self.rows]}")

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def to_dict(self):
        """Plain Python data (JSON-ready): thresholds, the largest norm and every row."""
        return {"lr": self.lr, "vanishing": self.vanishing, "exploding": self.exploding,
                "largest_grad_norm": self.largest,
                "rows": [dict(asdict(r), shape=list(r.shape), flags=list(r.flags))
                         for r in self.rows]}

    def __repr__(self):
        counts = ", ".join(f"{f} {len(self.flagged(f))}" for f in FLAGS)
        return f"<GradReport: {len(self.rows)} parameters; {counts}>"

    def __str__(self):
        header = ["parameter", "shape", "grad norm", "zeros"]
        header += ["update/weight"] if self.lr is not None else []
        table = [header, *(self._cells(r) for r in self.rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + flags
                 for row, flags in zip(table, ["flags", *(self._flag_cell(r)
                                                          for r in self.rows)])]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join([self._title(), *lines, self._summary()])

    def _cells(self, r):
        if not r.has_grad:
            cells = [r.name, str(tuple(r.shape)), "no grad", "-"]
            return cells + ["-"] if self.lr is not None else cells
        cells = [r.name, str(tuple(r.shape)), f"{r.grad_norm:.3e}", f"{r.zero_fraction:.1%}"]
        return cells + [f"{r.update_ratio:.2e}"] if self.lr is not None else cells

    @staticmethod
    def _flag_cell(r):
        return ", ".join(r.flags) if r.flags else "none"

    def _title(self):
        lr = "" if self.lr is None else f", lr {self.lr:g}"
        return (f"gradient flow: {len(self.rows)} parameters, largest grad norm "
                f"{self.largest:.3e}{lr} (vanishing < {self.vanishing:g} x largest, "
                f"exploding > {self.exploding:g}, nonfinite = NaN/Inf entries)")

    def _summary(self):
        raised = [f"{f} {len(self.flagged(f))}" for f in FLAGS if self.flagged(f)]
        missing = sum(not r.has_grad for r in self.rows)
        text = "flagged: " + ", ".join(raised) if raised else "no flags raised"
        return text + (f"; {missing} without grad" if missing else "")


# ---- computing the rows ----------------------------------------------------------------------
def _grad_stats(g, p):
    """[grad norm, zero count, all finite, weight norm] as one float64 tensor on g's device."""
    with no_grad():
        g = g.detach().to(float64)
        finite = (g.abs() < math.inf).all()  # NaN < inf and inf < inf are both False
        return stack([g.norm(), (g == 0).sum().to(float64), finite.to(float64),
                      p.detach().to(float64).norm().to(g.device)])


def _host_stats(stats):
    """Every stats tensor read to the host at once (one transfer per report)."""
    present = [s for s in stats if s is not None]
    if not present:
        return [None] * len(stats)
    dev = present[0].device
    values = iter(stack([s.to(dev) for s in present]).tolist())
    return [None if s is None else next(values) for s in stats]


def _ratio(lr, grad_norm, weight_norm):
    if lr is None:
        return None
    if weight_norm == 0:
        return 0.0 if grad_norm == 0 else math.inf
    return lr * grad_norm / weight_norm


def _flags(grad_norm, finite, largest, vanishing, exploding):
    flags = []
    if grad_norm < vanishing * largest:
        flags.append("vanishing")
    if grad_norm > exploding:
        flags.append("exploding")
    if not finite:
        flags.append("nonfinite")
    return tuple(flags)


def _build_report(entries, lr, vanishing, exploding):
    """`entries`: (name, shape, numel, stats tensor or None) per parameter."""
    values = _host_stats([e[3] for e in entries])
    largest = max((v[0] for v in values if v is not None and math.isfinite(v[0])),
                  default=0.0)
    rows = []
    for (name, shape, numel, _), v in zip(entries, values):
        if v is None:
            rows.append(GradRow(name, shape, None, None, None, None))
            continue
        gnorm, zeros, finite, wnorm = v
        rows.append(GradRow(name, shape, gnorm, zeros / max(numel, 1), wnorm,
                            _ratio(lr, gnorm, wnorm),
                            _flags(gnorm, finite, largest, vanishing, exploding)))
    return GradReport(rows, lr, vanishing, exploding)


def _check_thresholds(lr, vanishing, exploding):
    for what, v in (("vanishing", vanishing), ("exploding", exploding), ("lr", lr)):
        if v is not None and not (isinstance(v, (int, float)) and v >= 0):
            raise ValueError(f"grad_report: {what} must be a non-negative number, got {v!r}")


def grad_report(model, lr=None, vanishing=1e-4, exploding=1e3):
    """The gradient-flow report of `model`'s parameters after a backward.

    Flags per parameter: `vanishing` when its grad norm is below `vanishing` x the largest
    finite grad norm in the model, `exploding` when the norm is above `exploding`, and
    `nonfinite` when any entry is NaN or Inf. With `lr`, each row also has the update/weight
    ratio lr * |grad| / |weight| (about 1e-3 is healthy for SGD; far above means the step
    rewrites the weights). Parameters without a `.grad` get a row saying "no grad".

    >>> import tensorgrad as tg
    >>> lin = tg.nn.Linear(2, 1)
    >>> lin(tg.ones(1, 2)).sum().backward()
    >>> tg.diagnostics.grad_report(lin, lr=0.1)["bias"].grad_norm
    1.0
    """
    _check_thresholds(lr, vanishing, exploding)
    entries = [(name, tuple(p.shape), p.numel(), None if p.grad is None
                else _grad_stats(p.grad, p)) for name, p in model.named_parameters()]
    return _build_report(entries, lr, vanishing, exploding)


# ---- pictures --------------------------------------------------------------------------------
def _figure(who, **kwargs):
    """A matplotlib Figure on the Agg canvas, without touching pyplot's global backend."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"{who} needs matplotlib, which is not installed\n  hint: pip install "
                          "'tensorgrad[examples]' (or pip install matplotlib)") from e
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _first_flag(row):
    return next((f for f in ("nonfinite", "exploding", "vanishing") if f in row.flags), None)


def _bar_heights(report):
    """Bar heights on a log axis: zeros drawn at the floor, NaN/Inf norms at the ceiling."""
    finite = [r.grad_norm for r in report.rows
              if r.has_grad and math.isfinite(r.grad_norm) and r.grad_norm > 0]
    floor = min(finite, default=1.0) / 10
    ceiling = max(finite + [report.exploding], default=1.0) * 10
    heights = []
    for r in report.rows:
        n = r.grad_norm
        heights.append(floor if not r.has_grad or n == 0 else ceiling if not math.isfinite(n)
                       else n)
    return heights, floor, ceiling


def plot_grad_flow(model, path, lr=None, vanishing=1e-4, exploding=1e3, title=None):
    """Bar chart of the grad norm per parameter (log scale, model order) saved to `path`.

    `model` is a Module after a backward, or a `GradReport`. Flagged bars are coloured (blue
    vanishing, orange exploding, red nonfinite, drawn at the top) and hatched; parameters
    without a grad get an empty, dashed bar. Returns the path written.
    """
    report = model if isinstance(model, GradReport) else grad_report(model, lr, vanishing,
                                                                     exploding)
    heights, floor, ceiling = _bar_heights(report)
    fig = _figure("plot_grad_flow", figsize=(max(6.0, 0.35 * len(report.rows) + 2), 4.5))
    ax = fig.add_subplot()
    for i, (r, h) in enumerate(zip(report.rows, heights)):
        flag = _first_flag(r)
        ax.bar(i, h - floor, bottom=floor, color="none" if not r.has_grad else _COLORS[flag],
               edgecolor="black", linestyle="--" if not r.has_grad else "-",
               hatch="//" if flag else None, label=flag or ("no grad" if not r.has_grad
                                                            else "ok"))
    _threshold_lines(ax, report.largest * report.vanishing, report.exploding)
    ax.set(yscale="log", ylim=(floor, ceiling), ylabel="grad norm",
           title=title or "gradient flow (one bar per parameter)")
    ax.set_xticks(range(len(report.rows)), [r.name for r in report.rows], rotation=90,
                  fontsize=7)
    _dedup_legend(ax)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _threshold_lines(ax, vanishing_at, exploding_at):
    if vanishing_at > 0:
        ax.axhline(vanishing_at, color=_COLORS["vanishing"], linestyle=":",
                   label="vanishing threshold")
    ax.axhline(exploding_at, color=_COLORS["exploding"], linestyle=":",
               label="exploding threshold")


def _dedup_legend(ax):
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best")


# ---- over training ---------------------------------------------------------------------------
class GradientMonitor:
    """Record the gradient-flow report over training, through hooks on the parameters.

    Each parameter's tensor hook measures its gradient as the backward delivers it (on the
    device, no host read), so the monitor sees the raw gradient of every backward pass,
    before any clipping. A record is closed by `step()` (call it after `backward()` to get
    the warnings at once) or, when you do not call it, as soon as the next backward delivers
    a gradient again. `every=k` records one backward in k. With `warn=True` a
    `GradientWarning` is emitted the first time each parameter raises each flag.

    >>> import tensorgrad as tg
    >>> model = tg.nn.Linear(2, 1)
    >>> monitor = tg.diagnostics.GradientMonitor(model)
    >>> for _ in range(3):
    ...     model(tg.ones(4, 2)).sum().backward()
    ...     _ = monitor.step()
    >>> len(monitor.history["weight"]), monitor.flagged()
    (3, [])
    >>> monitor.remove()
    """

    def __init__(self, model, every=1, warn=True, lr=None, vanishing=1e-4, exploding=1e3):
        _check_thresholds(lr, vanishing, exploding)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"GradientMonitor: every must be a positive int, got {every!r}")
        self.every, self.warn = every, warn
        self.lr, self.vanishing, self.exploding = lr, vanishing, exploding
        self.steps, self.reports = [], []   # step number (from 1) and report of each record
        self.first_seen = {}                # (name, flag) -> the step it first appeared at
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._pending, self._arrived, self._backwards = {}, set(), 0
        self._handles = [p.register_hook(self._hook(n, p)) for n, p in self._params]

    def _hook(self, name, p):
        def hook(g):
            if name in self._arrived:  # a new backward began and step() was not called
                self._close()
            self._arrived.add(name)
            if self._backwards % self.every == 0:
                self._pending[name] = _grad_stats(g, p)
        return hook

    def _close(self):
        if not self._arrived:
            return None
        report = None
        if self._pending:
            entries = [(n, tuple(p.shape), p.numel(), self._pending.get(n))
                       for n, p in self._params]
            report = _build_report(entries, self.lr, self.vanishing, self.exploding)
            self.steps.append(self._backwards + 1)  # steps count from 1, as training logs do
            self.reports.append(report)
            self._note_flags(report, self._backwards + 1)
        self._pending, self._arrived = {}, set()
        self._backwards += 1
        return report

    def _note_flags(self, report, step):
        for r in report.rows:
            for flag in r.flags:
                if (r.name, flag) in self.first_seen:
                    continue
                self.first_seen[(r.name, flag)] = step
                if self.warn:
                    hint = _HINTS[flag].format(vanishing=self.vanishing,
                                               exploding=self.exploding)
                    warnings.warn(f"GradientMonitor: {r.name} {tuple(r.shape)} raised "
                                  f"'{flag}' at step {step} (grad norm "
                                  f"{r.grad_norm:.3e})\n  hint: {hint}", GradientWarning,
                                  stacklevel=4)

    def step(self):
        """Close the current backward's record; returns its GradReport (None if skipped)."""
        return self._close()

    @property
    def history(self):
        """Parameter name -> its grad norm at each recorded step (None: no grad that step)."""
        return {n: [rep[n].grad_norm for rep in self.reports] for n, _ in self._params}

    def flagged(self, flag=None):
        """Names that raised `flag` (any flag when None) at some recorded step, in model
        order."""
        if flag is not None and flag not in FLAGS:
            raise ValueError(f"flagged: unknown flag {flag!r}\n  hint: use one of {FLAGS}")
        hit = {n for n, f in self.first_seen if flag is None or f == flag}
        return [n for n, _ in self._params if n in hit]

    def remove(self):
        """Unregister the hooks; what was recorded stays readable."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def plot(self, path, title=None):
        """Grad norm per parameter over the recorded steps (log scale) saved to `path`; the
        step where a parameter first raised a flag is marked in that flag's colour."""
        fig = _figure("GradientMonitor.plot", figsize=(7.5, 4.5))
        ax = fig.add_subplot()
        for name, norms in self.history.items():
            pts = [(s, v) for s, v in zip(self.steps, norms)
                   if v is not None and math.isfinite(v) and v > 0]
            ax.plot([s for s, _ in pts], [v for _, v in pts], linewidth=1,
                    label=name if len(self._params) <= 12 else None)
        self._mark_flags(ax)
        ax.axhline(self.exploding, color=_COLORS["exploding"], linestyle=":",
                   label="exploding threshold")
        ax.set(yscale="log", xlabel="step", ylabel="grad norm",
               title=title or "gradient norms over training")
        _dedup_legend(ax)
        fig.tight_layout()
        fig.savefig(path)
        return Path(path)

    def _mark_flags(self, ax):
        for (name, flag), step in self.first_seen.items():
            v = self.reports[self.steps.index(step)][name].grad_norm
            if v == 0:
                continue  # nothing to mark on a log axis
            shown = v if math.isfinite(v) else self.exploding
            ax.plot([step], [shown], marker="x", markersize=9, color=_COLORS[flag],
                    linestyle="none", label=f"first {flag}")
