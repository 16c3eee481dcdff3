// RDOQ: rate-distortion optimised quantisation of the latent (the encoder half; the
// decoder is unchanged). Chooses the integers q to minimise, in bits,
//
//   J(q) = R(q) + w · SSE(x, clamp(g_s(dequantize(q)), 0, 1)),   w = λ · 255² / 3,
//
// the training loss λ·255²·MSE + bpp times the pixel count: R is the exact code length under
// the coder's model (LatentRate: contexts, flags, escapes), SSE the squared error of the
// decoded image over the image's own pixels (not the padding), through the real g_s.
//
// Method (docs/rdoq.md; design study in benchmarks/rdoq_prototype.py):
//  1. The diagonal of JᵀJ (J: the Jacobian of g_s): a(c, p) = |g_s(ŷ + e_cp) − g_s(ŷ)|²,
//     the energy one unit step of latent (c, p) puts into the image. Latents S apart
//     (S · 16 pixels > the 61-pixel footprint for CompressAI's g_s) do not overlap, so one
//     forward pass probes one latent in every S×S block; S² passes probe every position once
//     (channels round-robin). The measurements follow log a = α_c + σ_p closely (a spatial
//     factor shared by all channels), which is fitted and used for every latent.
//  2. Sweeps. One forward pass (recording a tape) gives the true J; one backward pass the
//     gradient G = ∂SSE/∂q. For every latent of one spatial checkerboard phase and each step
//     δ = ±1: predicted ΔJ = ΔR(δ) (exact, changing that latent alone) + w (G δ + a).
//     At most `per_position` channels change per position (the largest predicted gains):
//     changed latents are never spatial neighbours, so the rate part of the prediction is
//     exact for the whole set unless two channels of one position follow each other in the
//     coding order (then only approximately). Of those, the fraction `frac` with the
//     largest gains is applied. The next forward pass tells the true ΔJ: a sweep that made J
//     worse is undone; frac follows the ratio r = true / predicted gain (the prediction
//     misses cross terms ~ frac²: the best next fraction is frac / (2 (1 − r))).
//  The result never has a larger J than plain rounding (only improving sweeps are kept).
//
// Passes of g_s: 2 + S² (probes) + 2 · sweeps (S² = 16 for CompressAI's g_s: 42 with 12
// sweeps). Deterministic: the runtime's passes are the same for any thread count and
// everything else is sequential in a fixed order.
//
// Decoders of another arithmetic (an int16 g_s, docs/int16.md): the distortion is that of
// the decoder's own exact output (its 8-bit pixels), the gradient that of the float g_s
// (one more forward pass per sweep).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "codec/core/latent.hpp"
#include "codec/decoder.hpp"
#include "codec/entropy/latent_coder.hpp"
#include "lic/gradient.hpp"
#include "lic/tensor.hpp"

namespace lic::codec {

struct RdoqOptions {
  double lambda = 0;     // λ of λ·255²·MSE + bpp; RDOQ is off when 0
  int sweeps = 12;       // linearisations: one forward and one backward pass of g_s each
  int per_position = 2;  // most channels changed at one latent position per sweep
  int band_rows = 0;     // latent rows per coded band, whose rate R counts (0: one band)
};

struct RdoqReport {
  double bits_plain = 0, sse_plain = 0;  // plain rounding
  double bits = 0, sse = 0;              // the chosen latent
  int sweeps = 0, accepted = 0, changed = 0;  // sweeps run, kept, latents differing from plain
  int passes = 0;                        // g_s-sized passes (forward, backward, probes)
};

class Rdoq {
 public:
  // g_s: the model's float synthesis transform; decoder_net: the network the decoder runs
  // when it is not that one (an int16 g_s), else nullptr.
  Rdoq(const lic::Gradient& g_s, const LatentCoder& coder,
       const lic::Model* decoder_net = nullptr)
      : g_s_(g_s), coder_(coder), decoder_net_(decoder_net) {
    if (!coder_.rate()) throw Error("RDOQ: this latent coder has no exact rate model");
    const auto& rh = g_s_.reach_h();
    const auto& rw = g_s_.reach_w();
    if (!rh.known || !rw.known || rh.scale < 1 || rw.scale < 1)
      throw Error("RDOQ: cannot bound the footprint of a latent in the synthesis transform");
  }

