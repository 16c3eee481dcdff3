// The exact code length of a latent under the context tables, and how it changes when one
// latent changes: the rate model RDOQ optimises against (codec/rdoq/rdoq.hpp). The C++ twin
// of RateModel in benchmarks/rdoq_prototype.py; bits() equals encode_latent's bits_ctx.
//
// Changing q(c, y, x) from v to v' changes (docs/entropy-model.md#contexts):
//  - its own cost (same context, another symbol; escapes with their bypass bits);
//  - when |v - mpv| > t_nbr flips: the contexts of its right and lower neighbours;
//  - when |v - mpv| > t_prev(n) flips: the context of the co-located value of channel n,
//    the channel coded next (unless n is entirely mpv and so not coded at all);
//  - the activation flag: a channel whose values are all mpv costs only its flag.
// The latent is coded in bands of `band_rows` rows (bitstream 2.0; at least the height, or
// 0: one band): each band has its own flags, and its first row no upper neighbour.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "codec/core/latent.hpp"
#include "codec/core/range_coder.hpp"
#include "codec/entropy/context_tables.hpp"
#include "codec/entropy/escape.hpp"
#include "codec/entropy/latent_coder.hpp"

namespace lic::codec {

class ContextRate : public LatentRate {
 public:
  explicit ContextRate(const ContextTables& t) {
    const int n = t.num_channels();
    ch_.resize(static_cast<size_t>(n));
    for (int c = 0; c < n; ++c) {
      const ChannelTables& src = t.channels[static_cast<size_t>(c)];
      Channel& d = ch_[static_cast<size_t>(c)];
      d.mpv = src.mpv;
      d.lo = src.lo;
      d.nsym = src.nsym;
      d.t_nbr = src.t_nbr;
      d.pred = t.pred[static_cast<size_t>(c)];
      d.has_flag = src.flag_freq != 0;  // without one (.lice 1.1), every value is coded
      d.flag_on = src.flag_on_bits;
      d.flag_off = src.flag_off_bits;
      d.cost.clear();
      for (int k = 0; k < kContexts; ++k)
        d.cost.insert(d.cost.end(), src.bits[k].begin(), src.bits[k].end());
    }
    for (int c = 0; c < n; ++c) {
      const int p = ch_[static_cast<size_t>(c)].pred;
      if (p >= 0) {
        ch_[static_cast<size_t>(p)].next = c;
        ch_[static_cast<size_t>(p)].t_next = t.channels[static_cast<size_t>(c)].t_prev;
      }
    }
  }

  double bits(const Latent& q, int band_rows) const override {
    State s;
    prepare(q, band_rows, s);
    double total = 0;
    for (size_t c = 0; c < ch_.size(); ++c)
      for (size_t b = 0; b < s.bands; ++b)
        total += coded(ch_[c], s.nonmpv[c * s.bands + b], s.sum[c * s.bands + b]);
    return total;
  }

  void step_deltas(const Latent& q, int step, int band_rows,
                   std::vector<double>& delta) const override {
    State s;
    prepare(q, band_rows, s);
    const int h = q.height, w = q.width, rows = s.rows;
    const size_t hw = static_cast<size_t>(h) * w;
    delta.assign(q.q.size(), 0.0);
    for (size_t c = 0; c < ch_.size(); ++c) {
      const Channel& ch = ch_[c];
      const int32_t* plane = q.q.data() + c * hw;
      const uint8_t* ctx = s.ctx.data() + c * hw;
      const double* cur = s.cur.data() + c * hw;
      const size_t nplane = ch.next >= 0 ? static_cast<size_t>(ch.next) * hw : 0;
      for (int y = 0; y < h; ++y) {
        const size_t cb = c * s.bands + static_cast<size_t>(y / rows);  // (channel, band)
        // the next channel is coded in this band unless its flag says "all mpv"
        const bool next_coded =
            ch.next >= 0 && (!ch_[static_cast<size_t>(ch.next)].has_flag ||
                             s.nonmpv[static_cast<size_t>(ch.next) * s.bands + y / rows] > 0);
        const bool below = y + 1 < h && (y + 1) % rows != 0;  // in the same band
        for (int x = 0; x < w; ++x) {
          const size_t i = static_cast<size_t>(y) * w + x;
          const int64_t v = plane[i], nv = v + step;
          const int k = ctx[i];
          double own = cost(ch, nv, k) - cur[i];
          double nbr = 0;
          if (active(v, ch.mpv, ch.t_nbr) != active(nv, ch.mpv, ch.t_nbr)) {
            if (x + 1 < w) nbr += cost(ch, plane[i + 1], ctx[i + 1] ^ 1) - cur[i + 1];
            if (below) nbr += cost(ch, plane[i + w], ctx[i + w] ^ 2) - cur[i + w];
          }
          double nxt = 0;
          if (next_coded && active(v, ch.mpv, ch.t_next) != active(nv, ch.mpv, ch.t_next)) {
            const Channel& nc = ch_[static_cast<size_t>(ch.next)];
            nxt = cost(nc, q.q[nplane + i], s.ctx[nplane + i] ^ 4) - s.cur[nplane + i];
          }
          const long long nonmpv = s.nonmpv[cb] - (v != ch.mpv) + (nv != ch.mpv);
          const double before = coded(ch, s.nonmpv[cb], s.sum[cb]);
          const double after = coded(ch, nonmpv, s.sum[cb] + own + nbr);
          delta[c * hw + i] = after - before + nxt;
        }
      }
    }
  }

