"""RDOQ prototype (issue 9, part 2): choose the latent integers for D + λ·R with the real rate
of the context model and the real image distortion through g_s, in numpy/PyTorch.

This is the design study behind the C++ encoder's ``--rdoq``; docs/rdoq.md has the findings.

Objective, in bits (the training loss ``λ·255²·MSE + bpp`` times the pixel count):

    J(q) = bits(q) + w · SSE(x, clamp(g_s(q + offset), 0, 1)),   w = λ · 255² / 3

with SSE over the image's own pixels (the padding does not count) in [0, 1] units.

Algorithm (one "sweep" = one forward and one backward pass of g_s):
- the gradient ``G = ∂SSE/∂q`` at the current latent (one backward pass: the transposed
  network), and per channel the squared norm ``a_c`` of the impulse response (the diagonal
  of JᵀJ, measured once by probing a lattice of latents whose responses do not overlap);
- for every latent in one checkerboard phase ((rank + y + x) even or odd, so that no two
  changed latents share a context dependency) and each candidate step δ = ±1:
  ``ΔJ ≈ ΔR_exact + w (G δ + a_c δ²)``, the rate change exact (own symbol, the contexts of the
  right and lower neighbours and of the next channel in coding order, activation flags);
- apply the best step of each latent whose predicted ΔJ is negative, re-linearise, repeat;
  the forward pass of the next sweep gives the true J, and a sweep that made J worse is
  undone and retried with fewer changes (only the largest predicted gains).

Run: python benchmarks/rdoq_prototype.py --help
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lic2cpp.entropy import ESCAPE_LENGTH_BITS, PROB_ONE, EntropyModel, _bit_length

# --- rate: the context model, vectorised, in coding order -----------------------------------

class RateModel:
    """Exact code length of a latent and of single-latent changes (docs/entropy-model.md).

    Arrays are in *coding order*: rank k is channel ``order[k]``, its predecessor is k - 1.
    """

    def __init__(self, em: EntropyModel):
        self.em = em
        self.order = np.asarray(em.order)
        chans = [em.channels[c] for c in self.order]
        self.C = len(chans)
        self.mpv = np.array([c.mpv for c in chans], dtype=np.int64)
        self.lo = np.array([c.lo for c in chans], dtype=np.int64)
        self.nsym = np.array([c.nsym for c in chans], dtype=np.int64)
        self.t_nbr = np.array([c.t_nbr for c in chans], dtype=np.int64)
        self.t_prev = np.array([c.t_prev for c in chans], dtype=np.int64)
        self.flag_on = np.array([-math.log2(c.flag_freq / PROB_ONE) for c in chans])
        self.flag_off = np.array([-math.log2(1 - c.flag_freq / PROB_ONE) for c in chans])
        smax = int(self.nsym.max()) + 1
        self.table = np.zeros((self.C, 8, smax))
        for k, c in enumerate(chans):
            self.table[k, :, :c.nsym + 1] = -np.log2(c.freqs / PROB_ONE)

    def to_order(self, a: np.ndarray) -> np.ndarray:
        return a[self.order]

    def from_order(self, a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        out[self.order] = a
        return out

    def _b(self, a: np.ndarray) -> np.ndarray:  # per-rank vector -> broadcast over (k, y, x)
        return a[:, None, None]

    def cost(self, v: np.ndarray, ctx: np.ndarray, k0: int = 0) -> np.ndarray:
        """Bits of values v[k, y, x] (ranks k0, k0 + 1, ...) coded with contexts ctx."""
        ks = slice(k0, k0 + v.shape[0])
        rel = v - self.lo[ks, None, None]
        nsym = self.nsym[ks, None, None]
        inside = (rel >= 0) & (rel < nsym)
        idx = np.where(inside, rel, nsym)
        dist = np.where(rel < 0, -rel - 1, rel - nsym)
        esc = np.where(inside, 0, 1 + ESCAPE_LENGTH_BITS + _bit_length(dist + 1) - 1)
        k = np.arange(k0, k0 + v.shape[0])[:, None, None]
        return self.table[k, ctx, idx] + esc

    def act_nbr(self, v: np.ndarray) -> np.ndarray:
        return np.abs(v - self._b(self.mpv)) > self._b(self.t_nbr)

    def act_next(self, v: np.ndarray) -> np.ndarray:
        """Activity of v[k] as the P context of rank k + 1 (uses rank k+1's t_prev)."""
        t = np.concatenate([self.t_prev[1:], [0]])
        return np.abs(v - self._b(self.mpv)) > self._b(t)

    def contexts(self, q: np.ndarray) -> np.ndarray:
        an = self.act_nbr(q)
        ctx = np.zeros(q.shape, dtype=np.int64)
        ctx[:, :, 1:] |= an[:, :, :-1]
        ctx[:, 1:, :] |= an[:, :-1, :].astype(np.int64) << 1
        ctx[1:] |= self.act_next(q)[:-1].astype(np.int64) << 2
        return ctx

    def total_bits(self, q: np.ndarray) -> float:
        cost = self.cost(q, self.contexts(q)).reshape(self.C, -1).sum(axis=1)
        allm = (q == self._b(self.mpv)).reshape(self.C, -1).all(axis=1)
        return float(np.where(allm, self.flag_on, self.flag_off + cost).sum())

    def delta(self, q: np.ndarray, v: np.ndarray) -> np.ndarray:
        """ΔR (bits) of changing each latent q[k,y,x] alone to v[k,y,x] (exact)."""
        ctx = self.contexts(q)
        cur = self.cost(q, ctx)
        own = self.cost(v, ctx) - cur
        an_q, an_v = self.act_nbr(q), self.act_nbr(v)
        # right neighbour: its L bit becomes act(v)
        right = np.zeros(q.shape)
        ctx_r = ctx[:, :, 1:] & ~1 | an_v[:, :, :-1]
        right[:, :, :-1] = self.cost(q[:, :, 1:], ctx_r) - cur[:, :, 1:]
        down = np.zeros(q.shape)
        ctx_d = ctx[:, 1:, :] & ~2 | (an_v[:, :-1, :].astype(np.int64) << 1)
        down[:, :-1, :] = self.cost(q[:, 1:, :], ctx_d) - cur[:, 1:, :]
        right = np.where(an_q == an_v, 0.0, right)
        down = np.where(an_q == an_v, 0.0, down)
        # next channel: its P bit becomes act_next(v)
        ap_q, ap_v = self.act_next(q), self.act_next(v)
        nxt = np.zeros(q.shape)
        ctx_n = ctx[1:] & ~4 | (ap_v[:-1].astype(np.int64) << 2)
        nxt[:-1] = self.cost(q[1:], ctx_n, 1) - cur[1:]
        nxt = np.where(ap_q == ap_v, 0.0, nxt)
        # flags: a channel's cost is flag_on when all-mpv, else flag_off + its symbols
        mpv = self._b(self.mpv)
        nonmpv = (q != mpv).reshape(self.C, -1).sum(axis=1)
        s = cur.reshape(self.C, -1).sum(axis=1)
        n_new = self._b(nonmpv) - (q != mpv) + (v != mpv)
        old_f = np.where(self._b(nonmpv) == 0, self._b(self.flag_on),
                         self._b(self.flag_off + s))
        new_f = np.where(n_new == 0, self._b(self.flag_on),
                         self._b(self.flag_off + s) + own + right + down)
        next_coded = np.concatenate([nonmpv[1:] > 0, [False]])
        return new_f - old_f + np.where(self._b(next_coded), nxt, 0.0)



# --- distortion: g_s in PyTorch ---------------------------------------------------------------

@dataclass
class Problem:
    net: torch.nn.Module
    rate: RateModel
    x: torch.Tensor  # (1, 3, ph, pw) padded image in [0, 1]
    h: int
    w: int  # image size (distortion counts these pixels only)
    offset: np.ndarray  # (C,) natural channel order
    y: np.ndarray  # (C, lh, lw) g_a output, natural order
    lam: float

    @property
    def weight(self) -> float:
        return self.lam * 255.0 ** 2 / 3.0

    def q_plain(self) -> np.ndarray:
        return np.rint(self.y - self.offset[:, None, None]).astype(np.int64)

    def yhat(self, q: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((q + self.offset[:, None, None]).astype(np.float32))[None]

    def sse_of(self, xhat: torch.Tensor) -> torch.Tensor:
        d = xhat.clamp(0, 1)[..., :self.h, :self.w] - self.x[..., :self.h, :self.w]
        return (d * d).sum()

    def sse(self, q: np.ndarray) -> float:
        with torch.no_grad():
            return float(self.sse_of(self.net.g_s(self.yhat(q))))

    def sse_grad(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        """SSE and ∂SSE/∂q (natural channel order): one forward, one backward pass."""
        yh = self.yhat(q).requires_grad_(True)
        s = self.sse_of(self.net.g_s(yh))
        (g,) = torch.autograd.grad(s, yh)
        return float(s), g[0].detach().double().numpy()

    def objective(self, q: np.ndarray, sse: float | None = None) -> tuple[float, float, float]:
        """(J, bits, sse)."""
        if sse is None:
            sse = self.sse(q)
        bits = self.rate.total_bits(self.rate.to_order(q))
        return bits + self.weight * sse, bits, sse


def load_problem(model: Path, tables: Path, image: Path, lam: float,
                 offsets: str = "tables", crop: int = 0) -> Problem:
    from lic2cpp.images import read_rgb

    net = torch.load(model, weights_only=False)["model"].eval()
    em = EntropyModel.load(tables)
    rgb = read_rgb(image)
    if crop:  # a centred crop, for quick experiments
        cy, cx = (rgb.shape[0] - crop) // 2, (rgb.shape[1] - crop) // 2
        rgb = rgb[cy:cy + crop, cx:cx + crop]
    h, w = rgb.shape[:2]
    m = 16
    ph, pw = -(-h // m) * m, -(-w // m) * m
    padded = np.pad(rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        y = net.g_a(x)[0].numpy()
    if offsets == "tables":  # the offsets the tables were fitted with
        off = em.offsets.astype(np.float64)
    else:  # the entropy bottleneck's medians
        off = net.entropy_bottleneck.quantiles[:, 0, 1].detach().double().numpy()
    return Problem(net, RateModel(em), x, h, w, off.astype(np.float32).astype(np.float64),
                   y.astype(np.float64), lam)


def psnr_of(p: Problem, q: np.ndarray) -> float:
    """PSNR of the decoded 8-bit image, as lic2cpp eval measures it."""
    with torch.no_grad():
        xh = p.net.g_s(p.yhat(q)).clamp(0, 1)[..., :p.h, :p.w]
    a = torch.floor(xh * 255 + 0.5)
    b = torch.round(p.x[..., :p.h, :p.w] * 255)
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(255 ** 2 / mse)


# --- the diagonal of JᵀJ: a_{c,p} ≈ a_c · s_p -------------------------------------------------

SPACING = 4  # latents this far apart have disjoint responses (footprint 61 px < 4 · 16)
FOOTPRINT = 32  # the output cell of latent i: pixels [16 i - 32, 16 i + 32) hold all of it


def probe_diagonal(p: Problem, q: np.ndarray, rounds: int = 1) -> tuple[np.ndarray, int]:
    """Per-latent a_{c,p} = ||g_s(q + e_{c,p}) - g_s(q)||² (clamped outputs), rank-1 model.

    One pass perturbs +1 one latent in every SPACING x SPACING block (responses disjoint),
    so SPACING² passes measure every position once, each with one channel (channels
    assigned round-robin so each gets about positions / C measurements). The measurements
    follow log a = α_c + σ_p closely (a spatial factor shared by all channels explains
    ~85% of the within-channel variance); α_c = mean of log m over the channel's
    measurements, σ_p = the residual at p (averaged over rounds). Returns (a[C,lh,lw], passes).
    """
    C, lh, lw = q.shape
    m = p.net.g_s  # the decoder's own forward
    logs = []  # (c, y, x, log m)
    with torch.no_grad():
        base = m(p.yhat(q)).clamp(0, 1)
        passes = 1
        for r in range(rounds):
            for oy in range(SPACING):
                for ox in range(SPACING):
                    dq = np.zeros(q.shape, dtype=np.float32)
                    pos = []
                    for yy in range(oy, lh, SPACING):
                        for xx in range(ox, lw, SPACING):
                            c = ((yy * lw + xx) * 7 + r * 61) % C  # round robin, spread
                            dq[c, yy, xx] = 1.0
                            pos.append((c, yy, xx))
                    out = m(p.yhat(q) + torch.from_numpy(dq)[None]).clamp(0, 1)
                    passes += 1
                    d = ((out - base)[..., :p.h, :p.w] ** 2).sum(dim=1)[0].numpy()
                    for c, yy, xx in pos:
                        y0, x0 = max(0, 16 * yy - FOOTPRINT), max(0, 16 * xx - FOOTPRINT)
                        v = d[y0:16 * yy + FOOTPRINT, x0:16 * xx + FOOTPRINT].sum()
                        logs.append((c, yy, xx, math.log(max(v, 1e-12))))
    arr = np.array(logs)
    cs, ys, xs = arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2].astype(int)
    lv = arr[:, 3]
    cnt = np.bincount(cs, minlength=C)
    alpha = np.bincount(cs, weights=lv, minlength=C) / np.maximum(cnt, 1)
    alpha = np.where(cnt > 0, alpha, alpha[cnt > 0].mean())
    sig = np.zeros((lh, lw))
    np.add.at(sig, (ys, xs), lv - alpha[cs])
    sig /= rounds
    return np.exp(alpha[:, None, None] + sig[None]), passes


def probe_channel(p: Problem, q: np.ndarray, rounds: int = 1) -> tuple[np.ndarray, int]:
    """Ablation: the same probes, but a per-channel constant a_c (no spatial factor)."""
    a, passes = probe_diagonal(p, q, rounds)
    ac = np.exp(np.log(a).mean(axis=(1, 2)))
    return np.broadcast_to(ac[:, None, None], q.shape).copy(), passes


# --- the greedy sweeps --------------------------------------------------------------------------

@dataclass
class Result:
    q: np.ndarray
    J: float
    bits: float
    sse: float
    passes: int  # g_s-sized passes (forward, backward and probes)
    history: list[tuple[float, float, float, int]]


@dataclass
class Options:
    sweeps: int = 12
    diag: str = "rank1"  # rank1 | channel
    per_position: int = 2  # at most this many changes per latent position per sweep (0: any)
    frac: float = 1.0  # initial fraction of the candidates applied (largest gains first)
    adaptive: bool = True  # grow/shrink frac from the predicted/actual gain ratio
    phases: int = 3  # 2: checkerboard (rank + y + x) parity; 1: all latents every sweep;
    # 3: spatial checkerboard (y + x) parity; 4: one of the four (y % 2, x % 2) sub-lattices


def candidates(p: Problem, q: np.ndarray, g: np.ndarray, a: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Best step (-1, 0, +1) of every latent alone and its predicted ΔJ (coding order)."""
    rm, w = p.rate, p.weight
    qo, go, ao = rm.to_order(q), rm.to_order(g), rm.to_order(a)
    gain = np.zeros(q.shape)
    step = np.zeros(q.shape, dtype=np.int64)
    for d in (-1, 1):
        dj = rm.delta(qo, qo + d) + w * (go * d + ao)
        better = dj < gain
        gain = np.where(better, dj, gain)
        step = np.where(better, d, step)
    return gain, step


def rdoq(p: Problem, opt: Options | None = None, verbose: bool = False) -> Result:
    opt = opt or Options()
    rm = p.rate
    q = p.q_plain()
    probe = probe_diagonal if opt.diag == "rank1" else probe_channel
    a, passes = probe(p, q)
    C, lh, lw = q.shape
    kk, yy, xx = np.meshgrid(np.arange(C), np.arange(lh), np.arange(lw), indexing="ij")
    parity = (kk + yy + xx) % 2  # in coding order
    sse, g = p.sse_grad(q)
    passes += 2
    J, bits, _ = p.objective(q, sse)
    history = [(J, bits, sse, passes)]
    frac = opt.frac
    for s in range(opt.sweeps):
        gain, step = candidates(p, q, g, a)
        if opt.phases == 2:
            step = np.where(parity == s % 2, step, 0)
        elif opt.phases == 3:
            step = np.where((yy + xx) % 2 == s % 2, step, 0)
        elif opt.phases == 4:
            step = np.where((yy % 2) * 2 + xx % 2 == [0, 3, 1, 2][s % 4], step, 0)
        if opt.per_position:
            gm = np.where(step != 0, gain, 0.0)
            keep = np.zeros(q.shape, dtype=bool)
            best_k = np.argsort(gm, axis=0, kind="stable")[:opt.per_position]
            np.put_along_axis(keep, best_k, True, axis=0)
            step = np.where(keep, step, 0)
        n = int((step != 0).sum())
        if n == 0:
            break
        if frac < 1.0:
            cut = np.quantile(gain[step != 0], frac)
            step = np.where(gain <= cut, step, 0)
        pred = float(gain[step != 0].sum())
        qn = rm.from_order(rm.to_order(q) + step)
        sse_n, g_n = p.sse_grad(qn)
        passes += 2
        Jn, bits_n, _ = p.objective(qn, sse_n)
        ratio = (Jn - J) / pred if pred < 0 else 0.0
        if verbose:
            print(f"  sweep {s}: {int((step != 0).sum())}/{n} changes, predicted {pred:.0f},"
                  f" actual {Jn - J:.0f}, J {Jn:.0f}, frac {frac:.2f}", file=sys.stderr)
        if Jn < J:
            q, g, J, sse, bits = qn, g_n, Jn, sse_n, bits_n
            history.append((J, bits, sse, passes))
        if opt.adaptive:
            # ΔJ(f) ≈ f·P + f²·X (X: the cross terms the prediction P leaves out, ~f²):
            # with r = actual / predicted at f, the best next fraction is f / (2 (1 - r)).
            r = min(ratio, 0.9)
            frac = min(1.0, max(0.05, frac / (2 * (1 - r))))
    return Result(q, J, bits, sse, passes, history)


def rate_at_psnr(points: list[tuple[float, float]], target: float) -> float | None:
    """Rate at PSNR ``target`` by linear interpolation of log(rate) between the two RDOQ
    operating points (psnr, bpp) that bracket it; None if none do."""
    pts = sorted(points)
    for (p0, r0), (p1, r1) in zip(pts, pts[1:], strict=False):
        if p0 <= target <= p1 and p1 > p0:
            t = (target - p0) / (p1 - p0)
            return math.exp((1 - t) * math.log(r0) + t * math.log(r1))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("../shared/models/fp_relu_128_192.pth"))
    ap.add_argument("--tables", type=Path, required=True)
    ap.add_argument("--images", type=Path, nargs="+", required=True)
    ap.add_argument("--lambdas", default="0.0005,0.00075,0.001")
    ap.add_argument("--sweeps", type=int, default=12)
    ap.add_argument("--diag", choices=["rank1", "channel"], default="rank1")
    ap.add_argument("--frac", type=float, default=1.0)
    ap.add_argument("--no-adaptive", action="store_true")
    ap.add_argument("--per-position", type=int, default=2)
    ap.add_argument("--phases", type=int, default=3)
    ap.add_argument("--offsets", choices=["tables", "median"], default="tables")
    ap.add_argument("--crop", type=int, default=0, help="centred crop of this side (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lams = [float(v) for v in args.lambdas.split(",")]
    opt = Options(sweeps=args.sweeps, diag=args.diag, frac=args.frac,
                  adaptive=not args.no_adaptive, per_position=args.per_position,
                  phases=args.phases)
    plain: list[tuple[float, float]] = []  # (bpp, psnr) per image
    rd: dict[float, list[tuple[float, float, float, int]]] = {lam: [] for lam in lams}
    for img in args.images:
        for lam in lams:
            p = load_problem(args.model, args.tables, img, lam, args.offsets, args.crop)
            px = p.h * p.w
            q0 = p.q_plain()
            j0 = p.objective(q0)[0]
            if lam == lams[0]:
                plain.append((p.rate.total_bits(p.rate.to_order(q0)) / px, psnr_of(p, q0)))
            t = time.perf_counter()
            r = rdoq(p, opt, verbose=args.verbose)
            dt = time.perf_counter() - t
            rd[lam].append((r.bits / px, psnr_of(p, r.q), dt, r.passes))
            print(f"{img.name} λ={lam}: plain {plain[-1][0]:.4f} bpp {plain[-1][1]:.3f} dB | "
                  f"rdoq {rd[lam][-1][0]:.4f} bpp {rd[lam][-1][1]:.3f} dB, {r.passes} passes, "
                  f"{dt:.0f} s; J {j0:.0f} -> {r.J:.0f} ({100 * (r.J / j0 - 1):+.2f}%)",
                  flush=True)
    bpp0 = float(np.mean([b for b, _ in plain]))
    psnr0 = float(np.mean([q for _, q in plain]))
    print(f"plain: {bpp0:.4f} bpp {psnr0:.3f} dB ({len(plain)} images)")
    pts = []
    for lam in lams:
        b = float(np.mean([v[0] for v in rd[lam]]))
        q = float(np.mean([v[1] for v in rd[lam]]))
        pts.append((q, b))
        print(f"rdoq λ={lam}: {b:.4f} bpp ({100 * (b / bpp0 - 1):+.2f}%) {q:.3f} dB "
              f"({q - psnr0:+.3f}), {np.mean([v[3] for v in rd[lam]]):.0f} passes")
    r_eq = rate_at_psnr(pts, psnr0)
    if r_eq is None:
        print("the RDOQ points do not bracket the plain PSNR")
    else:
        print(f"at the plain PSNR: {r_eq:.4f} bpp, {100 * (1 - r_eq / bpp0):.2f}% fewer bits")


if __name__ == "__main__":
    main()
