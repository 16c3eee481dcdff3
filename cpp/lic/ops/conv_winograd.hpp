// CONV2D by Winograd's minimal filtering along the rows: fewer multiply-adds than the direct
// implicit GEMM for the analysis transform's 5x5 stride-2 layers (docs/runtime.md#winograd).
//
// Along x, a stride-s convolution is s interleaved stride-1 ones (phases): output column
// ox reads padded input columns ox*s + kx, and the taps kx = phi, phi + s, ... of phase
// phi read the decimated row d[j] = x[j*s + phi] at j = ox, ox + 1, ... (5 taps at stride 2:
// a 3-tap and a 2-tap correlation). Each phase's correlation is computed in tiles of
// kM = 4 outputs by F(4, r): n = 4 + r - 1 products of transformed inputs and transformed
// taps give the 4 outputs (Toom-Cook, points 0, 1, -1, 2, -2, infinity; the taps are
// transformed once, at load time). The products of one transform point, summed over input
// channels and kernel rows ky, are an ordinary implicit GEMM over kh taps of the
// transformed input rows; the kernel rows stay direct. F(4, 3) + F(4, 2) need 11 products
// per 4 outputs where the direct form needs 20.
//
// Each input row is transformed once (transform_rows; a streamed run keeps the transformed
// rows in the operator's window, lic/stream.hpp; the whole-tensor path transforms a round's
// rows into a scratch buffer), then per output row each point's GEMM and the output
// transform with bias and activation (compute_rows_from). Every output value is computed
// the same way whatever the round, band or thread split, so streamed and whole-tensor runs
// stay bit-identical; the transforms are chains of FMAs in a fixed order (f32-vlincomb)
// at every instruction-set level.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

#include "lic/kernels/dispatch.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/parallel.hpp"
#include "lic/workspace.hpp"

namespace lic {

// F(m, r) by Toom-Cook: outputs y[i] = sum_k g[k] d[i + k] (i < m) are
// AT (G g . BT d), with n = m + r - 1 points 0, 1, -1, 2, -2, ... and infinity.
struct MinimalFilter {
  int m = 0, r = 0, n = 0;
  std::vector<double> at;  // m x n
  std::vector<double> g;   // n x r
  std::vector<double> bt;  // n x n
};

inline MinimalFilter minimal_filter(int m, int r) {
  MinimalFilter f;
  f.m = m;
  f.r = r;
  f.n = m + r - 1;
  const int finite = f.n - 1;
  std::vector<double> a(static_cast<std::size_t>(finite));
  for (int j = 0; j < finite; ++j) a[std::size_t(j)] = j == 0 ? 0.0 : (j % 2 ? 1.0 : -1.0) * ((j + 1) / 2);
  const auto at = [&](int i, int j) -> double& { return f.at[std::size_t(i * f.n + j)]; };
  const auto g = [&](int j, int k) -> double& { return f.g[std::size_t(j * r + k)]; };
  const auto bt = [&](int j, int k) -> double& { return f.bt[std::size_t(j * f.n + k)]; };
  f.at.assign(std::size_t(m * f.n), 0.0);
  f.g.assign(std::size_t(f.n * r), 0.0);
  f.bt.assign(std::size_t(f.n * f.n), 0.0);
  // Coefficients of prod_{l in points, l != skip} (x - a_l), lowest power first.
  const auto product = [&](int skip) {
    std::vector<double> c{1.0};
    for (int l = 0; l < finite; ++l) {
      if (l == skip) continue;
      std::vector<double> next(c.size() + 1, 0.0);
      for (std::size_t i = 0; i < c.size(); ++i) {
        next[i] -= a[std::size_t(l)] * c[i];
        next[i + 1] += c[i];
      }
      c = next;
    }
    return c;
  };
  for (int j = 0; j < finite; ++j) {
    for (int i = 0; i < m; ++i) at(i, j) = std::pow(a[std::size_t(j)], i);
    double den = 1.0;
    for (int l = 0; l < finite; ++l)
      if (l != j) den *= a[std::size_t(j)] - a[std::size_t(l)];
    for (int k = 0; k < r; ++k) g(j, k) = std::pow(a[std::size_t(j)], k) / den;
    const std::vector<double> c = product(j);
    for (std::size_t k = 0; k < c.size(); ++k) bt(j, int(k)) = c[k];
  }
  at(m - 1, finite) = 1.0;  // the point at infinity
  g(finite, r - 1) = 1.0;
  const std::vector<double> c = product(-1);
  for (std::size_t k = 0; k < c.size(); ++k) bt(finite, int(k)) = c[k];
  return f;
}

class WinogradConv {
 public:
  static constexpr int kM = 4;          // outputs per tile
  static constexpr int kMaxPoints = 16;  // products per tile, all phases together
  static constexpr int kMaxRows = 32;    // kernel rows
  // Input channels below which the direct pass reads whole kernel rows (conv.hpp): too
  // few multiply-adds per product for the transforms to pay.
  static constexpr int kMinChannels = 16;
  // The whole-tensor path's transformed input rows of one round stay within this.
  static constexpr std::size_t kRoundBytes = std::size_t(2) << 20;