 private:
  struct Channel {
    int32_t mpv = 0, lo = 0;
    uint32_t nsym = 0, t_nbr = 0;
    int pred = -1, next = -1;
    uint32_t t_next = 0;  // t_prev of the channel coded next
    bool has_flag = true;
    double flag_on = 0, flag_off = 0;
    std::vector<double> cost;  // [context][symbol], bits; symbol nsym = the escape
  };

  // Per latent: its context and cost as if its channel were coded; per channel and band
  // (index c * bands + b): the sum of those costs and the number of values other than mpv.
  struct State {
    int rows = 1;      // rows per band
    size_t bands = 1;
    std::vector<uint8_t> ctx;
    std::vector<double> cur;
    std::vector<double> sum;
    std::vector<long long> nonmpv;
  };

  // Bits of one channel in one band: the flag alone when it says "all mpv", else the flag
  // (when the channel has one) and every value.
  static double coded(const Channel& ch, long long nonmpv, double sum) {
    return ch.has_flag && nonmpv == 0 ? ch.flag_on : ch.flag_off + sum;
  }

  static bool active(int64_t v, int32_t mpv, uint32_t t) {
    return std::llabs(static_cast<long long>(v) - mpv) > static_cast<long long>(t);
  }

  static double cost(const Channel& ch, int64_t v, int ctx) {
    const int64_t rel = v - ch.lo;
    const size_t a = ch.nsym + 1;
    if (rel >= 0 && rel < static_cast<int64_t>(ch.nsym)) return ch.cost[ctx * a + rel];
    return ch.cost[ctx * a + ch.nsym] + escape_of(v, ch.lo, ch.nsym).bits();
  }

  void prepare(const Latent& q, int band_rows, State& s) const {
    const int h = q.height, w = q.width;
    const size_t hw = static_cast<size_t>(h) * w;
    s.rows = band_rows < 1 || band_rows > h ? std::max(h, 1) : band_rows;
    s.bands = static_cast<size_t>((h + s.rows - 1) / s.rows);
    s.ctx.assign(q.q.size(), 0);
    s.cur.assign(q.q.size(), 0.0);
    s.sum.assign(ch_.size() * s.bands, 0.0);
    s.nonmpv.assign(ch_.size() * s.bands, 0);
    for (size_t c = 0; c < ch_.size(); ++c) {
      const Channel& ch = ch_[c];
      const int32_t* plane = q.q.data() + c * hw;
      const int32_t* prev = ch.pred >= 0 ? q.q.data() + static_cast<size_t>(ch.pred) * hw : nullptr;
      const Channel* pc = ch.pred >= 0 ? &ch_[static_cast<size_t>(ch.pred)] : nullptr;
      uint8_t* ctx = s.ctx.data() + c * hw;
      for (int y = 0; y < h; ++y) {
        const size_t cb = c * s.bands + static_cast<size_t>(y / s.rows);
        const bool up = y % s.rows != 0;  // a band's first row has no upper neighbour
        for (int x = 0; x < w; ++x) {
          const size_t i = static_cast<size_t>(y) * w + x;
          int k = 0;
          if (x > 0 && active(plane[i - 1], ch.mpv, ch.t_nbr)) k |= 1;
          if (up && active(plane[i - w], ch.mpv, ch.t_nbr)) k |= 2;
          if (prev && active(prev[i], pc->mpv, pc->t_next)) k |= 4;
          ctx[i] = static_cast<uint8_t>(k);
          s.cur[c * hw + i] = cost(ch, plane[i], k);
          s.sum[cb] += s.cur[c * hw + i];
          s.nonmpv[cb] += plane[i] != ch.mpv;
        }
      }
    }
  }

  std::vector<Channel> ch_;
};

}  // namespace lic::codec