  // x: the encoder's padded input image (values in [0, 1], HWC); width x height: the image
  // itself (its top-left corner); y: g_a(x).
  Latent run(const lic::Tensor& x, int width, int height, const lic::Tensor& y,
             const RdoqOptions& opt, int threads, RdoqReport* report = nullptr) const {
    if (!(opt.lambda > 0) || !std::isfinite(opt.lambda)) throw Error("RDOQ: lambda must be > 0");
    if (opt.sweeps < 0 || opt.per_position < 1 || opt.band_rows < 0) throw Error("RDOQ: invalid options");
    Ctx k{x, width, height, threads, opt.lambda * 255.0 * 255.0 / 3.0};
    RdoqReport rep;
    Latent q = coder_.quantize(y);
    const Latent plain = q;
    const LatentRate& rate = *coder_.rate();
    const size_t hw = static_cast<size_t>(q.height) * q.width;

    lic::Gradient::Tape tape = g_s_.tape();
    std::vector<double> grad;
    lic::Tensor image;  // the decoded image of plain rounding (the probes' reference)
    double sse = forward_backward(k, q, tape, grad, &image);
    rep.passes += decoder_net_ ? 3 : 2;
    std::vector<double> a;
    rep.passes += probe_diagonal(k, q, image, a);
    double bits = rate.bits(q, opt.band_rows);
    double J = bits + k.w * sse;
    rep.bits_plain = bits;
    rep.sse_plain = sse;

    std::vector<double> dminus, dplus;
    std::vector<Candidate> cand;
    double frac = 1.0;
    int idle = 0;  // consecutive sweeps without a candidate
    for (int s = 0; s < opt.sweeps && idle < 2; ++s) {
      rate.step_deltas(q, -1, opt.band_rows, dminus);
      rate.step_deltas(q, +1, opt.band_rows, dplus);
      cand.clear();
      std::vector<Candidate> here;
      for (int py = 0; py < q.height; ++py)
        for (int px = 0; px < q.width; ++px) {
          if ((py + px) % 2 != s % 2) continue;
          const size_t p = static_cast<size_t>(py) * q.width + px;
          here.clear();
          for (int c = 0; c < q.channels; ++c) {
            const size_t i = c * hw + p;
            const double gm = dminus[i] + k.w * (-grad[i] + a[i]);
            const double gp = dplus[i] + k.w * (grad[i] + a[i]);
            const double g = std::min(gm, gp);
            if (g < 0) here.push_back({g, i, gp < gm ? 1 : -1});
          }
          const size_t keep = std::min(here.size(), static_cast<size_t>(opt.per_position));
          std::partial_sort(here.begin(), here.begin() + static_cast<std::ptrdiff_t>(keep),
                            here.end(), better);
          cand.insert(cand.end(), here.begin(), here.begin() + static_cast<std::ptrdiff_t>(keep));
        }
      if (cand.empty()) {
        ++idle;
        continue;
      }
      idle = 0;
      std::sort(cand.begin(), cand.end(), better);
      const size_t n = std::max<size_t>(1, static_cast<size_t>(std::ceil(frac * cand.size())));
      cand.resize(std::min(n, cand.size()));
      double predicted = 0;
      Latent next = q;
      for (const Candidate& c : cand) {
        predicted += c.gain;
        next.q[c.index] += c.step;
      }
      std::vector<double> next_grad;
      const double next_sse = forward_backward(k, next, tape, next_grad);
      rep.passes += decoder_net_ ? 3 : 2;
      ++rep.sweeps;
      const double next_bits = rate.bits(next, opt.band_rows);
      const double next_J = next_bits + k.w * next_sse;
      const double ratio = (next_J - J) / predicted;  // predicted < 0
      if (next_J < J) {
        q = std::move(next);
        grad = std::move(next_grad);
        J = next_J;
        bits = next_bits;
        sse = next_sse;
        ++rep.accepted;
      }
      frac = std::clamp(frac / (2.0 * (1.0 - std::min(ratio, 0.9))), 0.05, 1.0);
    }
    rep.bits = bits;
    rep.sse = sse;
    for (size_t i = 0; i < q.q.size(); ++i) rep.changed += q.q[i] != plain.q[i];
    if (report) *report = rep;
    return q;
  }

