"""``--offsets rd``: per-channel quantisation offsets that minimise ``λ·255²·MSE + bpp``.

The objective is the model's training loss (``lic2cpp train``, CompressAI): ``MSE`` of the
decoded image ``clamp(g_s(y_hat), 0, 1)`` against the training patch, in [0, 1] units over
the three colour channels, plus ``bpp``, the code length of the latent per pixel. Both are
measured on the training set:

- **distortion in the image domain, through g_s**, on ``RD_PATCHES`` patches spread evenly
  over the training set. Trying every channel and candidate offset through ``g_s`` would
  take hours, so candidates are ranked by a second-order model of the image error around
  the current offsets -- the exact gradient ``∂SSE/∂y_hat`` (one backward pass through
  ``g_s``) and the Gauss-Newton term ``‖JΔ‖²`` estimated with random probes (Hutchinson:
  ``E_v[(vᵀJΔ)²] = ‖JΔ‖²`` for Rademacher ``v``) -- and **every accepted step is measured
  with the true decoded MSE** (the next round's ``g_s`` pass);
- **rate** as the empirical conditional entropy of each channel's symbols given its
  left/upper neighbours' activity, on all the training latents (the context model's own
  spatial contexts; the inter-channel context and the table quantisation are left out of
  the search, the final fit has them).

Offsets matter modulo 1 (an integer shift only renames the symbols), so each channel's
candidates are ``RD_GRID`` offsets over one period around its median. The single-channel
predictions are good (within about 10% of the true change on the fixture), but the
channels interact through ``g_s`` (moving every channel by its own best step at once made
the true objective worse), so the search is greedy: each round moves the ``RD_FIRST_MOVE``
channels with the best predicted gains, re-linearises with a fresh gradient at the new
point and keeps the move only if the true objective went down; after a rejected round
the number of channels moved per round is halved, and the search ends when it reaches 0,
no channel predicts a gain, or after ``RD_ROUNDS`` rounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lic2cpp.errors import LicError

RD_PATCHES = 16  # training patches on which the decoded MSE is measured
RD_PROBES = 6  # random probes for the curvature estimate
RD_GRID = 16  # candidate offsets per channel: start + k / RD_GRID, one period
RD_ROUNDS = 16  # at most this many g_s gradient passes after the first
RD_FIRST_MOVE = 24  # channels moved per round at first; halved after a rejected round
RD_BATCH = 4  # patches per g_s pass


def dequantize(y: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """round(y - o) + o in float32, as the encoder and decoder compute it; y [N, C, h, w]."""
    o = offsets.astype(np.float32)[None, :, None, None]
    return (np.rint(y - o) + o).astype(np.float32)


def decoded_sse(net: Any, x: np.ndarray, y_hat: np.ndarray) -> float:
    """Sum of squared errors of clamp(g_s(y_hat), 0, 1) against x (float32 NCHW in [0, 1])."""
    import torch

    total = 0.0
    with torch.no_grad():
        for s in range(0, len(x), RD_BATCH):
            out = net.g_s(torch.from_numpy(y_hat[s:s + RD_BATCH])).clamp(0, 1)
            total += float(((out - torch.from_numpy(x[s:s + RD_BATCH])) ** 2).double().sum())
    return total


def gradient_and_probes(net: Any, x: np.ndarray, y_hat: np.ndarray, probes: int, seed: int
                        ) -> tuple[np.ndarray, np.ndarray, float]:
    """∂SSE/∂y_hat [S, C, h, w], probe vectors Jᵀv [P, S, C, h, w] (P may be 0) and the SSE
    of clamp(g_s(y_hat), 0, 1) against x."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    grad = np.zeros_like(y_hat)
    jtv = np.zeros((probes,) + y_hat.shape, dtype=np.float32)
    sse = 0.0
    for s in range(0, len(x), RD_BATCH):
        yb = torch.from_numpy(y_hat[s:s + RD_BATCH].copy()).requires_grad_(True)
        out = net.g_s(yb).clamp(0, 1)
        err = ((out - torch.from_numpy(x[s:s + RD_BATCH])) ** 2).sum()
        sse += float(err.detach().double())
        (g,) = torch.autograd.grad(err, yb, retain_graph=probes > 0)
        grad[s:s + RD_BATCH] = g.numpy()
        for p in range(probes):
            v = torch.randint(0, 2, out.shape, generator=gen).float().mul_(2).sub_(1)
            (u,) = torch.autograd.grad(out, yb, grad_outputs=v, retain_graph=p < probes - 1)
            jtv[p, s:s + RD_BATCH] = u.numpy()
    return grad, jtv, sse


