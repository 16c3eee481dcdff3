// Deflate (RFC 1951) with Huffman codes only: one dynamic block of literals, no string
// matching -- what the PNG writer (png_encode.hpp) needs for Paeth residuals of decoded
// images, whose redundancy is in the symbol frequencies rather than in repeated strings.
//
// zlib's Z_HUFFMAN_ONLY gives the same kind of stream but spends ~6 ms on a Kodak image
// (it tallies every byte through its generic match/literal machinery); here the bytes are
// counted in four histograms, the code lengths are optimal under deflate's 15-bit limit
// (package-merge), and the codes go out three at a time through a 64-bit bit buffer.
// docs/performance.md#png has the figures.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lic::codec::huffman_only {

constexpr int kLiteralLimit = 15;    // longest literal/length code deflate allows
constexpr int kCodeLengthLimit = 7;  // longest code of the code-length alphabet
constexpr int kEndOfBlock = 256;

// Code lengths of at most `limit` bits minimising sum(freq[s] * len[s]) over the n symbols
// (len 0 where freq is 0), by package-merge. Two or more used symbols give a complete code
// (inflaters reject incomplete ones); a single used symbol gets a 1-bit code. Needs
// n <= 2^limit, which holds for both deflate alphabets.
inline void optimal_code_lengths(const uint32_t* freq, int n, int limit, uint8_t* len) {
  std::fill(len, len + n, uint8_t{0});
  std::vector<int> leaves;
  for (int s = 0; s < n; ++s)
    if (freq[s]) leaves.push_back(s);
  std::stable_sort(leaves.begin(), leaves.end(), [&](int a, int b) { return freq[a] < freq[b]; });
  const size_t m = leaves.size();
  if (m == 0) return;
  if (m == 1) {
    len[leaves[0]] = 1;
    return;
  }
  // lists[l]: the cheapest items of level l, ascending; an item is a leaf (its symbol) or a
  // package of items 2k and 2k+1 of level l-1 (symbol -1). Only the first 2m-2 items of
  // any level can be chosen, so each list is cut there.
  struct Item {
    uint64_t weight;
    int symbol;
  };
  const size_t keep = 2 * m - 2;
  std::vector<std::vector<Item>> lists(static_cast<size_t>(limit));
  for (int s : leaves) lists[0].push_back({freq[s], s});
  for (size_t l = 1; l < lists.size(); ++l) {
    const std::vector<Item>& below = lists[l - 1];
    std::vector<Item>& list = lists[l];
    size_t i = 0, k = 0;
    const size_t packages = below.size() / 2;
    while (list.size() < keep && (i < m || k < packages)) {
      const uint64_t pw = k < packages ? below[2 * k].weight + below[2 * k + 1].weight : UINT64_MAX;
      if (i < m && freq[leaves[i]] <= pw) {
        list.push_back({freq[leaves[i]], leaves[i]});
        ++i;
      } else {
        list.push_back({pw, -1});
        ++k;
      }
    }
  }
  // The first 2m-2 items of the top level are chosen; a chosen package chooses its two
  // items one level down. A symbol's length is the number of levels where it is chosen.
  size_t chosen = keep;
  for (size_t l = lists.size(); l-- > 0;) {
    size_t packages = 0;
    for (size_t i = 0; i < chosen; ++i) {
      if (lists[l][i].symbol >= 0)
        ++len[lists[l][i].symbol];
      else
        ++packages;
    }
    chosen = 2 * packages;
  }
}

// Canonical codes of the lengths (RFC 1951 3.2.2), bit-reversed because deflate sends a
// Huffman code from its first bit while the bit writer fills bytes from the low end.
inline void canonical_codes(const uint8_t* len, int n, uint16_t* code) {
  std::array<uint16_t, 16> count{}, next{};
  for (int s = 0; s < n; ++s) ++count[len[s]];
  count[0] = 0;
  uint16_t c = 0;
  for (int b = 1; b < 16; ++b) {
    c = static_cast<uint16_t>((c + count[b - 1]) << 1);
    next[b] = c;
  }
  for (int s = 0; s < n; ++s) {
    if (!len[s]) {
      code[s] = 0;
      continue;
    }
    uint16_t v = next[len[s]]++, r = 0;
    for (int b = 0; b < len[s]; ++b) r = static_cast<uint16_t>(r << 1 | ((v >> b) & 1));
    code[s] = r;
  }
}

