// CONV2D and CONV_TRANSPOSE2D by Winograd's minimal filtering along the rows: fewer
// multiply-adds than the direct implicit GEMM for the analysis transform's 5x5 stride-2
// layers and the synthesis transform's transposed ones (docs/runtime.md#winograd).
//
// Both are, along x, sums of stride-1 correlations of 2 or 3 taps (phases). A stride-s
// convolution's output column ox reads padded input columns ox*s + kx: the taps kx = phi,
// phi + s, ... of phase phi read the decimated row d[j] = x[j*s + phi] at j = ox, ox + 1,
// ... (5 taps at stride 2: a 3-tap and a 2-tap correlation, summed into the same output).
// A stride-s transposed convolution's outputs ox = out0 + j*s of sub-pixel phase rx read
// input columns q0 + j - t with kernel columns rx + s*t (conv_transpose.hpp): a correlation
// over the undecimated row with the taps reversed, written to every s-th output column.
// Each phase's correlation is computed in tiles of kM = 4 outputs by F(4, r): n = 4 + r - 1
// products of transformed inputs and transformed taps give the 4 outputs (Toom-Cook,
// points 0, 1, -1, 2, -2, infinity; the taps are transformed once, at load time). The
// products of one transform point, summed over input channels and kernel rows, are an
// ordinary implicit GEMM over the kernel rows of the transformed input rows; the kernel rows
// stay direct. F(4, 3) + F(4, 2) need 11 products per 4 + 4 (transposed) or 4 (strided)
// outputs where the direct form needs 20.
// Where consecutive rows of a class of output rows read consecutive input rows (transposed
// convolutions, stride-1 ones) and each reads 2 or 3 of them, the rows are also paired
// along y: rows with anchors a (even) and a + 1 are the two outputs of F(2, r) over r + 1
// combined input rows, r + 1 GEMMs over the input channels where the rows alone take 2r
// over their kernel rows (3 + 2 kernel rows: 7 instead of 10). A row computed without its
// partner (at a band's edge) takes the same combinations, so its value does not change.
//
// The operator describes its geometry (WinogradGeometry: the phases along x, which outputs
// they make, and which kernel rows each output row reads); the engine below knows nothing
// else. Each input row is transformed once (transform_rows; a streamed run keeps the
// transformed rows in the operator's window, lic/stream.hpp; the whole-tensor path
// transforms a round's rows into a scratch buffer), then per output row each point's GEMM
// and the output transform with bias and activation (compute_rows_from). Every output value
// is computed the same way whatever the round, band or thread split, so streamed and
// whole-tensor runs stay bit-identical; the transforms are chains of FMAs in a fixed order
// (f32-vlincomb) at every instruction-set level. A value depends on where its tile of 4
// starts: tiled runs (codec/tiling.hpp) keep the tiles on the whole image's grid.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <utility>
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

// Where a Winograd layer reads and writes, as its operator (conv.hpp, conv_transpose.hpp)
// describes it.
struct WinogradGeometry {
  // Along x, one stride-1 correlation of `taps` taps (2 or 3): its output j reads input
  // columns in0 + (j + i) * in_step with kernel column kx0 + i * kx_step (i < taps).
  struct XPhase {
    int taps = 0, in0 = 0, in_step = 1, kx0 = 0, kx_step = 1;
  };
  // Output columns out0 + j * out_step (j < count) are the sums of these phases' outputs j.
  struct Outputs {
    std::vector<int> phases;
    int out0 = 0, out_step = 1;
    int count(int ow) const { return out0 < ow ? (ow - out0 + out_step - 1) / out_step : 0; }
  };
  // One class of output rows: an output row of it reads input rows anchor + dy[t] with
  // kernel rows ky[t].
  struct YPhase {
    std::vector<int> ky, dy;
  };
  std::vector<XPhase> x;
  std::vector<Outputs> outputs;
  std::vector<YPhase> y;
  // Output row oy: v = oy * y_mul + y_add is of class v mod y.size(), its anchor input row
  // floor(v / y.size()) (CONV2D: one class, anchor oy * stride - pad; CONV_TRANSPOSE2D:
  // class and anchor from (oy + pad) and the stride).
  int y_mul = 1, y_add = 0;