def channel_rates(y: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Bits of each channel's symbols q = round(y - o) under their empirical distribution
    given the left/upper neighbours' activity (q != the channel's most frequent value)."""
    bits = np.zeros(y.shape[1])
    for c in range(y.shape[1]):
        q = np.rint(y[:, c] - np.float32(offsets[c])).astype(np.int64)
        q -= q.min()
        counts = np.bincount(q.reshape(-1))
        act = q != int(np.argmax(counts))
        ctx = np.zeros(q.shape, dtype=np.int64)
        ctx[:, :, 1:] += act[:, :, :-1]
        ctx[:, 1:, :] += 2 * act[:, :-1, :]
        joint = np.bincount((ctx * len(counts) + q).reshape(-1),
                            minlength=4 * len(counts)).reshape(4, -1).astype(np.float64)
        tot = joint.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            bits[c] = -np.sum(np.where(joint > 0, joint * np.log2(joint / tot), 0.0))
    return bits


def candidate_rates(y: np.ndarray, cands: np.ndarray, progress: bool) -> np.ndarray:
    """channel_rates for every row of candidate offsets cands [K, C]: bits [K, C]."""
    from tqdm import tqdm

    return np.stack([channel_rates(y, row)
                     for row in tqdm(cands, desc="rd: rates", unit="offset", leave=False,
                                     disable=not progress)])


def predicted_sse_changes(grad: np.ndarray, proj: np.ndarray, y_cand: np.ndarray,
                          choice: np.ndarray) -> np.ndarray:
    """Predicted change of the decoded SSE when one channel alone moves from its current
    candidate ``choice[c]`` to candidate k: [K, C].

    Second order around the current latent: ``gᵀΔ + mean_p (vₚᵀJΔ)²`` with ``g`` the exact
    gradient, ``Δ`` the exact change of that channel's de-quantised values (its shift and
    its rounding flips) and ``proj[k, p, s, c] = (Jᵀvₚ)·y_cand[k]`` the probes' projections
    (Hutchinson's estimate of ``‖JΔ‖²``). ``y_cand`` [K, S, C, h, w] holds every candidate's
    de-quantised latent.
    """
    cols = np.arange(y_cand.shape[2])
    current = y_cand[choice, :, cols].transpose(1, 0, 2, 3)  # [S, C, h, w]
    lin = np.einsum("scij,kscij->kc", grad, y_cand - current[None], dtype=np.float64)
    quad = ((proj - proj[choice, :, :, cols].transpose(1, 2, 0)[None]) ** 2
            ).sum(axis=2).mean(axis=1)
    return lin + quad


def rd_offsets(net: Any, patches: np.ndarray, latents: np.ndarray, lmbda: float,
               start: np.ndarray, *, progress: bool = False, rounds: int = RD_ROUNDS,
               num_patches: int = RD_PATCHES, probes: int = RD_PROBES, grid: int = RD_GRID,
               first_move: int = RD_FIRST_MOVE, seed: int = 0
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Offsets minimising λ·255²·MSE + bpp on the training set (module docstring).

    ``patches`` uint8 [N, P, P, 3] and their ``latents`` [N, C, h, w]; ``start`` the first
    offsets (the medians). Returns the offsets (float32 [C]) and a record of the search.
    """
    from tqdm import tqdm

    if not lmbda > 0:
        raise LicError(f"λ must be positive, got {lmbda}")
    n, channels = latents.shape[:2]
    pixels_all = n * patches.shape[1] * patches.shape[2]
    pick = np.unique(np.linspace(0, n - 1, min(num_patches, n)).round().astype(np.int64))
    x = np.ascontiguousarray(np.asarray(patches[pick]).transpose(0, 3, 1, 2),
                             dtype=np.float32) / np.float32(255.0)
    y_sub = np.ascontiguousarray(latents[pick])
    weight_d = lmbda * 255.0 ** 2 / x.size  # objective per unit of SSE (MSE over 3 colours)
    start = np.asarray(start, dtype=np.float32)
    # candidate j of channel c: start[c] + (j - grid/2) / grid, one period around the start
    cands = start[None, :] + ((np.arange(grid) - grid // 2) / grid).astype(np.float32)[:, None]
    home = grid // 2
    y_cand = np.stack([dequantize(y_sub, cands[j]) for j in range(grid)])  # [K, S, C, h, w]
    rates = candidate_rates(latents, cands, progress)  # bits, [K, C]
    cols = np.arange(channels)

    def at(choice: np.ndarray) -> np.ndarray:
        return y_cand[choice, :, cols].transpose(1, 0, 2, 3)  # [S, C, h, w]

    def rate_bpp(choice: np.ndarray) -> float:
        return float(rates[choice, cols].sum()) / pixels_all

    # Curvature probes once, at the start: Jᵀv projected on every candidate's latent.
    grad, jtv, sse = gradient_and_probes(net, x, at(np.full(channels, home)), probes, seed)
    proj = np.einsum("pscij,kscij->kpsc", jtv, y_cand, dtype=np.float64)  # [K, P, S, C]
    del jtv

    choice = np.full(channels, home)
    best_choice, best_grad = choice.copy(), grad
    best_objective = weight_d * sse + rate_bpp(choice)
    history: list[dict[str, Any]] = [{"round": 0, "objective": best_objective,
                                      "mse": sse / x.size, "bpp": rate_bpp(choice)}]
    move = first_move
    last_moved = np.zeros(0, dtype=np.int64)
    bar = tqdm(total=rounds, desc="rd offsets", unit="round", disable=not progress)
    for r in range(1, rounds + 1):
        bar.update(1)
        choice, grad = best_choice.copy(), best_grad
        gain = (weight_d * predicted_sse_changes(grad, proj, y_cand, choice)
                + (rates - rates[choice, cols][None, :]) / pixels_all)
        gain[:, last_moved] = 0.0  # no channel moves twice in a row (no back and forth)
        target = np.argmin(gain, axis=0)
        order = np.argsort(gain[target, cols])
        order = order[gain[target[order], order] < 0][:move]  # the most promising channels
        if len(order) == 0:
            break
        last_moved = order
        choice[order] = target[order]
        grad, _, sse = gradient_and_probes(net, x, at(choice), 0, seed)
        objective = weight_d * sse + rate_bpp(choice)
        record = {"round": r, "channels_moved": len(order), "objective": objective,
                  "mse": sse / x.size, "bpp": rate_bpp(choice),
                  "predicted_change": float(gain[target[order], order].sum()),
                  "measured_change": objective - best_objective}
        history.append(record)
        if objective < best_objective:
            best_choice, best_grad, best_objective = choice, grad, objective
        else:
            record["rejected"] = True
            move //= 2  # a smaller step: the model is only trusted near the current point
            if move == 0:
                break
    bar.close()
    offsets = cands[best_choice, cols].astype(np.float32)
    info = {"rd_patches": len(pick), "rd_probes": probes, "rd_grid": grid,
            "rd_history": history, "channels_moved": int((best_choice != home).sum()),
            "mean_abs_shift": float(np.abs(offsets - start).mean())}
    return offsets, info