  // Whether the Winograd form computes CONV2D node n: enough input channels, stride 1 or 2
  // along x, and every phase 2 or 3 taps (5x5 stride 2: 3 + 2; 3x3 stride 1: 3).
  static bool suits(const NodeDesc& n) { return suits(n.cin, n.kh, n.kw, n.stride_w); }
  static bool suits(int cin, int kh, int kw, int stride_w) {
    if (cin < kMinChannels || kh > kMaxRows || stride_w < 1 || stride_w > 2) return false;
    for (int phi = 0; phi < stride_w; ++phi) {
      const int r = phase_taps(kw, stride_w, phi);
      if (r < 2 || r > 3) return false;
    }
    return true;
  }

  // Floats the whole-tensor path (compute_rows) takes besides its padded input and its
  // output, for outputs ow wide: a round's transformed rows and every thread's products
  // (codec/tiling.hpp counts them in its memory bound).
  static long long scratch_floats(int cin, int cout, int kh, int kw, int sh, int sw, long long ow,
                                  int threads) {
    long long points = 0;
    for (int phi = 0; phi < sw; ++phi) points += kM + phase_taps(kw, sw, phi) - 1;
    const long long row = points * ((ow + kM - 1) / kM) * cin;
    const long long round = ((rows_per_round(row, kh, sh) - 1) * sh + kh) * row;
    const long long products = points * ((ow + kM - 1) / kM) * ((cout + kern::kNR - 1) / kern::kNR) * kern::kNR;
    return round + std::max(threads, 1) * kMaxChunkRows * products;
  }

  explicit WinogradConv(const NodeDesc& n) : n_(node_shape(n)), bias_(n.bias) {
    const int kh = n.kh, kw = n.kw, cin = n.cin;
    for (int phi = 0; phi < n.stride_w; ++phi) {
      Phase ph;
      ph.phi = phi;
      ph.f = minimal_filter(kM, phase_taps(kw, n.stride_w, phi));
      ph.point0 = points_;
      points_ += ph.f.n;
      phases_.push_back(std::move(ph));
    }
    passes_.resize(std::size_t(points_));
    for (PackedPass& pass : passes_) {
      pass.kc = cin;
      pass.cout = n.cout;
      pass.panels = (n.cout + kern::kNR - 1) / kern::kNR;
      for (int ky = 0; ky < kh; ++ky) {
        pass.dy.push_back(ky);
        pass.dx.push_back(0);
      }
      resize_populated(pass.w, std::size_t(pass.panels) * std::size_t(kh) * std::size_t(cin) * kern::kNR);
      pass.bias.assign(std::size_t(pass.panels) * kern::kNR, 0.0f);  // bias: added at the end
    }
    pack_transformed_taps(n);
  }

  static int tiles(int ow) { return (ow + kM - 1) / kM; }