  int classes() const { return static_cast<int>(y.size()); }
  // Whether the rows of a class are paired (docs/runtime.md#row-pairs). Consecutive rows of
  // a class have anchors y_mul apart, so each class's input rows fall into y_mul residues
  // (its y terms: a stride-2 CONV2D's 5 kernel rows, 3 + 2); each term present must read 2 or
  // 3 rows y_mul apart, and a class may have at most kMaxTerms terms.
  static constexpr int kMaxTerms = 2;
  bool pairs_rows() const {
    if (y_mul < 1 || y.empty()) return false;
    for (const YPhase& c : y) {
      int terms = 0;
      for (int q = 0; q < y_mul; ++q) {
        const int r = term_rows(c, q);
        if (r == 0) continue;
        if (r < 2 || r > 3 || ++terms > kMaxTerms) return false;
      }
    }
    return true;
  }
  // Rows of class c's term q (its kernel rows whose dy is q mod y_mul): r when they are
  // lo, lo + y_mul, ..., lo + (r - 1) y_mul, each once (lo into *lo_out), -1 when not.
  int term_rows(const YPhase& c, int q, int* lo_out = nullptr) const {
    int lo = 0, r = 0;
    for (const int d : c.dy)
      if (((d % y_mul) + y_mul) % y_mul == q) lo = r++ == 0 ? d : std::min(lo, d);
    for (int u = 0; u < r; ++u)
      if (std::count(c.dy.begin(), c.dy.end(), lo + u * y_mul) != 1) return -1;
    if (lo_out) *lo_out = lo;
    return r;
  }
  void row_of(int oy, int& cls, int& anchor) const {
    const int v = oy * y_mul + y_add, n = classes();
    anchor = v >= 0 ? v / n : -((-v + n - 1) / n);
    cls = v - anchor * n;
  }
};

class WinogradConv {
 public:
  static constexpr int kM = 4;          // outputs per tile
  static constexpr int kMaxPoints = 16;  // products per tile, all phases together
  static constexpr int kMaxRows = 32;    // kernel rows
  static constexpr int kMaxYPoints = 4;  // products of a pair of rows: F(2, 3) along y
  static constexpr int kMaxTerms = WinogradGeometry::kMaxTerms;  // y terms of a class
  // Input channels below which the direct pass reads whole kernel rows (conv.hpp): too
  // few multiply-adds per product for the transforms to pay.
  static constexpr int kMinChannels = 16;
  // The whole-tensor path's transformed input rows of one round stay within this.
  static constexpr std::size_t kRoundBytes = std::size_t(2) << 20;

  // Whether the Winograd form computes CONV2D node n: enough input channels, stride 1 or 2
  // along x, and every phase 2 or 3 taps (5x5 stride 2: 3 + 2; 3x3 stride 1: 3). A
  // transposed convolution's phases along x have the same taps (conv_transpose.hpp).
  static bool suits(const NodeDesc& n) { return suits(n.cin, n.kh, n.kw, n.stride_w); }
  static bool suits(int cin, int kh, int kw, int stride_w) {
    if (cin < kMinChannels || kh > kMaxRows || stride_w < 1 || stride_w > 2) return false;
    for (int phi = 0; phi < stride_w; ++phi) {
      const int r = phase_taps(kw, stride_w, phi);
      if (r < 2 || r > 3) return false;
    }
    return true;
  }
  // The geometry of a CONV2D node: phases phi of the decimated row, summed.
  static WinogradGeometry conv2d_geometry(const NodeDesc& n) {
    WinogradGeometry g;
    WinogradGeometry::Outputs all;
    for (int phi = 0; phi < n.stride_w; ++phi) {
      g.x.push_back({phase_taps(n.kw, n.stride_w, phi), phi - n.pad_left, n.stride_w, phi,
                     n.stride_w});
      all.phases.push_back(phi);
    }
    g.outputs.push_back(all);
    g.y.resize(1);
    for (int ky = 0; ky < n.kh; ++ky) {
      g.y[0].ky.push_back(ky);
      g.y[0].dy.push_back(ky);
    }
    g.y_mul = n.stride_h;
    g.y_add = -n.pad_top;
    return g;
  }

  // Floats the whole-tensor path (compute_rows) takes besides its padded input and its
  // output, for a CONV2D with outputs ow wide: a round's transformed rows and every
  // thread's products (codec/tiling.hpp counts them in its memory bound).
  static long long scratch_floats(int cin, int cout, int kh, int kw, int sh, int sw, long long ow,
                                  int threads) {
    const long long slots = (ow + kM - 1) / kM + 1, row = points_of(kw, sw) * slots * cin;
    const long long round = ((rows_per_round(row, kh, sh) - 1) * sh + kh) * row;
    return round + products_floats(points_of(kw, sw), slots, cin, cout, threads);
  }
  // The same for a CONV_TRANSPOSE2D in the Winograd form: outputs ow wide, at most `span`
  // input rows for one output row.
  static long long transposed_scratch_floats(int cin, int cout, int span, int kw, int sw,
                                             long long ow, int threads) {
    const long long slots = ((ow + sw - 1) / sw + kM - 1) / kM + 1;
    const long long row = points_of(kw, sw) * slots * cin;
    const long long round = std::max(static_cast<long long>(kRoundBytes / sizeof(float)), span * row);
    return round + products_floats(points_of(kw, sw), slots, cin, cout, threads);
  }
  // Transform points of a kw-wide kernel at stride sw across (both forms' phases).
  static long long points_of(int kw, int sw) {
    long long points = 0;
    for (int phi = 0; phi < sw; ++phi) points += kM + phase_taps(kw, sw, phi) - 1;
    return points;
  }