// Bits appended from the low end of each byte, as deflate packs them.
class BitWriter {
 public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  void put(uint32_t bits, int n) {  // n <= 32
    buf_ |= static_cast<uint64_t>(bits) << count_;
    count_ += n;
    while (count_ >= 8) {
      out_.push_back(static_cast<uint8_t>(buf_));
      buf_ >>= 8;
      count_ -= 8;
    }
  }
  void align() {
    if (count_) put(0, 8 - count_);
  }
  // The pending bits (fewer than 8) handed to a faster writer, which hands them back.
  int pending(uint64_t* bits) const {
    *bits = buf_;
    return count_;
  }
  void resume(uint64_t bits, int count) {
    buf_ = bits;
    count_ = count;
  }
  std::vector<uint8_t>& bytes() { return out_; }  // the whole bytes written so far

 private:
  std::vector<uint8_t>& out_;
  uint64_t buf_ = 0;
  int count_ = 0;
};

// The literal and distance code lengths run-length coded with the code-length alphabet
// (0-15 a length, 16 repeat the previous 3-6 times, 17 3-10 zeros, 18 11-138 zeros): each
// entry is a symbol and its extra bits.
struct LengthToken {
  uint8_t symbol, extra;
};

inline std::vector<LengthToken> run_length_code(const std::vector<uint8_t>& lens) {
  std::vector<LengthToken> out;
  for (size_t i = 0; i < lens.size();) {
    const uint8_t v = lens[i];
    size_t run = 1;
    while (i + run < lens.size() && lens[i + run] == v) ++run;
    i += run;
    if (v == 0) {
      while (run >= 11) {
        const size_t r = std::min<size_t>(run, 138);
        out.push_back({18, static_cast<uint8_t>(r - 11)});
        run -= r;
      }
      if (run >= 3) {
        out.push_back({17, static_cast<uint8_t>(run - 3)});
        run = 0;
      }
    } else {
      out.push_back({v, 0});
      --run;
      while (run >= 3) {
        const size_t r = std::min<size_t>(run, 6);
        out.push_back({16, static_cast<uint8_t>(r - 3)});
        run -= r;
      }
    }
    for (; run; --run) out.push_back({v, 0});
  }
  return out;
}

// Byte frequencies of data, and the end-of-block symbol's one. Four histograms: equal
// consecutive bytes (common in residuals) would otherwise wait on the previous increment
// of the same counter.
inline std::array<uint32_t, 257> symbol_frequencies(const uint8_t* data, size_t n) {
  std::array<std::array<uint32_t, 256>, 4> hist{};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++hist[0][data[i]];
    ++hist[1][data[i + 1]];
    ++hist[2][data[i + 2]];
    ++hist[3][data[i + 3]];
  }
  for (; i < n; ++i) ++hist[0][data[i]];
  std::array<uint32_t, 257> freq{};
  for (int s = 0; s < 256; ++s) freq[s] = hist[0][s] + hist[1][s] + hist[2][s] + hist[3][s];
  freq[kEndOfBlock] = 1;
  return freq;
}

// A dynamic block's header: the literal code lengths (and two 1-bit distance codes: no
// distance is ever sent, but a complete code is the form every inflater accepts),
// run-length coded, with the code-length code.
struct DynamicHeader {
  std::vector<LengthToken> tokens;
  std::array<uint8_t, 19> cl_len{};
  int hclen = 19;  // code-length code lengths sent, in kOrder
  uint64_t bits = 0;

  static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  static constexpr uint8_t kExtraBits[3] = {2, 3, 7};  // of symbols 16, 17, 18

  explicit DynamicHeader(const std::array<uint8_t, 257>& lit_len) {
    std::vector<uint8_t> lens(lit_len.begin(), lit_len.end());
    lens.push_back(1);
    lens.push_back(1);
    tokens = run_length_code(lens);
    std::array<uint32_t, 19> freq{};
    for (const LengthToken& t : tokens) ++freq[t.symbol];
    optimal_code_lengths(freq.data(), 19, kCodeLengthLimit, cl_len.data());
    while (hclen > 4 && cl_len[kOrder[hclen - 1]] == 0) --hclen;
    bits = 3 + 5 + 5 + 4 + 3 * static_cast<uint64_t>(hclen);
    for (const LengthToken& t : tokens) bits += cl_len[t.symbol] + extra_bits(t.symbol);
  }

  static int extra_bits(int symbol) { return symbol >= 16 ? kExtraBits[symbol - 16] : 0; }

