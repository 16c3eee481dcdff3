// The one dispatch point. An init function per instruction-set level puts that level's
// kernels into a table (a level without a kernel of its own keeps the one below, dav1d
// style); CPU features are detected here and nowhere else.
//
//   kern::kernels()          the table the runtime uses: the best level this CPU has,
//                            chosen once at first use; LIC_FORCE_SCALAR=1 in the
//                            environment forces the scalar twins, LIC_ISA=<name> caps the
//                            level at <name> (e.g. avx2+fma; tests and debugging)
//   kern::kernels_for(isa)   the table of any level the CPU supports (the kernel tests
//                            loop over them)
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "lic/kernels/contracts.hpp"
#include "lic/kernels/f32-s16-vcvt/avx2.hpp"
#include "lic/kernels/f32-s16-vcvt/scalar.hpp"
#include "lic/kernels/f32-gdn-finish/avx2.hpp"
#include "lic/kernels/f32-gdn-finish/scalar.hpp"
#include "lic/kernels/f32-igemm/avx2-fma.hpp"
#include "lic/kernels/f32-igemm/avx512f.hpp"
#include "lic/kernels/f32-igemm/scalar.hpp"
#include "lic/kernels/f32-vadd/avx2.hpp"
#include "lic/kernels/f32-vadd/scalar.hpp"
#include "lic/kernels/f32-vlincomb/avx2-fma.hpp"
#include "lic/kernels/f32-vlincomb/avx512f.hpp"
#include "lic/kernels/f32-vlincomb/scalar.hpp"
#include "lic/kernels/f32-vleaky-grad/avx2.hpp"
#include "lic/kernels/f32-vleaky-grad/scalar.hpp"
#include "lic/kernels/f32-vleaky/avx2.hpp"
#include "lic/kernels/f32-vleaky/scalar.hpp"
#include "lic/kernels/f32-vsquare/avx2.hpp"
#include "lic/kernels/f32-vsquare/scalar.hpp"
#include "lic/kernels/s16-f32-vcvt/avx2.hpp"
#include "lic/kernels/s16-f32-vcvt/scalar.hpp"
#include "lic/kernels/s16-gdn-finish/avx2.hpp"
#include "lic/kernels/s16-gdn-finish/scalar.hpp"
#include "lic/kernels/s16-igemm/avx2.hpp"
#include "lic/kernels/s16-igemm/avx512vnni.hpp"
#include "lic/kernels/s16-igemm/scalar.hpp"
#include "lic/kernels/s16-vadd/avx2.hpp"
#include "lic/kernels/s16-vadd/scalar.hpp"
#include "lic/kernels/s16-vleaky/avx2.hpp"
#include "lic/kernels/s16-vleaky/scalar.hpp"
#include "lic/kernels/s16-vsquare/avx2.hpp"
#include "lic/kernels/s16-vsquare/scalar.hpp"

namespace lic {
namespace kern {

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2Fma: return "avx2+fma";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512-vnni";
  }
  return "?";
}

// Whether this CPU (and OS) can run code of level `isa`.
inline bool cpu_supports(Isa isa) {
  if (isa == Isa::kScalar) return true;
#ifdef LIC_HAVE_X86_KERNELS
  __builtin_cpu_init();
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::kAvx2Fma) return avx2_fma;
  const bool avx512 = avx2_fma && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  if (isa == Isa::kAvx512) return avx512;
  if (isa == Isa::kAvx512Vnni) return avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  return false;
}

// Whether level `isa` has kernels of its own in this build (a level without any is never
// chosen: its table would be the one below it under another name).
inline bool has_kernels(Isa isa) {
  if (isa == Isa::kScalar) return true;
#ifdef LIC_HAVE_X86_KERNELS
  if (isa == Isa::kAvx2Fma || isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni) return true;
#endif
  return false;
}