  WinogradConv(const NodeDesc& n, WinogradGeometry geometry)
      : n_(node_shape(n)), bias_(n.bias), geo_(std::move(geometry)) {
    for (const WinogradGeometry::XPhase& x : geo_.x) {
      Phase ph;
      ph.x = x;
      ph.f = minimal_filter(kM, x.taps);
      ph.point0 = points_;
      points_ += ph.f.n;
      phases_.push_back(std::move(ph));
    }
    panels_ = (n.cout + kern::kNR - 1) / kern::kNR;
    pair_ = row_pairs(geo_);
    pairs_ = !pair_.empty();
    // Per class: one pass per transform point over its kernel rows, or with pairing one per
    // (y term, y point, transform point) of a single row.
    const int per_class = pairs_ ? kMaxTerms * kMaxYPoints * points_ : points_;
    passes_.resize(std::size_t(geo_.classes() * per_class));
    // Every pass's weights in one buffer, mapped in at once: g_s's 231 passes of 64 KiB
    // each took a page fault per page of their own (13% of a decode that is nearly all
    // loading, in perf).
    std::vector<std::pair<PackedPass*, std::vector<int>>> used;
    for (int c = 0; c < geo_.classes(); ++c) {
      if (!pairs_) {
        for (int p = 0; p < points_; ++p)
          used.emplace_back(&passes_[std::size_t(c * points_ + p)], geo_.y[std::size_t(c)].dy);
        continue;
      }
      const std::vector<PairTerm>& terms = pair_[std::size_t(c)];
      for (std::size_t q = 0; q < terms.size(); ++q)
        for (int ky = 0; ky < terms[q].f.n; ++ky)
          for (int p = 0; p < points_; ++p)
            used.emplace_back(&passes_[paired_pass(c, int(q), ky, p)], std::vector<int>{0});
    }
    const auto floats_of = [&](const std::vector<int>& dy) {
      return std::size_t(panels_) * dy.size() * std::size_t(n.cin) * kern::kNR;
    };
    std::size_t total = 0;
    for (const auto& u : used) total += floats_of(u.second);
    resize_populated(weights_, total);
    float* at = weights_.data();
    for (auto& [pass, dy] : used) {
      pass->kc = n.cin;
      pass->cout = n.cout;
      pass->panels = panels_;
      pass->shared_w = at;
      at += floats_of(dy);
      pass->dy = std::move(dy);
      pass->dx.assign(pass->dy.size(), 0);
      pass->bias.assign(std::size_t(panels_) * kern::kNR, 0.0f);  // bias: added at the end
    }
    pack_transformed_taps(n);
  }
  // The passes point into weights_.
  WinogradConv(const WinogradConv&) = delete;
  WinogradConv& operator=(const WinogradConv&) = delete;

  // Whether output row oy starts a group of rows whose pairs are all within it: class 0,
  // even pair index (with pairing off, every row).
  bool starts_group(int oy) const {
    if (!pairs_) return true;
    int cls = 0, anchor = 0;
    geo_.row_of(oy, cls, anchor);
    return cls == 0 && (pair_index(anchor) & 1) == 0;
  }
  // The index of a row among its class's rows (anchors y_mul apart): a pair is an even
  // index and the next.
  int pair_index(int anchor) const { return floor_div(anchor, geo_.y_mul); }
  // The first row from oy on that starts a group.
  int group_start_from(int oy) const {
    while (!starts_group(oy)) ++oy;
    return oy;
  }
  bool pairs() const { return pairs_; }
  // Whether an operator of this geometry pairs its rows (codec/tiling.hpp keeps their pair
  // indexes' parity).
  static bool pairs_rows_of(const WinogradGeometry& g) { return !row_pairs(g).empty(); }

  // Tiles of a transformed row for outputs ow wide (the widest output group's).
  int tiles(int ow) const {
    int t = 0;
    for (const WinogradGeometry::Outputs& o : geo_.outputs)
      t = std::max(t, (o.count(ow) + kM - 1) / kM);
    return t;
  }

  // Input columns [lo, hi) the transforms read for outputs ow wide (whole tiles; the
  // operator's zero margins must cover those outside the input).
  void columns_read(int ow, int& lo, int& hi) const {
    const int t = tiles(ow);
    lo = 0;
    hi = 0;
    bool first = true;
    for (const Phase& ph : phases_) {
      const int a = ph.x.in0, b = ph.x.in0 + (kM * t + ph.f.n - kM - 1) * ph.x.in_step + 1;
      lo = first ? a : std::min(lo, a);
      hi = first ? b : std::max(hi, b);
      first = false;
    }
  }

  // Input rows [i0, i1) that output rows [o0, o1) read (anchors grow with the row, so the
  // first and last class-count rows bound them).
  void input_rows(int o0, int o1, int& i0, int& i1) const {
    i0 = 0;
    i1 = 0;
    bool first = true;
    const int n = geo_.classes();
    for (int oy = o0; oy < o1; ++oy) {
      if (oy == o0 + n && o1 - n > oy) oy = o1 - n;
      int cls = 0, anchor = 0;
      geo_.row_of(oy, cls, anchor);
      for (const int dy : geo_.y[std::size_t(cls)].dy) {
        i0 = first ? anchor + dy : std::min(i0, anchor + dy);
        i1 = first ? anchor + dy + 1 : std::max(i1, anchor + dy + 1);
        first = false;
      }
    }
  }