  // Floats of one transformed input row (every point's t tiles of cin) for outputs ow wide.
  std::size_t transformed_row_floats(int ow) const {
    return std::size_t(points_) * std::size_t(tiles(ow)) * std::size_t(n_.cin);
  }
  int points() const { return points_; }

  // Transformed rows [r0, r1) of the input rows in `in` (zero-padded, its right margin
  // covering tiles(ow) * kM output columns) into v: row r at v.row(r), point p's tile j at
  // (p * tiles(ow) + j) * cin.
  void transform_rows(const RowWindow& in, int ow, int r0, int r1, const RowOut& v,
                      ThreadPool& threads) const {
    const kern::KernelTable& k = kern::kernels();
    const int nph = static_cast<int>(phases_.size());
    threads.parallel_for((r1 - r0) * nph, [&](int a, int b) {
      for (int i = a; i < b; ++i)
        transform_row(k, in.row(r0 + i / nph), phases_[std::size_t(i % nph)], tiles(ow),
                      v.row(r0 + i / nph));
    });
  }

  // Output rows [o0, o1) (ow pixels each) from the transformed input rows in v.
  void compute_rows_from(const RowWindow& v, int o0, int o1, int ow, const RowOut& out, int act,
                         float alpha, ThreadPool& threads, BufferPool& pool) const {
    if (o1 <= o0) return;
    const kern::KernelTable& k = kern::kernels();
    const int nt = threads.size(), panels = passes_[0].panels;
    const std::size_t m_row = std::size_t(points_) * std::size_t(tiles(ow)) * std::size_t(panels) * kern::kNR;
    // Each thread its own rows and all panels (split by panel groups, with two
    // synchronisations a band, two threads spent 8% of g_a's time waiting on each other).
    if (o1 - o0 >= nt) {
      threads.parallel_for(nt, [&](int a, int b) {
        for (int i = a; i < b; ++i) {
          int y0 = 0, y1 = 0;
          piece_bounds(o1 - o0, nt, i, y0, y1);
          const int chunk = std::min(y1 - y0, kMaxChunkRows);
          std::vector<float> m = pool.take(std::size_t(chunk) * m_row);
          for (int r = o0 + y0; r < o0 + y1; r += chunk)
            products_and_outputs(k, v, r, std::min(o0 + y1, r + chunk), ow, 0, panels, m.data(),
                                 out, act, alpha);
          pool.give(std::move(m));
        }
      });
      return;
    }
    // Fewer rows than threads (a streamed band's last layers): (row, panel group) items.
    const int groups = panel_groups(k, passes_[0]), g = panel_group(k);
    std::vector<float> m = pool.take(std::size_t(o1 - o0) * m_row);
    threads.parallel_for((o1 - o0) * groups, [&](int a, int b) {
      for (int i = a; i < b; ++i) {
        const int oy = o0 + i / groups, p0 = (i % groups) * g;
        products_and_outputs(k, v, oy, oy + 1, ow, p0, std::min(p0 + g, panels),
                             m.data() + std::size_t(oy - o0) * m_row, out, act, alpha);
      }
    });
    pool.give(std::move(m));
  }

  // Output rows [o0, o1) from the input rows in `in` (the whole-tensor path): in rounds,
  // the rows a round reads transformed into a scratch buffer, then computed from it.
  void compute_rows(const RowWindow& in, int o0, int o1, int ow, const RowOut& out, int act,
                    float alpha, ThreadPool& threads, BufferPool& pool) const {
    const std::size_t row = transformed_row_floats(ow);
    const int rows = rows_per_round(static_cast<long long>(row), n_.kh, n_.stride_h);
    std::vector<float> v = pool.take(std::size_t((rows - 1) * n_.stride_h + n_.kh) * row);
    for (int r0 = o0; r0 < o1; r0 += rows) {
      const int r1 = std::min(o1, r0 + rows);
      const int i0 = r0 * n_.stride_h - n_.pad_top, i1 = (r1 - 1) * n_.stride_h - n_.pad_top + n_.kh;
      transform_rows(in, ow, i0, i1, RowOut{v.data(), i0, std::ptrdiff_t(row)}, threads);
      compute_rows_from(RowWindow{v.data(), i0, tiles(ow), points_ * n_.cin, 0}, r0, r1, ow, out,
                        act, alpha, threads, pool);
    }
    pool.give(std::move(v));
  }

