"""A prototype, not adopted: the fp32 folded forward (one Linear of W + the adapter's update) for the two paths that
today run the adapter as a branch on the CPU, so that the next session knows what it would save. Run cost_split.py
with this imported (COST_SPLIT_FOLD=1) to time train_runs with it; it changes float rounding of the forward and of
the gradients (the routing scores and adapter gradients stay the same quantities), so it is not the library's code.

  capture (erase, route,          y = x (W + U diag(s) Vh)^T, and a tap whose backward forms each rollout's
  route-subset)                   dL/ds_b = sum_t (Vh x_bt) * (U^T gy_bt) from the layer's input and output gradient
                                  (the probe's gradient), instead of the branch U ((Vh x) * (s + P_b))
  axis (scorda-absorb)            y = x (W + U diag(s) Vh' + a_out a_in^T - c_out u_in^T)^T
Only one run a process (the batched-runs path keeps the branch). Unlike the library's fold it ignores
adapters.folding(False) and the token-count rule (AdaptedLinear._fold): every fp32 3-d forward of an active svd
adapter folds."""

import torch
import torch.nn.functional as F

from projected_grpo.method import adapters as ad


class Tap(torch.autograd.Function):
    """Identity on y; the backward also returns the probe's gradient sum_t h_bt * (gy_bt U)."""

    @staticmethod
    def forward(ctx, y, h, probe, U):
        ctx.save_for_backward(h, U)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, gy):
        h, U = ctx.saved_tensors
        return gy, None, (h * (gy @ U)).sum(1), None


def folded(self, run):
    w = self.base.weight + (self.U * self._s(run)) @ self._vh()
    axis_on = self.deployed_on if self.axis == "deployed" else self.quarantine_on
    if self.axis != "none" and axis_on:
        w = w + torch.outer(self.axis_out, self.axis_in) - torch.outer(self.axis_c_out, self.axis_u_in)
    return w


def forward(self, x):
    if (self.merged is None and (self.deployed_on or self.quarantine_on) and self.kind == "svd"
            and self.active is not None and x.dtype == torch.float32 and x.ndim == 3):
        y = F.linear(x, folded(self, self.active), self.base.bias)
        if self.probe is not None:
            with torch.no_grad():
                h = x @ self._vh().T
            y = Tap.apply(y, h, self.probe, self.U)
        return y
    return original(self, x)


original = ad.AdaptedLinear.forward
ad.AdaptedLinear.forward = forward