  void write(BitWriter& w, bool final) const {
    w.put(final ? 1 : 0, 1);
    w.put(2, 2);  // BTYPE 10: dynamic Huffman codes
    w.put(0, 5);  // HLIT: 257 literal/length codes
    w.put(1, 5);  // HDIST: 2 distance codes
    w.put(static_cast<uint32_t>(hclen - 4), 4);
    for (int k = 0; k < hclen; ++k) w.put(cl_len[kOrder[k]], 3);
    std::array<uint16_t, 19> code{};
    canonical_codes(cl_len.data(), 19, code.data());
    for (const LengthToken& t : tokens) {
      w.put(code[t.symbol], cl_len[t.symbol]);
      if (t.symbol >= 16) w.put(t.extra, extra_bits(t.symbol));
    }
  }
};

// data as stored blocks of at most 65535 bytes, the last one BFINAL when `final`.
inline void write_stored_blocks(BitWriter& w, const uint8_t* data, size_t n, bool final) {
  const size_t blocks = std::max<size_t>(1, (n + 65534) / 65535);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t pos = b * 65535, m = std::min<size_t>(65535, n - pos);
    w.put(final && b + 1 == blocks ? 1 : 0, 3);  // BFINAL, BTYPE 00
    w.align();
    w.put(static_cast<uint32_t>(m) | static_cast<uint32_t>(~m & 0xffff) << 16, 32);  // LEN, NLEN
    w.bytes().insert(w.bytes().end(), data + pos, data + pos + m);  // byte-aligned here
  }
}

// The literals of data in the codes (code | length << 16 per byte value): three codes (at
// most 45 bits) join the fewer than 8 pending bits in a 64-bit buffer, whose whole bytes
// are then stored at once (8 bytes written, the cursor advanced by those complete).
// `bits` is their exact total, known from the code lengths.
inline void write_literals(BitWriter& w, const uint8_t* data, size_t n,
                           const std::array<uint32_t, 256>& entry, uint64_t bits) {
  std::vector<uint8_t>& out = w.bytes();
  uint64_t buf;
  int count = w.pending(&buf);
  const size_t start = out.size();
  out.resize(start + static_cast<size_t>(bits / 8) + 16);
  uint8_t* p = out.data() + start;
  auto flush = [&] {
    std::memcpy(p, &buf, 8);
    p += count >> 3;
    buf >>= count & ~7;  // count <= 7 + 45
    count &= 7;
  };
  auto add = [&](uint8_t byte) {
    const uint32_t e = entry[byte];
    buf |= static_cast<uint64_t>(e & 0xffff) << count;
    count += static_cast<int>(e >> 16);
  };
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    add(data[i]);
    add(data[i + 1]);
    add(data[i + 2]);
    flush();
  }
  for (; i < n; ++i) {
    add(data[i]);
    flush();
  }
  out.resize(static_cast<size_t>(p - out.data()));
  w.resume(buf, count);
}

// Writes `data` as one dynamic block (or as stored blocks when that is smaller, e.g. for
// noise), BFINAL set when `final`.
inline void write_huffman_block(BitWriter& w, const uint8_t* data, size_t n, bool final) {
  const std::array<uint32_t, 257> freq = symbol_frequencies(data, n);
  std::array<uint8_t, 257> len{};
  optimal_code_lengths(freq.data(), 257, kLiteralLimit, len.data());
  const DynamicHeader header(len);
  uint64_t literal_bits = 0;
  for (int s = 0; s < 256; ++s) literal_bits += static_cast<uint64_t>(freq[s]) * len[s];
  const uint64_t stored_bits = 8 * (n + 5 * std::max<uint64_t>(1, (n + 65534) / 65535)) + 7;
  if (stored_bits < header.bits + literal_bits + len[kEndOfBlock]) {
    write_stored_blocks(w, data, n, final);
    return;
  }
  header.write(w, final);
  std::array<uint16_t, 257> code{};
  canonical_codes(len.data(), 257, code.data());
  std::array<uint32_t, 256> entry{};
  for (int s = 0; s < 256; ++s) entry[s] = code[s] | static_cast<uint32_t>(len[s]) << 16;
  write_literals(w, data, n, entry, literal_bits);
  w.put(code[kEndOfBlock], len[kEndOfBlock]);
}

// Ends a stream that is to be continued by another one written independently: an empty
// stored block leaves it byte-aligned (zlib's full flush), so the next stream's bytes can
// simply follow.
inline void write_empty_stored_block(BitWriter& w) {
  w.put(0, 3);  // BFINAL 0, BTYPE 00
  w.align();
  w.put(0xffff0000u, 32);  // LEN 0, NLEN 0xffff
}

}  // namespace lic::codec::huffman_only