  // Tile slots a transform point's plane takes in a transformed row (and in the products):
  // the tiles plus one, so that planes and rows are not a multiple of 4 KiB apart.
  int slots(int ow) const { return tiles(ow) + 1; }

  // Floats of one transformed input row (every point's plane of cin-float tiles).
  std::size_t transformed_row_floats(int ow) const {
    return std::size_t(points_) * std::size_t(slots(ow)) * std::size_t(n_.cin);
  }
  int points() const { return points_; }

  // Transformed rows [r0, r1) of the input rows in `in` (zero-padded, its margins covering
  // columns_read(ow)) into v: row r at v.row(r), point p's tile j at (p * slots(ow) + j) * cin.
  void transform_rows(const RowWindow& in, int ow, int r0, int r1, const RowOut& v,
                      ThreadPool& threads) const {
    const kern::KernelTable& k = kern::kernels();
    const int nph = static_cast<int>(phases_.size()), t = tiles(ow), slots_ = slots(ow);
    threads.parallel_for((r1 - r0) * nph, [&](int a, int b) {
      for (int i = a; i < b; ++i)
        transform_row(k, in.row(r0 + i / nph) + std::ptrdiff_t(in.left) * n_.cin,
                      phases_[std::size_t(i % nph)], t, slots_, v.row(r0 + i / nph));
    });
  }

  // Output rows [o0, o1) (ow pixels each) from the transformed input rows in v.
  void compute_rows_from(const RowWindow& v, int o0, int o1, int ow, const RowOut& out, int act,
                         float alpha, ThreadPool& threads, BufferPool& pool) const {
    if (o1 <= o0) return;
    const kern::KernelTable& k = kern::kernels();
    const int nt = threads.size(), panels = panels_;
    const std::size_t m_row = std::size_t(points_) * std::size_t(slots(ow)) * std::size_t(panels) * kern::kNR;
    const std::size_t scratch =
        pairs_ ? std::size_t(pair_scratch_floats(slots(ow), n_.cin, n_.cout)) : 0;
    // Rows [y0, y1), panels [p0, p1), in chunks of whole pairs, with one thread's buffers.
    const auto rows_in_chunks = [&](int y0, int y1, int p0, int p1) {
      const int chunk = std::min(y1 - y0, kMaxChunkRows);
      std::vector<float> m = pool.take(std::size_t(chunk) * m_row + scratch);
      for (int r = y0; r < y1;) {
        const int e = chunk_end(r, std::min(y1, r + chunk), y1);
        products_and_outputs(k, v, r, e, ow, p0, p1, m.data(),
                             m.data() + std::size_t(chunk) * m_row, out, act, alpha);
        r = e;
      }
      pool.give(std::move(m));
    };
    // Each thread its own rows and all panels (split by panel groups, with two
    // synchronisations a band, two threads spent 8% of g_a's time waiting on each other),
    // as long as every thread gets rows of every class (classes read different numbers of
    // kernel rows: a transposed convolution's 3 and 2), with pairing whole pairs of them.
    if (o1 - o0 >= nt * geo_.classes() * (pairs_ ? 2 : 1)) {
      std::vector<int> bounds = row_split(o0, o1, nt);
      threads.parallel_for(nt, [&](int a, int b) {
        for (int i = a; i < b; ++i) {
          const int y0 = bounds[std::size_t(i)], y1 = bounds[std::size_t(i) + 1];
          if (y1 > y0) rows_in_chunks(y0, y1, 0, panels);
        }
      });
      return;
    }
    const int groups = panel_groups(k, passes_[0]), g = panel_group(k), rows = o1 - o0;
    // Fewer rows, paired: each thread every row, in whole pairs, for its share of the panel
    // groups; each thread combines the input rows itself. (Split by rows instead, a group's
    // rows went alone to the threads, without their partners: a two-thread 2048x2048 g_s
    // took 1.16x as long, medians of 4 alternating runs.)
    if (pairs_) {
      threads.parallel_for(nt, [&](int a, int b) {
        for (int i = a; i < b; ++i) {
          const int p0 = groups * i / nt * g, p1 = std::min(panels, groups * (i + 1) / nt * g);
          if (p1 > p0) rows_in_chunks(o0, o1, p0, p1);
        }
      });
      return;
    }
    // Fewer rows (a streamed band's last layers): (panel group, row) items, rows fastest, so
    // that each thread gets every row (of every class) for its share of the panels.
    std::vector<float> m = pool.take(std::size_t(rows) * m_row);
    threads.parallel_for(rows * groups, [&](int a, int b) {
      for (int i = a; i < b; ++i) {
        const int oy = o0 + i % rows, p0 = (i / rows) * g;
        products_and_outputs(k, v, oy, oy + 1, ow, p0, std::min(p0 + g, panels),
                             m.data() + std::size_t(oy - o0) * m_row, nullptr, out, act, alpha);
      }
    });
    pool.give(std::move(m));
  }