 private:
  struct Phase {
    int phi = 0;     // first tap kx
    int point0 = 0;  // index of its first transform point among all phases'
    MinimalFilter f;
  };

  // Rows of GEMM results one products_and_outputs call holds at once.
  static constexpr int kMaxChunkRows = 4;

  // Each point's pass gets its transformed taps U(co, ky, ci) = sum_i G[pt][i]
  // w(co, ky, phi + i*s, ci) (point pt of phase phi) in the packed layout [panel][ky][ci][16].
  // A (panel, kernel row) at a time: the panel's taps of that row are first gathered
  // channel-major, tap by tap ([tap][ci][j], as the packed layout holds a point), so that
  // each point comes out of one f32-vlincomb written in order into the packed array.
  // (Packing is most of a program's loading: one output channel at a time, scattered kNR
  // floats apart, the encoder's loading took 10.8-11.4 ms against 8.1-8.3; a scalar loop
  // in double precision 7.3 ms for g_a's three layers against 5.0.)
  void pack_transformed_taps(const NodeDesc& n) {
    const kern::KernelTable& k = kern::kernels();
    constexpr std::size_t nr = kern::kNR;
    const std::size_t cin = std::size_t(n.cin), kh = std::size_t(n.kh), kw = std::size_t(n.kw);
    const std::size_t block = cin * nr;  // one tap (or one point) of a panel's kernel row
    std::vector<float> taps(kw * block);
    std::array<const float*, 3> x{};
    std::array<float, 3> coef{};
    for (std::size_t panel = 0; panel < std::size_t(passes_[0].panels); ++panel)
      for (std::size_t ky = 0; ky < kh; ++ky) {
        std::fill(taps.begin(), taps.end(), 0.0f);  // channels past cout stay zero
        for (std::size_t j = 0; j < nr && panel * nr + j < std::size_t(n.cout); ++j) {
          const std::size_t at = ((panel * nr + j) * kh + ky) * kw * cin;  // F32View: little-endian bytes
          for (std::size_t tap = 0; tap < kw; ++tap)
            for (std::size_t ci = 0; ci < cin; ++ci) taps[tap * block + ci * nr + j] = n.weight[at + tap * cin + ci];
        }
        for (const Phase& ph : phases_)
          for (int pt = 0; pt < ph.f.n; ++pt) {
            int terms = 0;
            for (int i = 0; i < ph.f.r; ++i) {
              const double g = ph.f.g[std::size_t(pt * ph.f.r + i)];
              if (g == 0.0) continue;
              x[std::size_t(terms)] = taps.data() + std::size_t(ph.phi + i * n.stride_w) * block;
              coef[std::size_t(terms++)] = static_cast<float>(g);
            }
            float* dst = passes_[std::size_t(ph.point0 + pt)].w.data() + (panel * kh + ky) * block;
            k.lincomb({x.data(), coef.data(), terms, 0, nullptr, dst, 0, 1, block, kern::kActNone, 0.0f});
          }
      }
  }

  static int phase_taps(int kw, int s, int phi) { return kw > phi ? (kw - phi + s - 1) / s : 0; }

  // Output rows per round of the whole-tensor path: their transformed input rows within
  // kRoundBytes (at least one output row's).
  static int rows_per_round(long long row_floats, int kh, int sh) {
    const long long row_bytes = std::max(1LL, row_floats) * static_cast<long long>(sizeof(float));
    const long long fit = static_cast<long long>(kRoundBytes) / row_bytes;
    return static_cast<int>(std::max(1LL, (fit - kh + sh) / sh));
  }

