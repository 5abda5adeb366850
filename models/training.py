"""What every training loop here does after computing its loss (torch)."""
from __future__ import annotations


def optimizer_step(model, opt, sched, loss, step: int, steps: int, progress=None,
                   clip: float | None = None) -> None:
    """Backpropagate ``loss``, optionally clip the gradient norm, step the optimizer and the
    learning-rate schedule, report progress (step, steps, loss)."""
    import torch
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    if progress is not None:
        progress(step + 1, steps, loss.item())