  // Output rows [o0, o1) from the input rows in `in` (the whole-tensor path): in rounds,
  // the rows a round reads transformed into a scratch buffer, then computed from it.
  void compute_rows(const RowWindow& in, int o0, int o1, int ow, const RowOut& out, int act,
                    float alpha, ThreadPool& threads, BufferPool& pool) const {
    const std::size_t row = transformed_row_floats(ow);
    const std::size_t fit = std::max<std::size_t>(1, kRoundBytes / (std::max<std::size_t>(1, row) * sizeof(float)));
    std::vector<std::pair<int, int>> rounds;  // output rows [r0, r1)
    int most = 1;
    for (int r0 = o0; r0 < o1;) {
      int r1 = r0 + 1, i0 = 0, i1 = 0;
      while (r1 < o1) {
        input_rows(r0, r1 + 1, i0, i1);
        if (std::size_t(i1 - i0) > fit) break;
        ++r1;
      }
      input_rows(r0, r1, i0, i1);
      most = std::max(most, i1 - i0);
      rounds.emplace_back(r0, r1);
      r0 = r1;
    }
    std::vector<float> v = pool.take(std::size_t(most) * row);
    for (const auto& [r0, r1] : rounds) {
      int i0 = 0, i1 = 0;
      input_rows(r0, r1, i0, i1);
      transform_rows(in, ow, i0, i1, RowOut{v.data(), i0, std::ptrdiff_t(row)}, threads);
      compute_rows_from(RowWindow{v.data(), i0, slots(ow), points_ * n_.cin, 0}, r0, r1, ow, out,
                        act, alpha, threads, pool);
    }
    pool.give(std::move(v));
  }

 private:
  // F(2, r) along y over one term of a class of paired rows: the rows lo + u * y_mul
  // relative to the anchor (u < r), read with the class's kernel rows t[u] (positions in
  // its YPhase).
  struct PairTerm {
    MinimalFilter f;
    int lo = 0;
    std::vector<int> t;
  };
  using RowPair = std::vector<PairTerm>;  // a class's terms
  struct Phase {
    WinogradGeometry::XPhase x;
    int point0 = 0;  // index of its first transform point among all phases'
    MinimalFilter f;
  };

  // Rows of GEMM results one products_and_outputs call holds at once.
  static constexpr int kMaxChunkRows = 4;

  static long long products_floats(long long points, long long tiles, int cin, int cout,
                                   int threads) {
    const long long cpad = (cout + kern::kNR - 1) / kern::kNR * kern::kNR;
    return std::max(threads, 1) *
           (kMaxChunkRows * points * tiles * cpad + pair_scratch_floats(tiles, cin, cout));
  }
  // A thread's scratch for paired rows: one y point's combined input rows and the products
  // of every y point of every term (one transform point's plane each).
  static long long pair_scratch_floats(long long slots, int cin, int cout) {
    const long long cpad = (cout + kern::kNR - 1) / kern::kNR * kern::kNR;
    return slots * cin + kMaxTerms * kMaxYPoints * slots * cpad;
  }

  // Rows [o0, o1) cut into nt runs of about equal work (a row's work: its kernel rows).
  std::vector<int> row_split(int o0, int o1, int nt) const {
    std::vector<long long> work(std::size_t(o1 - o0) + 1, 0);
    for (int oy = o0; oy < o1; ++oy) {
      int cls = 0, anchor = 0;
      geo_.row_of(oy, cls, anchor);
      work[std::size_t(oy - o0) + 1] = work[std::size_t(oy - o0)] +
                                      static_cast<long long>(geo_.y[std::size_t(cls)].ky.size());
    }
    std::vector<int> bounds(std::size_t(nt) + 1, o1);
    bounds[0] = o0;
    int r = o0;
    for (int i = 1; i < nt; ++i) {
      const long long target = work.back() * i / nt;
      while (r < o1 && work[std::size_t(r - o0)] < target) ++r;
      int b = r;  // pairs whole: back to the start of r's group
      while (b > bounds[std::size_t(i) - 1] && !starts_group(b)) --b;
      bounds[std::size_t(i)] = b > bounds[std::size_t(i) - 1] ? b : r;
    }
    return bounds;
  }