  // Phase ph's points of one input row: point pt of tile j is sum_i BT[pt][i]
  // x[(kM j + i) s + phi] over the padded row, stored at v + ((point0 + pt) * t + j) * cin.
  void transform_row(const kern::KernelTable& k, const float* row, const Phase& ph, int t,
                     float* v) const {
    const int cin = n_.cin, s = n_.stride_w;
    std::array<const float*, kMaxPoints> x{};
    std::array<float, kMaxPoints> coef{};
    for (int pt = 0; pt < ph.f.n; ++pt) {
      int terms = 0;
      for (int i = 0; i < ph.f.n; ++i) {
        const double c = ph.f.bt[std::size_t(pt * ph.f.n + i)];
        if (c == 0.0) continue;
        x[std::size_t(terms)] = row + std::ptrdiff_t(i * s + ph.phi) * cin;
        coef[std::size_t(terms++)] = static_cast<float>(c);
      }
      k.lincomb({x.data(), coef.data(), terms, std::ptrdiff_t(kM) * s * cin, nullptr,
                 v + std::ptrdiff_t(ph.point0 + pt) * t * cin, cin, t, std::size_t(cin),
                 kern::kActNone, 0.0f});
    }
  }

  // Output rows [y0, y1), panels [p0, p1): each point's GEMM over the kh transformed rows
  // (point-major, so a point's weights are read from cache by every row) into m
  // (per row: per point t tiles of the padded channel count), then the output transform
  // (bias first, then the products of each phase in point order) and the activation.
  void products_and_outputs(const kern::KernelTable& k, const RowWindow& v, int y0, int y1,
                            int ow, int p0, int p1, float* m, const RowOut& out, int act,
                            float alpha) const {
    const int t = tiles(ow), cin = n_.cin;
    const std::ptrdiff_t cpad = std::ptrdiff_t(passes_[0].panels) * kern::kNR;
    const std::ptrdiff_t plane = std::ptrdiff_t(t) * cpad, m_row = points_ * plane;
    const std::ptrdiff_t v_row = std::ptrdiff_t(points_) * t * cin;
    std::array<std::ptrdiff_t, kMaxRows> taps{};
    for (int ky = 0; ky < n_.kh; ++ky) taps[std::size_t(ky)] = ky * v_row;
    for (int p = 0; p < points_; ++p)
      for (int oy = y0; oy < y1; ++oy)
        igemm_row(k, passes_[std::size_t(p)], taps.data(),
                  v.row(oy * n_.stride_h - n_.pad_top) + std::ptrdiff_t(p) * t * cin, cin, t,
                  m + (oy - y0) * m_row + p * plane, cpad, kern::kActNone, 0.0f, p0, p1);
    const int c0 = p0 * kern::kNR, c1 = std::min(n_.cout, p1 * kern::kNR);
    std::array<const float*, kMaxPoints> x{};
    std::array<float, kMaxPoints> coef{};
    for (int oy = y0; oy < y1; ++oy)
      for (int j = 0; j < kM && j < ow; ++j) {
        int terms = 0;
        for (const Phase& ph : phases_)
          for (int pt = 0; pt < ph.f.n; ++pt) {
            const double a = ph.f.at[std::size_t(j * ph.f.n + pt)];
            if (a == 0.0) continue;
            x[std::size_t(terms)] = m + (oy - y0) * m_row + (ph.point0 + pt) * plane + c0;
            coef[std::size_t(terms++)] = static_cast<float>(a);
          }
        k.lincomb({x.data(), coef.data(), terms, cpad, bias_.data() + c0,
                   out.row(oy) + std::ptrdiff_t(j) * n_.cout + c0, std::ptrdiff_t(kM) * n_.cout,
                   (ow - j + kM - 1) / kM, std::size_t(c1 - c0), act, alpha});
      }
  }

  NodeDesc n_;
  std::vector<float> bias_;
  std::vector<Phase> phases_;
  int points_ = 0;
  std::vector<PackedPass> passes_;  // one per transform point: kh taps of cin channels
};

}  // namespace lic