 private:
  struct Ctx {
    const lic::Tensor& x;
    int width, height, threads;
    double w;  // bits per unit of SSE
  };

  struct Candidate {
    double gain;  // predicted ΔJ (< 0)
    size_t index;
    int step;
  };

  // Largest gain first; ties by index (deterministic).
  static bool better(const Candidate& a, const Candidate& b) {
    return a.gain < b.gain || (a.gain == b.gain && a.index < b.index);
  }

  static float clamp01(float v) { return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; }  // NaN -> 0

  // SSE of the decoded image against x over the image's pixels, and dSSE/dq (channel planes,
  // like Latent::q): one forward pass recording the tape, one backward pass.
  double forward_backward(const Ctx& k, const Latent& q, lic::Gradient::Tape& tape,
                          std::vector<double>& grad, lic::Tensor* image = nullptr) const {
    const lic::Tensor y_hat = coder_.dequantize(q);
    const lic::Tensor xh = g_s_.forward(y_hat, k.threads, tape);
    check_output(k, xh);
    const lic::Tensor dec = decoder_net_ ? decoded(y_hat, k) : lic::Tensor();
    lic::Tensor dx(xh.height, xh.width, xh.channels);
    double sse = 0;
    for (int yy = 0; yy < k.height; ++yy)
      for (int xx = 0; xx < k.width; ++xx)
        for (int c = 0; c < 3; ++c) {
          const float v = xh.at(yy, xx, c);
          const float out = decoder_net_ ? dec.at(yy, xx, c) : clamp01(v);
          const double d = double(out) - double(k.x.at(yy, xx, c));
          sse += d * d;
          if (v >= 0.0f && v <= 1.0f) dx.at(yy, xx, c) = static_cast<float>(2.0 * d);
        }
    if (image) {  // the decoded image in [0, 1]
      if (decoder_net_) {
        *image = dec;
      } else {
        *image = xh;
        for (float& v : image->data) v = clamp01(v);
      }
    }
    const lic::Tensor g = g_s_.backward(tape, dx, k.threads);
    const size_t hw = static_cast<size_t>(q.height) * q.width;
    grad.assign(q.q.size(), 0.0);
    for (size_t p = 0; p < hw; ++p)
      for (int c = 0; c < q.channels; ++c) grad[c * hw + p] = g.data[p * q.channels + c];
    return sse;
  }

  // The decoder's image for y_hat, in [0, 1] (HWC, the padded size): float g_s clamped, or
  // an int16 g_s's exact 8-bit pixels / 255.
  lic::Tensor decoded(const lic::Tensor& y_hat, const Ctx& k) const {
    const lic::Model& net = decoder_net_ ? *decoder_net_ : g_s_.model();
    if (net.int16_output()) {
      const lic::QTensor q = net.run_int16(y_hat, k.threads);
      lic::Tensor out(q.height, q.width, q.channels);
      for (size_t i = 0; i < out.data.size(); ++i)
        out.data[i] = Decoder::int16_to_byte(q.data[i], q.shift) / 255.0f;
      check_output(k, out);
      return out;
    }
    lic::Tensor out = net.run(y_hat, k.threads);
    check_output(k, out);
    for (float& v : out.data) v = clamp01(v);
    return out;
  }

  void check_output(const Ctx& k, const lic::Tensor& xh) const {
    if (xh.channels != 3 || xh.height < k.height || xh.width < k.width)
      throw Error("RDOQ: the synthesis network output does not cover the image");
  }