inline void init_scalar(KernelTable& t) {
  t.mr = kMR;
  t.mr32 = 0;
  t.igemm[0] = f32_igemm_x16__scalar<1>;
  t.igemm[1] = f32_igemm_x16__scalar<2>;
  t.igemm[2] = f32_igemm_x16__scalar<3>;
  t.igemm[3] = f32_igemm_x16__scalar<4>;
  t.igemm[4] = f32_igemm_x16__scalar<5>;
  t.igemm[5] = f32_igemm_x16__scalar<6>;
  t.lincomb = f32_vlincomb__scalar;
  t.leaky = f32_vleaky__scalar;
  t.leaky_grad = f32_vleaky_grad__scalar;
  t.add = f32_vadd__scalar;
  t.square = f32_vsquare__scalar;
  t.gdn_finish = f32_gdn_finish__scalar;
  t.s16_igemm[0] = s16_igemm_x16__scalar<1>;
  t.s16_igemm[1] = s16_igemm_x16__scalar<2>;
  t.s16_igemm[2] = s16_igemm_x16__scalar<3>;
  t.s16_igemm[3] = s16_igemm_x16__scalar<4>;
  t.s16_igemm[4] = s16_igemm_x16__scalar<5>;
  t.s16_igemm[5] = s16_igemm_x16__scalar<6>;
  t.s16_leaky = s16_vleaky__scalar;
  t.s16_add = s16_vadd__scalar;
  t.s16_square = s16_vsquare__scalar;
  t.s16_gdn_finish = s16_gdn_finish__scalar;
  t.quantize = f32_s16_vcvt__scalar;
  t.dequantize = s16_f32_vcvt__scalar;
}

#ifdef LIC_HAVE_X86_KERNELS
inline void init_avx2_fma(KernelTable& t) {
  t.mr = kMR;
  t.igemm[0] = f32_igemm_x16__avx2_fma<1>;
  t.igemm[1] = f32_igemm_x16__avx2_fma<2>;
  t.igemm[2] = f32_igemm_x16__avx2_fma<3>;
  t.igemm[3] = f32_igemm_x16__avx2_fma<4>;
  t.igemm[4] = f32_igemm_x16__avx2_fma<5>;
  t.igemm[5] = f32_igemm_x16__avx2_fma<6>;
  t.lincomb = f32_vlincomb__avx2_fma;
  t.leaky = f32_vleaky__avx2;
  t.leaky_grad = f32_vleaky_grad__avx2;
  t.add = f32_vadd__avx2;
  t.square = f32_vsquare__avx2;
  t.gdn_finish = f32_gdn_finish__avx2;
  t.s16_igemm[0] = s16_igemm_x16__avx2<1>;
  t.s16_igemm[1] = s16_igemm_x16__avx2<2>;
  t.s16_igemm[2] = s16_igemm_x16__avx2<3>;
  t.s16_igemm[3] = s16_igemm_x16__avx2<4>;
  t.s16_igemm[4] = s16_igemm_x16__avx2<5>;
  t.s16_igemm[5] = s16_igemm_x16__avx2<6>;
  t.s16_leaky = s16_vleaky__avx2;
  t.s16_add = s16_vadd__avx2;
  t.s16_square = s16_vsquare__avx2;
  t.s16_gdn_finish = s16_gdn_finish__avx2;
  t.quantize = f32_s16_vcvt__avx2;
  t.dequantize = s16_f32_vcvt__avx2;
}

// AVX-512 VNNI: the int16 GEMM only (vpdpwssd); everything else is the AVX-512 table's.
inline void init_avx512_vnni(KernelTable& t) {
  t.s16_igemm[0] = s16_igemm_x16__avx512vnni<1>;
  t.s16_igemm[1] = s16_igemm_x16__avx512vnni<2>;
  t.s16_igemm[2] = s16_igemm_x16__avx512vnni<3>;
  t.s16_igemm[3] = s16_igemm_x16__avx512vnni<4>;
  t.s16_igemm[4] = s16_igemm_x16__avx512vnni<5>;
  t.s16_igemm[5] = s16_igemm_x16__avx512vnni<6>;
}
#endif

