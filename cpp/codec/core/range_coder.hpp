// Range coder with 16-bit probability tables (docs/bitstream.md#range-coder).
//
// State: 32-bit range, low with one carry bit (LZMA-style byte output with a cache byte and
// a count of pending 0xFF bytes). A symbol with cumulative frequency [c, c+f) of 2^16
// narrows [low, low+range) to [low + (range*c >> 16), low + (range*(c+f) >> 16)): the full
// 48-bit product is kept, so the only loss against the ideal code length is the final
// flush (<= 4 bytes) -- not the up-to-0.4%-per-symbol of the usual (range >> 16) * c.
// Range stays >= 2^24, so every symbol of frequency >= 1 keeps a non-empty interval.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/error.hpp"

namespace lic::codec {

constexpr int kProbBits = 16;
constexpr uint32_t kProbOne = 1u << kProbBits;
constexpr uint32_t kRangeTop = 1u << 24;  // renormalise below this

// Position of the cumulative frequency cum inside the current range.
inline uint32_t scale_cum(uint32_t range, uint32_t cum) {
    return static_cast<uint32_t>((static_cast<uint64_t>(range) * cum) >> kProbBits);
}

class RangeEncoder {
public:
    // Codes the symbol whose cumulative interval is [cum, cum + freq) out of 2^16.
    void encode(uint32_t cum, uint32_t freq) {
        const uint32_t a = scale_cum(range_, cum);
        const uint32_t b = scale_cum(range_, cum + freq);
        low_ += a;
        range_ = b - a;
        while (range_ < kRangeTop) {
            range_ <<= 8;
            shift_low();
        }
    }

    // Codes the low `nbits` (1..16) bits of `value` with equal probabilities.
    void encode_bits(uint32_t value, int nbits) {
        const int shift = kProbBits - nbits;
        encode((value & ((1u << nbits) - 1)) << shift, 1u << shift);
    }

    // Ends the stream and returns the bytes. The flushed value is the number in
    // [low, low + range) with the most trailing zero bits; trailing zero bytes (at most
    // 4) are dropped because the decoder reads missing bytes as zeros.
    std::vector<uint8_t> finish() {
        const uint64_t last = low_ + range_ - 1;
        for (int k = 32; k >= 0; --k) {
            const uint64_t mask = (k == 0) ? 0 : ((uint64_t{1} << k) - 1);
            const uint64_t v = (low_ + mask) & ~mask;
            if (v <= last) {
                low_ = v;
                break;
            }
        }
        for (int i = 0; i < 5; ++i) shift_low();
        size_t trimmed = 0;
        while (trimmed < 4 && !out_.empty() && out_.back() == 0) {
            out_.pop_back();
            ++trimmed;
        }
        return std::move(out_);
    }

private:
    void shift_low() {
        if (low_ < 0xFF000000u || low_ >= (uint64_t{1} << 32)) {
            const uint8_t carry = static_cast<uint8_t>(low_ >> 32);
            if (!first_) out_.push_back(static_cast<uint8_t>(cache_ + carry));
            for (; pending_ff_ > 0; --pending_ff_) out_.push_back(static_cast<uint8_t>(0xFF + carry));
            cache_ = static_cast<uint8_t>(low_ >> 24);
            first_ = false;
        } else {
            ++pending_ff_;
        }
        low_ = (low_ << 8) & 0xFFFFFFFFu;
    }

    uint64_t low_ = 0;
    uint32_t range_ = 0xFFFFFFFFu;
    uint8_t cache_ = 0;
    bool first_ = true;  // the first cached byte is always 0 (never carried into): not sent
    uint64_t pending_ff_ = 0;
    std::vector<uint8_t> out_;
};

class RangeDecoder {
public:
    // Reads past the end of the data are zeros, at most 4 of them (the encoder's trim).
    RangeDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
        for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | next_byte();
    }

    // Decodes one symbol of the table `cdf` (n + 1 entries, cdf[0] = 0, cdf[n] = 2^16,
    // strictly increasing) and returns its index.
    uint32_t decode(const uint32_t* cdf, uint32_t n) {
        if (code_ >= range_) throw Error("corrupt bitstream (range decoder out of range)");
        // Largest s with scale_cum(range, cdf[s]) <= code; cdf[0] = 0 qualifies.
        uint32_t lo = 0, hi = n;  // invariant: answer in [lo, hi)
        while (hi - lo > 1) {
            const uint32_t mid = lo + (hi - lo) / 2;
            if (scale_cum(range_, cdf[mid]) <= code_) lo = mid; else hi = mid;
        }
        const uint32_t a = scale_cum(range_, cdf[lo]);
        const uint32_t b = scale_cum(range_, cdf[lo + 1]);
        code_ -= a;
        range_ = b - a;
        normalize();
        return lo;
    }

    // Decodes a binary symbol coded with encode(0, f0) / encode(f0, 2^16 - f0).
    uint32_t decode_binary(uint32_t f0) {
        const uint32_t cdf[3] = {0, f0, kProbOne};
        return decode(cdf, 2);
    }

    uint32_t decode_bits(int nbits) {
        if (code_ >= range_) throw Error("corrupt bitstream (range decoder out of range)");
        const int shift = kProbBits - nbits;
        // value = largest v with scale_cum(range, v << shift) <= code; found bit by bit.
        uint32_t v = 0;
        for (int bit = nbits - 1; bit >= 0; --bit) {
            const uint32_t t = v | (1u << bit);
            if (scale_cum(range_, t << shift) <= code_) v = t;
        }
        const uint32_t a = scale_cum(range_, v << shift);
        const uint32_t b = scale_cum(range_, (v + 1) << shift);
        code_ -= a;
        range_ = b - a;
        normalize();
        return v;
    }

    // Bytes consumed, counting the virtual zeros read past the end.
    size_t bytes_read() const { return pos_; }
    size_t size() const { return size_; }
    uint32_t range() const { return range_; }
    uint32_t code() const { return code_; }

private:
    void normalize() {
        while (range_ < kRangeTop) {
            code_ = (code_ << 8) | next_byte();
            range_ <<= 8;
        }
    }

    uint32_t next_byte() {
        if (pos_ < size_) return data_[pos_++];
        if (pos_ >= size_ + 4) throw Error("truncated bitstream (payload ended early)");
        ++pos_;
        return 0;
    }

    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
    uint32_t code_ = 0;
    uint32_t range_ = 0xFFFFFFFFu;
};

}  // namespace lic::codec