  // a[c * hw + p] ≈ |g_s(ŷ + e_cp) − g_s(ŷ)|² (decoded images, image pixels; base: the
  // decoded image of q), from S² · rounds probe passes and the rank-1 fit
  // log a = α_c + σ_p. Returns the passes it ran.
  int probe_diagonal(const Ctx& k, const Latent& q, const lic::Tensor& base,
                     std::vector<double>& a) const {
    const lic::Gradient::Reach& rh = g_s_.reach_h();
    const lic::Gradient::Reach& rw = g_s_.reach_w();
    const int sy = static_cast<int>(std::floor((rh.hi - rh.lo) / rh.scale)) + 1;
    const int sx = static_cast<int>(std::floor((rw.hi - rw.lo) / rw.scale)) + 1;
    const int C = q.channels, lh = q.height, lw = q.width;
    const size_t hw = static_cast<size_t>(lh) * lw;
    // Enough rounds that each channel is measured about 4 times (small images: more rounds).
    const int rounds = static_cast<int>(
        std::clamp<long long>((4LL * C + static_cast<long long>(hw) - 1) / static_cast<long long>(hw), 1, 8));
    const lic::Tensor base_in = coder_.dequantize(q);
    std::vector<double> sum_log(static_cast<size_t>(C), 0.0), sigma(hw, 0.0);
    std::vector<int> count(static_cast<size_t>(C), 0);
    std::vector<double> logm(hw);
    std::vector<int> chan(hw);
    int passes = 0;
    for (int r = 0; r < rounds; ++r) {
      for (size_t p = 0; p < hw; ++p) chan[p] = static_cast<int>((p + static_cast<size_t>(r) * 97) % static_cast<size_t>(C));
      for (int oy = 0; oy < sy; ++oy)
        for (int ox = 0; ox < sx; ++ox) {
          if (oy >= lh || ox >= lw) continue;
          lic::Tensor in = base_in;
          for (int py = oy; py < lh; py += sy)
            for (int px = ox; px < lw; px += sx)
              in.at(py, px, chan[static_cast<size_t>(py) * lw + px]) += 1.0f;
          const lic::Tensor out = decoded(in, k);
          ++passes;
          for (int py = oy; py < lh; py += sy)
            for (int px = ox; px < lw; px += sx) {
              const int y0 = std::max(0, static_cast<int>(std::floor(rh.scale * py + rh.lo)));
              const int y1 = std::min(k.height - 1, static_cast<int>(std::ceil(rh.scale * py + rh.hi)));
              const int x0 = std::max(0, static_cast<int>(std::floor(rw.scale * px + rw.lo)));
              const int x1 = std::min(k.width - 1, static_cast<int>(std::ceil(rw.scale * px + rw.hi)));
              double e = 0;
              for (int yy = y0; yy <= y1; ++yy)
                for (int xx = x0; xx <= x1; ++xx)
                  for (int c = 0; c < 3; ++c) {
                    const double d = double(out.at(yy, xx, c)) - double(base.at(yy, xx, c));
                    e += d * d;
                  }
              const size_t p = static_cast<size_t>(py) * lw + px;
              logm[p] = std::log(std::max(e, 1e-12));
            }
        }
      for (size_t p = 0; p < hw; ++p) {
        sum_log[static_cast<size_t>(chan[p])] += logm[p];
        ++count[static_cast<size_t>(chan[p])];
      }
      // sigma collects log m per position; the channel part is taken out below.
      for (size_t p = 0; p < hw; ++p) sigma[p] += logm[p];
    }
    // α_c: mean log m of the channel (unmeasured channels: the mean of the others).
    std::vector<double> alpha(static_cast<size_t>(C), 0.0);
    double alpha_sum = 0;
    int measured = 0;
    for (int c = 0; c < C; ++c)
      if (count[static_cast<size_t>(c)] > 0) {
        alpha[static_cast<size_t>(c)] = sum_log[static_cast<size_t>(c)] / count[static_cast<size_t>(c)];
        alpha_sum += alpha[static_cast<size_t>(c)];
        ++measured;
      }
    for (int c = 0; c < C; ++c)
      if (count[static_cast<size_t>(c)] == 0) alpha[static_cast<size_t>(c)] = alpha_sum / measured;
    // σ_p: mean over rounds of log m − α of the channel measured there.
    for (int r = 0; r < rounds; ++r)
      for (size_t p = 0; p < hw; ++p)
        sigma[p] -= alpha[(p + static_cast<size_t>(r) * 97) % static_cast<size_t>(C)];
    for (size_t p = 0; p < hw; ++p) sigma[p] /= rounds;
    a.assign(static_cast<size_t>(C) * hw, 0.0);
    for (int c = 0; c < C; ++c)
      for (size_t p = 0; p < hw; ++p)
        a[static_cast<size_t>(c) * hw + p] = std::exp(alpha[static_cast<size_t>(c)] + sigma[p]);
    return passes;
  }

  const lic::Gradient& g_s_;
  const LatentCoder& coder_;
  const lic::Model* decoder_net_;
};

}  // namespace lic::codec
