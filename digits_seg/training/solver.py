"""Caffe solver fields → a torch optimizer, and the `solver.prototxt` a job folder records.

The optimizer is built over `net.param_groups(base_lr, weight_decay)` so each parameter's
`lr_mult`/`decay_mult` from the prototxt applies. The LR schedule is applied by the trainer,
which sets every group's `lr` to `group["initial_lr"] * lr_at(it) / base_lr`; that keeps the
scheduler state to one number (the iteration) and avoids pickled scheduler objects.
"""

from ..errors import ValidationError
from .lr_policy import resolve_policy

SOLVER_TYPES = ("SGD", "Nesterov", "Adam", "AdamW", "RMSProp", "AdaGrad", "AdaDelta")
"""Solver types the form offers (Caffe's names; AdamW added)."""


def build_optimizer(param_groups, params):
    """Return a torch optimizer for `param_groups` (from `net.param_groups`) as `params` asks.

    Caffe's defaults: Adam beta2 0.999 and eps 1e-8; RMSProp decay 0.99 (Caffe `rms_decay`);
    AdaDelta rho = momentum (0.95 in Caffe examples), eps 1e-6.
    """
    import torch

    kind = params.get("solver_type", "SGD")
    momentum = float(params.get("momentum", 0.9))
    groups = [dict(g) for g in param_groups if any(p.requires_grad for p in g["params"])]
    if not groups:
        raise ValidationError("The network has no trainable parameters (every lr_mult is 0)", field="network")
    for g in groups:
        g["initial_lr"] = g["lr"]
        g["params"] = [p for p in g["params"] if p.requires_grad]
    lr = float(params.get("base_lr", 0.01))
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if kind == "Nesterov":
        if momentum <= 0:
            raise ValidationError("Nesterov needs momentum > 0", field="momentum")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if kind == "Adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum or 0.9, 0.999), eps=1e-8)
    if kind == "AdamW":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum or 0.9, 0.999), eps=1e-8)
    if kind == "RMSProp":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.99, eps=1e-8, momentum=0.0)
    if kind == "AdaGrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=1e-8)
    if kind == "AdaDelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=momentum or 0.95, eps=1e-6)
    raise ValidationError("Unknown solver type %r. Available: %s" % (kind, ", ".join(SOLVER_TYPES)), field="solver_type")


def set_lr(optimizer, factor):
    """Scale every group's learning rate to `initial_lr * factor` (the schedule's multiplier)."""
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor


def _q(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def solver_prototxt(params, total_iters, iters_per_epoch, net_path="network.prototxt"):
    """Caffe solver text for this job (what Caffe would need to run it; cosine is our extension)."""
    sched = resolve_policy(params, total_iters)
    lines = ["# written by digits-seg; iterations derived from epochs and % of training"]
    lines.append("net: %s" % _q(net_path))
    lines.append("type: %s" % _q(params.get("solver_type", "SGD")))
    lines.append("base_lr: %r" % float(params.get("base_lr", 0.01)))
    lines.append("lr_policy: %s" % _q(sched["policy"]))
    if sched["policy"] in ("step", "multistep", "exp", "inv", "sigmoid"):
        lines.append("gamma: %r" % sched["gamma"])
    if sched["policy"] in ("inv", "poly"):
        lines.append("power: %r" % sched["power"])
    if sched["policy"] in ("step", "sigmoid"):
        lines.append("stepsize: %d" % sched["stepsize"])
    if sched["policy"] == "multistep":
        lines.extend("stepvalue: %d" % v for v in sched["stepvalues"])
    if params.get("solver_type", "SGD") in ("SGD", "Nesterov", "Adam", "AdamW", "AdaDelta"):
        lines.append("momentum: %r" % float(params.get("momentum", 0.9)))
    if params.get("solver_type") in ("Adam", "AdamW"):
        lines.append("momentum2: 0.999")
    lines.append("weight_decay: %r" % float(params.get("weight_decay", 0.0005)))
    lines.append("iter_size: %d" % int(params.get("iter_size", 1)))
    lines.append("max_iter: %d" % int(total_iters))
    val_every = float(params.get("val_interval") or 0)
    if val_every > 0:
        lines.append("test_interval: %d" % max(1, int(round(val_every * iters_per_epoch))))
    snap_every = float(params.get("snapshot_interval") or 0)
    if snap_every > 0:
        lines.append("snapshot: %d" % max(1, int(round(snap_every * iters_per_epoch))))
    lines.append('snapshot_prefix: "snapshot"')
    lines.append("snapshot_format: HDF5")
    lines.append("display: %d" % int(params.get("log_interval", 10)))
    if params.get("seed") is not None:
        lines.append("random_seed: %d" % int(params["seed"]))
    lines.append("solver_mode: %s" % ("CPU" if params.get("device") == "cpu" else "GPU"))
    return "\n".join(lines) + "\n"