#ifdef LIC_HAVE_X86_KERNELS
// Only the GEMM and the Winograd transforms' kernel have AVX-512 versions (the
// element-wise ones are memory-bound).
inline void init_avx512(KernelTable& t) {
  t.lincomb = f32_vlincomb__avx512f;
  t.mr = kMRAvx512;
  t.igemm[0] = f32_igemm_x16__avx512f<1>;
  t.igemm[1] = f32_igemm_x16__avx512f<2>;
  t.igemm[2] = f32_igemm_x16__avx512f<3>;
  t.igemm[3] = f32_igemm_x16__avx512f<4>;
  t.igemm[4] = f32_igemm_x16__avx512f<5>;
  t.igemm[5] = f32_igemm_x16__avx512f<6>;
  t.igemm[6] = f32_igemm_x16__avx512f<7>;
  t.igemm[7] = f32_igemm_x16__avx512f<8>;
  t.igemm[8] = f32_igemm_x16__avx512f<9>;
  t.igemm[9] = f32_igemm_x16__avx512f<10>;
  t.igemm[10] = f32_igemm_x16__avx512f<11>;
  t.igemm[11] = f32_igemm_x16__avx512f<12>;
  t.igemm[12] = f32_igemm_x16__avx512f<13>;
  t.igemm[13] = f32_igemm_x16__avx512f<14>;
  t.mr32 = kMR32Avx512;
  t.igemm32[0] = f32_igemm_x32__avx512f<1>;
  t.igemm32[1] = f32_igemm_x32__avx512f<2>;
  t.igemm32[2] = f32_igemm_x32__avx512f<3>;
  t.igemm32[3] = f32_igemm_x32__avx512f<4>;
  t.igemm32[4] = f32_igemm_x32__avx512f<5>;
  t.igemm32[5] = f32_igemm_x32__avx512f<6>;
  t.igemm32[6] = f32_igemm_x32__avx512f<7>;
  t.igemm32[7] = f32_igemm_x32__avx512f<8>;
  t.igemm32[8] = f32_igemm_x32__avx512f<9>;
  t.igemm32[9] = f32_igemm_x32__avx512f<10>;
  t.igemm32[10] = f32_igemm_x32__avx512f<11>;
  t.igemm32[11] = f32_igemm_x32__avx512f<12>;
}
#endif

// The table of level `isa`: every level up to it, in order. The caller checks
// cpu_supports(isa) first.
inline KernelTable kernels_for(Isa isa) {
  KernelTable t{};
  t.level = isa;
  t.isa = isa_name(isa);
  init_scalar(t);
#ifdef LIC_HAVE_X86_KERNELS
  if (isa >= Isa::kAvx2Fma) init_avx2_fma(t);
  if (isa >= Isa::kAvx512) init_avx512(t);
  if (isa >= Isa::kAvx512Vnni) init_avx512_vnni(t);
#endif
  return t;
}

// The highest level this CPU supports that has kernels of its own.
inline Isa best_isa() {
  Isa best = Isa::kScalar;
  for (int i = 1; i < kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (has_kernels(isa) && cpu_supports(isa)) best = isa;
  }
  return best;
}

inline bool env_forces_scalar() {
  const char* v = std::getenv("LIC_FORCE_SCALAR");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

// LIC_ISA=<level name>: the highest level to use (ignored if unknown or unsupported).
inline Isa env_isa_cap(Isa best) {
  const char* v = std::getenv("LIC_ISA");
  if (v == nullptr) return best;
  for (int i = 0; i < kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (std::strcmp(v, isa_name(isa)) == 0 && isa < best) {
      Isa cap = Isa::kScalar;  // the highest level up to it that has kernels of its own
      for (int j = 1; j <= i; ++j)
        if (has_kernels(static_cast<Isa>(j)) && cpu_supports(static_cast<Isa>(j)))
          cap = static_cast<Isa>(j);
      return cap;
    }
  }
  return best;
}

// Thread-safe one-time initialisation (function-local static).
inline const KernelTable& kernels() {
  static const KernelTable table =
      kernels_for(env_forces_scalar() ? Isa::kScalar : env_isa_cap(best_isa()));
  return table;
}

}  // namespace kern
}  // namespace lic