  // Each pass (class c, point pt) gets its transformed taps U(co, t, ci) = sum_i G[pt][i]
  // w(co, ky_t, kx0 + i * kx_step, ci) in the packed layout [panel][t][ci][16].
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
    // With pairing, a class's transformed kernel rows of one panel ([row][point][block]),
    // combined along y afterwards.
    std::vector<float> rows(pairs_ ? kh * std::size_t(points_) * block : 0);
    std::array<const float*, 3> x{};
    std::array<float, 3> coef{};
    for (std::size_t panel = 0; panel < std::size_t(panels_); ++panel)
      for (int c = 0; c < geo_.classes(); ++c) {
        const std::vector<int>& kys = geo_.y[std::size_t(c)].ky;
        for (std::size_t t = 0; t < kys.size(); ++t) {
          const std::size_t ky = std::size_t(kys[t]);
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
                x[std::size_t(terms)] = taps.data() + std::size_t(ph.x.kx0 + i * ph.x.kx_step) * block;
                coef[std::size_t(terms++)] = static_cast<float>(g);
              }
              float* dst = pairs_ ? rows.data() + (t * std::size_t(points_) + std::size_t(ph.point0 + pt)) * block
                                  : passes_[std::size_t(c * points_ + ph.point0 + pt)].weights() +
                                        (panel * kys.size() + t) * block;
              k.lincomb({x.data(), coef.data(), terms, 0, nullptr, dst, 0, 1, block, kern::kActNone, 0.0f});
            }
        }
        if (pairs_) combine_rows(k, c, panel, rows);
      }
  }

  // Pairing: the transformed taps U_y[ky] = sum_u Gy[ky][u] U(kernel row of input row u)
  // of each term of class c and one panel, from its transformed kernel rows
  // ([row][point][block]).
  void combine_rows(const kern::KernelTable& k, int c, std::size_t panel,
                    const std::vector<float>& rows) {
    const std::size_t block = std::size_t(n_.cin) * kern::kNR;
    const std::vector<PairTerm>& terms = pair_[std::size_t(c)];
    std::array<const float*, 3> x{};
    std::array<float, 3> coef{};
    for (std::size_t q = 0; q < terms.size(); ++q) {
      const PairTerm& term = terms[q];
      const int r = term.f.r;
      for (int ky = 0; ky < term.f.n; ++ky)
        for (int p = 0; p < points_; ++p) {
          int nterms = 0;
          for (int u = 0; u < r; ++u) {
            const double g = term.f.g[std::size_t(ky * r + u)];
            if (g == 0.0) continue;
            const std::size_t t = std::size_t(term.t[std::size_t(u)]);
            x[std::size_t(nterms)] = rows.data() + (t * std::size_t(points_) + std::size_t(p)) * block;
            coef[std::size_t(nterms++)] = static_cast<float>(g);
          }
          float* dst = passes_[paired_pass(c, int(q), ky, p)].weights() + panel * block;
          k.lincomb({x.data(), coef.data(), nterms, 0, nullptr, dst, 0, 1, block, kern::kActNone, 0.0f});
        }
    }
  }

  static int phase_taps(int kw, int s, int phi) { return kw > phi ? (kw - phi + s - 1) / s : 0; }

  // Output rows per round of the whole-tensor CONV2D path: their transformed input rows
  // within kRoundBytes (at least one output row's).
  static int rows_per_round(long long row_floats, int kh, int sh) {
    const long long row_bytes = std::max(1LL, row_floats) * static_cast<long long>(sizeof(float));
    const long long fit = static_cast<long long>(kRoundBytes) / row_bytes;
    return static_cast<int>(std::max(1LL, (fit - kh + sh) / sh));
  }

  // Phase ph's points of one input row (`row` at input column 0): point pt of tile j is
  // sum_i BT[pt][i] x[in0 + (kM j + i) in_step], stored at v + ((point0 + pt) * t + j) * cin.
  void transform_row(const kern::KernelTable& k, const float* row, const Phase& ph, int t,
                     int slots, float* v) const {
    const int cin = n_.cin, s = ph.x.in_step;
    std::array<const float*, kMaxPoints> x{};
    std::array<float, kMaxPoints> coef{};
    for (int pt = 0; pt < ph.f.n; ++pt) {
      int terms = 0;
      for (int i = 0; i < ph.f.n; ++i) {
        const double c = ph.f.bt[std::size_t(pt * ph.f.n + i)];
        if (c == 0.0) continue;
        x[std::size_t(terms)] = row + std::ptrdiff_t(ph.x.in0 + i * s) * cin;
        coef[std::size_t(terms++)] = static_cast<float>(c);
      }
      k.lincomb({x.data(), coef.data(), terms, std::ptrdiff_t(kM) * s * cin, nullptr,
                 v + std::ptrdiff_t(ph.point0 + pt) * slots * cin, cin, t, std::size_t(cin),
                 kern::kActNone, 0.0f});
    }
  }

  // Output rows [y0, y1), panels [p0, p1): each point's GEMM over the row's kernel rows of
  // transformed rows (point-major, so a point's weights are read from cache by every row)
  // into m (per row: per point t tiles of the padded channel count), then the output
  // transform (bias first, then the products of each phase in point order) and the
  // activation.
  void products_and_outputs(const kern::KernelTable& k, const RowWindow& v, int y0, int y1,
                            int ow, int p0, int p1, float* m, float* scratch, const RowOut& out,
                            int act, float alpha) const {
    if (pairs_)
      paired_products(k, v, y0, y1, ow, p0, p1, m, scratch);
    else
      row_products(k, v, y0, y1, ow, p0, p1, m);
    const std::ptrdiff_t cpad = std::ptrdiff_t(panels_) * kern::kNR;
    const std::ptrdiff_t plane = std::ptrdiff_t(slots(ow)) * cpad, m_row = points_ * plane;
    const int c0 = p0 * kern::kNR, c1 = std::min(n_.cout, p1 * kern::kNR);
    std::array<const float*, kMaxPoints> x{};
    std::array<float, kMaxPoints> coef{};
    for (int oy = y0; oy < y1; ++oy)
      for (const WinogradGeometry::Outputs& o : geo_.outputs) {
        const int count = o.count(ow);
        for (int j = 0; j < kM && j < count; ++j) {
          int terms = 0;
          for (const int phase : o.phases) {
            const Phase& ph = phases_[std::size_t(phase)];
            for (int pt = 0; pt < ph.f.n; ++pt) {
              const double a = ph.f.at[std::size_t(j * ph.f.n + pt)];
              if (a == 0.0) continue;
              x[std::size_t(terms)] = m + (oy - y0) * m_row + (ph.point0 + pt) * plane + c0;
              coef[std::size_t(terms++)] = static_cast<float>(a);
            }
          }
          k.lincomb({x.data(), coef.data(), terms, cpad, bias_.data() + c0,
                     out.row(oy) + std::ptrdiff_t(o.out0 + j * o.out_step) * n_.cout + c0,
                     std::ptrdiff_t(kM) * o.out_step * n_.cout, (count - j + kM - 1) / kM,
                     std::size_t(c1 - c0), act, alpha});
        }
      }
  }

  // Each point's GEMM over the kernel rows of the row's transformed input rows.
  void row_products(const kern::KernelTable& k, const RowWindow& v, int y0, int y1, int ow,
                    int p0, int p1, float* m) const {
    const int t = tiles(ow), cin = n_.cin;
    const std::ptrdiff_t cpad = std::ptrdiff_t(panels_) * kern::kNR;
    const std::ptrdiff_t plane = std::ptrdiff_t(slots(ow)) * cpad, m_row = points_ * plane;
    const std::ptrdiff_t v_plane = std::ptrdiff_t(slots(ow)) * cin, v_row = points_ * v_plane;
    std::array<std::ptrdiff_t, kMaxRows> taps{};
    for (int p = 0; p < points_; ++p)
      for (int oy = y0; oy < y1; ++oy) {
        int cls = 0, anchor = 0;
        geo_.row_of(oy, cls, anchor);
        const PackedPass& pass = passes_[std::size_t(cls * points_ + p)];
        for (int i = 0; i < pass.ntaps(); ++i) taps[std::size_t(i)] = pass.dy[std::size_t(i)] * v_row;
        igemm_row(k, pass, taps.data(), v.row(anchor) + p * v_plane, cin, t,
                  m + (oy - y0) * m_row + p * plane, cpad, kern::kActNone, 0.0f, p0, p1);
      }
  }

  // The same products for paired rows: per pair (or a row whose partner is outside
  // [y0, y1)) and transform point, the y points of each term that its rows need, each the
  // GEMM of one combination of transformed input rows, then each row's products from them
  // (summed over the terms). A row's products come out the same whether its partner is
  // computed or not.
  void paired_products(const kern::KernelTable& k, const RowWindow& v, int y0, int y1, int ow,
                       int p0, int p1, float* m, float* scratch) const {
    const int t = tiles(ow), cin = n_.cin, n = geo_.classes(), step = geo_.y_mul;
    const std::ptrdiff_t cpad = std::ptrdiff_t(panels_) * kern::kNR;
    const std::ptrdiff_t plane = std::ptrdiff_t(slots(ow)) * cpad, m_row = points_ * plane;
    const std::ptrdiff_t v_plane = std::ptrdiff_t(slots(ow)) * cin;
    const int c0 = p0 * kern::kNR, c1 = std::min(n_.cout, p1 * kern::kNR);
    float* combined = scratch;            // one y point's combination of input rows
    float* products = scratch + v_plane;  // every y point's products, term by term
    struct Job {
      int cls = 0, anchor = 0;  // anchor: the first row's of the pair
      int row[2] = {-1, -1};
    };
    std::array<Job, kMaxChunkRows> jobs{};
    int njobs = 0;
    for (int oy = y0; oy < y1; ++oy) {
      int cls = 0, anchor = 0;
      geo_.row_of(oy, cls, anchor);
      const int i = pair_index(anchor) & 1;
      if (i == 1 && oy - n >= y0) continue;  // in its partner's job
      Job& j = jobs[std::size_t(njobs++)];
      j.cls = cls;
      j.anchor = anchor - i * step;
      j.row[i] = oy;
      if (i == 0 && oy + n < y1) j.row[1] = oy + n;
    }
    const std::ptrdiff_t one_tap = 0;
    std::array<const float*, kMaxTerms * kMaxYPoints> x{};
    std::array<float, kMaxTerms * kMaxYPoints> coef{};
    for (int p = 0; p < points_; ++p)
      for (int jn = 0; jn < njobs; ++jn) {
        const Job& j = jobs[std::size_t(jn)];
        const std::vector<PairTerm>& terms = pair_[std::size_t(j.cls)];
        for (std::size_t q = 0; q < terms.size(); ++q) {
          const MinimalFilter& f = terms[q].f;
          const int base = j.anchor + terms[q].lo;
          for (int ky = 0; ky < f.n; ++ky) {
            if (!((j.row[0] >= 0 && f.at[std::size_t(ky)] != 0.0) ||
                  (j.row[1] >= 0 && f.at[std::size_t(f.n + ky)] != 0.0)))
              continue;
            int nterms = 0;
            for (int i = 0; i < f.n; ++i) {
              const double c = f.bt[std::size_t(ky * f.n + i)];
              if (c == 0.0) continue;
              x[std::size_t(nterms)] = v.row(base + i * step) + p * v_plane;
              coef[std::size_t(nterms++)] = static_cast<float>(c);
            }
            k.lincomb({x.data(), coef.data(), nterms, 0, nullptr, combined, 0, 1,
                       std::size_t(t) * std::size_t(cin), kern::kActNone, 0.0f});
            igemm_row(k, passes_[paired_pass(j.cls, int(q), ky, p)], &one_tap, combined, cin, t,
                      products + (int(q) * kMaxYPoints + ky) * plane, cpad, kern::kActNone, 0.0f,
                      p0, p1);
          }
        }
        for (int i = 0; i < 2; ++i) {
          if (j.row[i] < 0) continue;
          int nterms = 0;
          for (std::size_t q = 0; q < terms.size(); ++q) {
            const MinimalFilter& f = terms[q].f;
            for (int ky = 0; ky < f.n; ++ky) {
              const double a = f.at[std::size_t(i * f.n + ky)];
              if (a == 0.0) continue;
              x[std::size_t(nterms)] = products + (int(q) * kMaxYPoints + ky) * plane + c0;
              coef[std::size_t(nterms++)] = static_cast<float>(a);
            }
          }
          k.lincomb({x.data(), coef.data(), nterms, cpad, nullptr,
                     m + (j.row[i] - y0) * m_row + p * plane + c0, cpad, t,
                     std::size_t(c1 - c0), kern::kActNone, 0.0f});
        }
      }
  }

  // End of the chunk of rows from r: e, or with pairing the last group start in (r, e]
  // (whole pairs in one chunk) when e is not y1 and there is one.
  int chunk_end(int r, int e, int y1) const {
    if (!pairs_ || e >= y1) return e;
    for (int b = e; b > r; --b)
      if (starts_group(b)) return b;
    return e;
  }

  // The F(2, r) of each term of each class when the geometry's rows pair
  // (docs/runtime.md#row-pairs): rows oy and oy + classes() of a class, anchors a (pair
  // index even) and a + y_mul, read in each term the input rows a + lo + u * y_mul
  // (u <= r, r the term's kernel rows), and are the sums over the terms of the two outputs
  // of F(2, r) along y. Empty when they do not pair.
  static std::vector<RowPair> row_pairs(const WinogradGeometry& geo) {
    if (!geo.pairs_rows()) return {};
    std::vector<RowPair> pairs;
    for (const WinogradGeometry::YPhase& c : geo.y) {
      RowPair rp;
      for (int q = 0; q < geo.y_mul; ++q) {
        PairTerm term;
        const int r = geo.term_rows(c, q, &term.lo);
        if (r == 0) continue;
        term.f = minimal_filter(2, r);
        for (int u = 0; u < r; ++u)
          term.t.push_back(int(std::find(c.dy.begin(), c.dy.end(), term.lo + u * geo.y_mul) - c.dy.begin()));
        const MinimalFilter& f = term.f;
        if (f.n > kMaxYPoints) return {};
        // Each row must need only combinations of the input rows it reads itself, so that a
        // row computed without its partner reads nothing more.
        for (int i = 0; i < 2; ++i)
          for (int ky = 0; ky < f.n; ++ky) {
            if (f.at[std::size_t(i * f.n + ky)] == 0.0) continue;
            for (int u = 0; u < f.n; ++u)
              if (f.bt[std::size_t(ky * f.n + u)] != 0.0 && (u < i || u >= i + r)) return {};
          }
        rp.push_back(std::move(term));
      }
      pairs.push_back(std::move(rp));
    }
    return pairs;
  }

  // With pairing: the pass of class cls, y term q, y point ky, transform point p.
  std::size_t paired_pass(int cls, int q, int ky, int p) const {
    return std::size_t(((cls * kMaxTerms + q) * kMaxYPoints + ky) * points_ + p);
  }

  NodeDesc n_;
  std::vector<float> bias_;
  WinogradGeometry geo_;
  std::vector<Phase> phases_;
  int points_ = 0;
  int panels_ = 0;
  bool pairs_ = false;
  std::vector<RowPair> pair_;  // per class, with pairing on
  // One per (class of output rows, transform point): that class's kernel rows of cin
  // channels. With pairing, one per (class, y point, transform point) of a single row.
  std::vector<PackedPass> passes_;
  std::vector<float> weights_;  // every pass's weights
};

}  // namespace lic
