// CONV_TRANSPOSE2D by sub-pixel (phase) decomposition: the outputs whose position is
// congruent to (ry, rx) modulo the stride receive contributions only from kernel taps
// ky = ry + s*t (and likewise in x), so each phase is an ordinary stride-1 convolution
// with a small kernel over the input. stride_h * stride_w passes, no scatter, no col2im.
//
// With few output channels (a synthesis transform's last layer has 3) a 16-channel GEMM
// panel would be mostly padding, so there the op runs as one GEMM that gives every input
// pixel's kh*kw*cout contributions, followed by a gather into each output pixel
// ("GEMM + col2im", in output order, so no two threads ever write the same value).
// With 16 or more input channels and 2 or 3 taps in every phase along x (g_s's 5x5
// stride-2 layers), the phases' row correlations are computed by Winograd's minimal
// filtering instead (conv_winograd.hpp).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/ops/conv_winograd.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/model_format.hpp"
#include "lic/tensor.hpp"

namespace lic {

// One axis of one phase r: outputs o = out0 + j*s (j < count) read input q - t for taps
// t < taps, with q = q0 + j and kernel index r + s*t.
struct PhaseAxis {
  int out0 = 0;
  int q0 = 0;
  int taps = 0;

  static PhaseAxis make(int r, int s, int k, int pad) {
    PhaseAxis a;
    a.out0 = ((r - pad) % s + s) % s;
    a.q0 = (a.out0 + pad) / s;
    a.taps = r < k ? (k - r + s - 1) / s : 0;
    return a;
  }
  int count(int out_size, int s) const {
    return out0 < out_size ? (out_size - out0 + s - 1) / s : 0;
  }
};

// The phases of one axis of a stride-s transposed convolution with a kernel of k.
inline std::vector<PhaseAxis> phase_axes(int s, int k, int pad) {
  std::vector<PhaseAxis> phases;
  for (int r = 0; r < s; ++r) phases.push_back(PhaseAxis::make(r, s, k, pad));
  return phases;
}

// The taps of sub-pixel phase (ry, rx), row by row: the input offset (dy, dx) each reads
// and the kernel row and column (ky, kx) it multiplies.
struct PhaseTaps {
  std::vector<int> dy, dx, ky, kx;
};

inline PhaseTaps phase_taps(const std::vector<PhaseAxis>& py, const std::vector<PhaseAxis>& px,
                            int ry, int rx) {
  const int sh = int(py.size()), sw = int(px.size());
  PhaseTaps t;
  for (int ty = 0; ty < py[std::size_t(ry)].taps; ++ty)
    for (int tx = 0; tx < px[std::size_t(rx)].taps; ++tx) {
      t.dy.push_back(-ty);
      t.dx.push_back(-tx);
      t.ky.push_back(ry + sh * ty);
      t.kx.push_back(rx + sw * tx);
    }
  return t;
}

// The zero rows (or columns) needed before (lo) and after (hi) an input of `in` so that every
// phase of an output of `out` reads q - t inside the buffer.
inline void phase_padding(const std::vector<PhaseAxis>& phases, int s, int in, int out, int& lo,
                          int& hi) {
  lo = 0;
  hi = 0;
  for (const PhaseAxis& f : phases) {
    const int n = f.count(out, s);
    if (n == 0) continue;
    lo = std::max(lo, std::max(f.taps - 1, 0) - f.q0);
    hi = std::max(hi, f.q0 + n - 1 - (in - 1));
  }
}

class ConvTranspose2dOp {
 public:
  // Below this many output channels the GEMM + gather form wastes less of the 16-wide panels.
  static constexpr int kGatherBelow = 16;

  explicit ConvTranspose2dOp(const NodeDesc& n) : n_(node_shape(n)) {
    if (n.cout < kGatherBelow) {
      prepare_gather(n);
      return;
    }
    if (uses_winograd(n.cin, n.cout, n.kh, n.kw, n.stride_h, n.stride_w)) {
      wino_ = std::make_shared<const WinogradConv>(n, winograd_geometry(n));
      return;
    }
    py_ = phase_axes(n.stride_h, n.kh, n.pad_top);
    px_ = phase_axes(n.stride_w, n.kw, n.pad_left);
    const F32View& w = n.weight;
    for (int ry = 0; ry < n.stride_h; ++ry)
      for (int rx = 0; rx < n.stride_w; ++rx) {
        PackedPass pass;
        pass.kc = n.cin;
        pass.cout = n.cout;
        const PhaseTaps taps = phase_taps(py_, px_, ry, rx);
        pass.dy = taps.dy;
        pass.dx = taps.dx;
        const int kh = n.kh, kw = n.kw, cin = n.cin;
        pass.pack(n.bias, [&](int co, int t, int ci) {
          return w[((std::size_t(co) * kh + std::size_t(taps.ky[std::size_t(t)])) * kw +
                    std::size_t(taps.kx[std::size_t(t)])) * cin + std::size_t(ci)];
        });
        passes_.push_back(std::move(pass));
      }
  }

