"""Training loss: softmax cross-entropy that skips the ignore label, with optional class weights and Dice term."""


def segmentation_loss(scores, target, *, ignore_label=255, weight=None, dice_weight=0.0):
    """Mean loss over labelled pixels (Caffe's VALID normalisation), computed in float32.

    Args:
        scores: N×C×H×W class scores (any float dtype; cast to float32 for a stable softmax).
        target: N×H×W integer labels; `ignore_label` pixels contribute nothing.
        weight: C float32 class weights on the same device, or None.
        dice_weight: adds `dice_weight * (1 - mean soft Dice over classes present in the batch)`.
    """
    import torch.nn.functional as F

    scores = scores.float()
    target = target.long()
    ignore = -100 if ignore_label is None else int(ignore_label)
    loss = F.cross_entropy(scores, target, weight=weight, ignore_index=ignore)
    if dice_weight:
        loss = loss + dice_weight * soft_dice_loss(scores, target, ignore)
    return loss


def soft_dice_loss(scores, target, ignore_label=255):
    """1 − mean soft Dice over the classes present in `target` (ignored pixels masked out)."""
    import torch

    c = scores.shape[1]
    valid = (target != ignore_label) & (target >= 0) & (target < c)
    prob = torch.softmax(scores, dim=1) * valid.unsqueeze(1)
    onehot = torch.zeros_like(prob)
    onehot.scatter_(1, torch.where(valid, target, torch.zeros_like(target)).unsqueeze(1), 1.0)
    onehot = onehot * valid.unsqueeze(1)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    if not bool(present.any()):
        return scores.sum() * 0.0
    dice = (2 * inter + 1e-6) / (denom + 1e-6)
    return 1.0 - dice[present].mean()