  static long long out_size(int in, int k, int s, int pad_lo, int pad_hi, int out_pad) {
    return (static_cast<long long>(in) - 1) * s - pad_lo - pad_hi + k + out_pad;
  }

  void output_size(int h, int w, int& oh, int& ow) const {
    const long long lh = out_size(h, n_.kh, n_.stride_h, n_.pad_top, n_.pad_bottom, n_.out_pad_h);
    const long long lw = out_size(w, n_.kw, n_.stride_w, n_.pad_left, n_.pad_right, n_.out_pad_w);
    if (lh <= 0 || lw <= 0)
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) +
                  " is too small for this transposed convolution");
    if (lh > (1 << 30) || lw > (1 << 30))
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) + " is too large");
    oh = static_cast<int>(lh);
    ow = static_cast<int>(lw);
  }

  // Whether the op runs as GEMM + gather (few output channels): a streamed run then keeps
  // the GEMM's columns rather than the input rows (compute_cols, gather_rows).
  bool gather() const { return gather_; }
  int gather_cols() const { return cols_.cout; }

  // Zero columns the phase passes (or the Winograd transforms' whole tiles) read on each
  // side of the input (none for the gather form).
  void margins(int in_w, int out_w, int& left, int& right) const {
    left = right = 0;
    if (wino_) {
      int lo = 0, hi = 0;
      wino_->columns_read(out_w, lo, hi);
      left = std::max(0, -lo);
      right = std::max(0, hi - in_w);
    } else if (!gather_) {
      phase_padding(px_, n_.stride_w, in_w, out_w, left, right);
    }
  }

  // Whether a node runs in the Winograd form: not the gather form, the phases along x of
  // 2 or 3 taps (as CONV2D's, conv_winograd.hpp) and every row phase at least one tap.
  static bool uses_winograd(int cin, int cout, int kh, int kw, int sh, int sw) {
    return cout >= kGatherBelow && WinogradConv::suits(cin, kh, kw, sw) && kh >= sh;
  }

  // The geometry of this node's Winograd form: phase rx's output j (column out0 + j * s)
  // reads input columns q0 + j - t with kernel columns rx + s * t (t < taps), i.e. a
  // correlation over input columns q0 - (taps - 1) + j + i with the taps reversed; output
  // row oy is of phase (oy + pad) mod s, anchored at input row floor((oy + pad) / s), and
  // reads the rows above it with kernel rows ry + s * ty.
  static WinogradGeometry winograd_geometry(const NodeDesc& n) {
    WinogradGeometry g;
    for (int rx = 0; rx < n.stride_w; ++rx) {
      const PhaseAxis a = PhaseAxis::make(rx, n.stride_w, n.kw, n.pad_left);
      g.x.push_back({a.taps, a.q0 - (a.taps - 1), 1, rx + n.stride_w * (a.taps - 1), -n.stride_w});
      g.outputs.push_back({{rx}, a.out0, n.stride_w});
    }
    for (int ry = 0; ry < n.stride_h; ++ry) {
      WinogradGeometry::YPhase y;
      for (int ty = 0; ty < PhaseAxis::make(ry, n.stride_h, n.kh, n.pad_top).taps; ++ty) {
        y.ky.push_back(ry + n.stride_h * ty);
        y.dy.push_back(-ty);
      }
      g.y.push_back(std::move(y));
    }
    g.y_mul = 1;
    g.y_add = n.pad_top;
    return g;
  }

  // The Winograd form, when this layer uses it (a streamed run keeps its transformed
  // input rows: lic/stream.hpp).
  const WinogradConv* winograd() const { return wino_.get(); }

  // Input rows [i0, i1) that output rows [o0, o1) read (rows outside the input are zeros;
  // the gather form skips them).
  void input_rows(int o0, int o1, int& i0, int& i1) const {
    i0 = ceil_div(o0 + n_.pad_top - (n_.kh - 1), n_.stride_h);
    i1 = floor_div(o1 - 1 + n_.pad_top, n_.stride_h) + 1;
  }

  // Output rows [o0, o1) of the phase form from the input rows in `in`.
  void compute_rows(const RowWindow& in, int o0, int o1, int ow, const RowOut& out, int act,
                    float alpha, ThreadPool& threads, BufferPool& pool) const {
    if (o1 <= o0) return;
    if (wino_) return wino_->compute_rows(in, o0, o1, ow, out, act, alpha, threads, pool);
    const kern::KernelTable& k = kern::kernels();
    const int sh = n_.stride_h, sw = n_.stride_w, cin = n_.cin, cout = n_.cout;
    std::vector<std::vector<std::ptrdiff_t>> taps;
    for (const PackedPass& pass : passes_) taps.push_back(tap_offsets(pass, in.width, pass.kc));
    const int groups = panel_groups(k, passes_[0]), g = panel_group(k);
    // Items are (row, column piece, column phase, group of panels): enough to share even
    // one row. Rows of different phases read different numbers of kernel rows (5 taps,
    // stride 2: 3 and 2), so with fewer than sh rows a thread the threads would get unequal
    // work: then each thread takes a column piece (or, in narrow rows, groups of panels) of
    // every row instead (g_s of a 4096-wide image on 2 threads in bands of 4 rows, 2 rows of
    // its third layer a band: 4586-4850 -> 4218 ms).
    const int rows = o1 - o0;
    const bool by_piece = rows < sh * threads.size();
    const int pieces = by_piece ? column_pieces(threads, 1, ow / sw) : 1;
    const int per_row = pieces * sw * groups, per_piece = rows * sw * groups;
    threads.parallel_for(rows * per_row, [&](int i0, int i1) {
      for (int i = i0; i < i1; ++i) {
        int piece = 0, oy = 0, rx = 0, p = 0;
        if (by_piece) {  // (piece, group, phase, row): rows narrower than two pieces are
                         // shared by panel groups, each thread again getting every row
          const int item = i % per_piece;
          piece = i / per_piece;
          oy = o0 + item % rows;
          rx = item / rows % sw;
          p = item / (rows * sw) * g;
        } else {  // (row, piece, phase, group)
          oy = o0 + i / per_row;
          rx = (i % (sw * groups)) / groups;
          p = (i % groups) * g;
        }
        const int ry = (oy + n_.pad_top) % sh;  // the phase whose outputs are out0 + j * sh
        const PhaseAxis& fy = py_[std::size_t(ry)];
        const PhaseAxis& fx = px_[std::size_t(rx)];
        int j0 = 0, j1 = 0;
        piece_bounds(fx.count(ow, sw), pieces, piece, j0, j1);
        if (j1 <= j0) continue;
        const std::size_t pi = std::size_t(ry * sw + rx);
        // Anchor: input row q0 + j for output row out0 + j * sh; padded column q0 + left.
        const int iy = fy.q0 + (oy - fy.out0) / sh;
        const float* a = passes_[pi].ntaps()
                             ? in.row(iy) + std::ptrdiff_t(fx.q0 + j0 + in.left) * cin
                             : in.data;
        igemm_row(k, passes_[pi], taps[pi].data(), a, std::ptrdiff_t(cin), j1 - j0,
                  out.row(oy) + std::ptrdiff_t(fx.out0 + j0 * sw) * cout,
                  std::ptrdiff_t(sw) * cout, act, alpha, p, std::min(p + g, passes_[pi].panels));
      }
    });
  }

  // Gather form, step 1: the GEMM columns (kh * kw * cout per pixel, no bias) of input rows
  // [r0, r1) of `in` (in_w pixels) into cols (row r at cols.row(r), gather_cols() per pixel).
  void compute_cols(const RowWindow& in, int in_w, int r0, int r1, const RowOut& cols,
                    ThreadPool& threads) const {
    if (r1 <= r0) return;
    const kern::KernelTable& k = kern::kernels();
    const std::ptrdiff_t tap0 = 0, ncol = cols_.cout;
    for_row_pieces(threads, k, cols_, r0, r1, in_w, [&](int r, int x0, int x1, int p0, int p1) {
      igemm_row(k, cols_, &tap0, in.row(r) + std::ptrdiff_t(in.left + x0) * n_.cin, n_.cin,
                x1 - x0, cols.row(r) + std::ptrdiff_t(x0) * ncol, ncol, kern::kActNone, 0.0f, p0,
                p1);
    });
  }

  // Gather form, step 2: output rows [o0, o1) from the columns of input rows; `cols` must
  // hold every row of [0, in_h) that these output rows read.
  void gather_rows(const RowOut& cols, int in_h, int in_w, int o0, int o1, int ow,
                   const RowOut& out, int act, float alpha, ThreadPool& threads) const {
    // Items are (output row, column piece), as in for_row_pieces.
    const int pieces = column_pieces(threads, o1 - o0, ow);
    threads.parallel_for((o1 - o0) * pieces, [&](int i0, int i1) {
      for (int i = i0; i < i1; ++i) {
        int x0 = 0, x1 = 0;
        piece_bounds(ow, pieces, i % pieces, x0, x1);
        if (n_.cout == 3)  // a synthesis transform's RGB layer: the sums unrolled
          gather_piece<3>(cols, in_h, in_w, o0 + i / pieces, x0, x1, out, act, alpha);
        else
          gather_piece<0>(cols, in_h, in_w, o0 + i / pieces, x0, x1, out, act, alpha);
      }
    });
  }

  // The whole tensor at once.
  Tensor run(const Tensor& in, int act, float alpha, ThreadPool& threads,
             BufferPool& pool) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out = pooled_tensor(pool, oh, ow, n_.cout);  // every element is written below
    if (gather_) {
      run_gather(in, out, act, alpha, threads, pool);
      return out;
    }
    int left = 0, right = 0, i0 = 0, i1 = 0;
    margins(in.width, ow, left, right);
    input_rows(0, oh, i0, i1);
    PaddedInput p = pad_input(in, std::max(0, -i0), left, std::max(0, i1 - in.height), right,
                              pool);
    compute_rows(p.window, 0, oh, ow, rows_of(out), act, alpha, threads, pool);
    pool.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  // Output pixels [x0, x1) of row oy of the gather form (C: the output channels when known
  // at compile time, else 0). Every output is its bias plus its contributions in the order
  // (kernel row, kernel column), the same at every pixel; pixels whose every column is inside
  // the input take the branch-free path.
  template <int C>
  void gather_piece(const RowOut& cols, int in_h, int in_w, int oy, int x0, int x1,
                    const RowOut& out, int act, float alpha) const {
    const int sh = n_.stride_h, sw = n_.stride_w, kh = n_.kh, kw = n_.kw;
    const int cout = C > 0 ? C : n_.cout;
    const std::ptrdiff_t ncol = cols_.cout, step = std::ptrdiff_t(sw) * cout - ncol;
    // The column rows of the kernel rows reaching this output row, at their kernel row.
    const float* rows[kMaxKernel];  // at most kh of them
    int nrows = 0;
    for (int ky = (oy + n_.pad_top) % sh; ky < kh; ky += sh) {
      const int iy = (oy + n_.pad_top - ky) / sh;
      if (iy >= 0 && iy < in_h) rows[nrows++] = cols.row(iy) + std::ptrdiff_t(ky) * kw * cout;
    }
    // q, r: (ox + pad_left) divided by the stride, kept incrementally (no division).
    int q = (x0 + n_.pad_left) / sw, r = (x0 + n_.pad_left) % sw;
    float* o = out.row(oy) + std::ptrdiff_t(x0) * cout;
    const int even_taps = (kw + 1) / 2, odd_taps = kw / 2;  // stride 2: per column phase
    // Sums are made in local arrays, stored once: summed through `o`, which might alias the
    // columns as far as the compiler knows, every addition went through memory.
    float acc[kGatherBelow];  // the gather form has fewer output channels
    for (int ox = x0; ox < x1; ++ox, o += cout) {
      if (C > 0 && sw == 2 && r == 0 && ox + 1 < x1 && q - even_taps + 1 >= 0 && q < in_w) {
        // Stride 2, an even and an odd output pixel of the same q: their columns kx = 2m
        // and 2m + 1 of input pixel q - m lie side by side, as the two outputs do. The 2C
        // sums stay in registers (loops of constant length, unrolled).
        float sum[2 * (C > 0 ? C : 1)];
#pragma GCC unroll 32
        for (int co = 0; co < 2 * C; ++co) sum[co] = bias_[std::size_t(co % C)];
        for (int t = 0; t < nrows; ++t) {
          const float* c = rows[t] + std::ptrdiff_t(q) * ncol;
          int m = 0;
          for (; m < odd_taps; ++m, c += step) {
#pragma GCC unroll 32
            for (int co = 0; co < 2 * C; ++co) sum[co] += c[co];
          }
          if (m < even_taps) {
#pragma GCC unroll 32
            for (int co = 0; co < C; ++co) sum[co] += c[co];
          }
        }
        store_gathered(sum, 2 * C, act, alpha, o);
        ++ox;
        o += C;
        ++q;
        continue;
      }
      const int taps = (kw - r + sw - 1) / sw;  // kernel columns r, r + sw, ... below kw
      for (int co = 0; co < cout; ++co) acc[co] = bias_[std::size_t(co)];
      if (q - taps + 1 >= 0 && q < in_w) {
        for (int t = 0; t < nrows; ++t) {
          const float* c = rows[t] + std::ptrdiff_t(q) * ncol + std::ptrdiff_t(r) * cout;
          for (int m = 0; m < taps; ++m, c += step)
            for (int co = 0; co < cout; ++co) acc[co] += c[co];
        }
      } else {
        for (int t = 0; t < nrows; ++t)
          for (int kx = r, ix = q; kx < kw && ix >= 0; kx += sw, --ix) {
            if (ix >= in_w) continue;
            const float* c = rows[t] + std::ptrdiff_t(ix) * ncol + std::ptrdiff_t(kx) * cout;
            for (int co = 0; co < cout; ++co) acc[co] += c[co];
          }
      }
      store_gathered(acc, cout, act, alpha, o);
      if (++r == sw) {
        r = 0;
        ++q;
      }
    }
  }

  static void store_gathered(const float* acc, int n, int act, float alpha, float* o) {
    for (int i = 0; i < n; ++i)
      o[i] = act == kern::kActLeaky && !(acc[i] >= 0.0f) ? acc[i] * alpha : acc[i];
  }

  // Gather form: columns of the GEMM are (ky, kx, co), no bias (added once per output).
  void prepare_gather(const NodeDesc& n) {
    gather_ = true;
    cols_.kc = n.cin;
    cols_.cout = n.kh * n.kw * n.cout;
    cols_.dy.push_back(0);
    cols_.dx.push_back(0);
    bias_ = n.bias;
    const F32View& w = n.weight;
    const int kk = n.kh * n.kw, cout = n.cout, cin = n.cin;
    cols_.pack(std::vector<float>(std::size_t(cols_.cout), 0.0f), [&](int col, int, int ci) {
      const int co = col % cout, k = col / cout;  // k = ky * kw + kx
      return w[(std::size_t(co) * std::size_t(kk) + std::size_t(k)) * std::size_t(cin) +
               std::size_t(ci)];
    });
  }

  // Output rows are done in fixed bands so the column buffer stays small; the few input
  // rows two bands share are computed twice.
  void run_gather(const Tensor& in, Tensor& out, int act, float alpha, ThreadPool& threads,
                  BufferPool& pool) const {
    constexpr int kBand = 32;
    const std::size_t ncol = std::size_t(cols_.cout);
    const RowWindow win{in.data.data(), 0, in.width, in.channels, 0};
    // Input rows of a band, clipped to the input; the buffer is sized for the largest.
    auto band_rows = [&](int b0, int& iy0, int& iy1) {
      input_rows(b0, std::min(out.height, b0 + kBand), iy0, iy1);
      iy0 = std::max(iy0, 0);
      iy1 = std::min(iy1, in.height);
    };
    std::size_t most = 0;
    for (int b0 = 0; b0 < out.height; b0 += kBand) {
      int iy0 = 0, iy1 = 0;
      band_rows(b0, iy0, iy1);
      most = std::max(most, std::size_t(std::max(0, iy1 - iy0)));
    }
    std::vector<float> y = pool.take(std::max<std::size_t>(1, most * std::size_t(in.width) * ncol));
    for (int b0 = 0; b0 < out.height; b0 += kBand) {
      const int b1 = std::min(out.height, b0 + kBand);
      int iy0 = 0, iy1 = 0;
      band_rows(b0, iy0, iy1);
      const RowOut cols{y.data(), iy0, std::ptrdiff_t(in.width) * std::ptrdiff_t(ncol)};
      compute_cols(win, in.width, iy0, iy1, cols, threads);
      gather_rows(cols, in.height, in.width, b0, b1, out.width, rows_of(out), act, alpha,
                  threads);
    }
    pool.give(std::move(y));
  }

  NodeDesc n_;
  std::vector<PhaseAxis> py_, px_;
  std::vector<PackedPass> passes_;
  bool gather_ = false;
  std::shared_ptr<const WinogradConv> wino_;  // or the Winograd form, where it suits n
  PackedPass cols_;
  std::vector<float> bias_;
};

}  // namespace lic
