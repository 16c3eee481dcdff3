// The one dispatch point: picks the best kernels for this CPU once, at first use.
// LIC_FORCE_SCALAR=1 in the environment forces the scalar twins (for tests and debugging).
#pragma once

#include <cstdlib>
#include <cstring>

#include "lic/generic/kernels_scalar.hpp"
#include "lic/kernel_api.hpp"
#include "lic/x86/kernels_avx2.hpp"

namespace lic {
namespace kern {

// The best table for this CPU, or the scalar one when force_scalar is set.
inline KernelTable select_kernels(bool force_scalar) {
  KernelTable t = scalar_kernels();
  if (force_scalar) return t;
#ifdef LIC_HAVE_X86_KERNELS
  if (x86::cpu_has_avx2_fma()) x86::fill_avx2_fma(t);
#endif
  return t;
}

inline bool env_forces_scalar() {
  const char* v = std::getenv("LIC_FORCE_SCALAR");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

// Thread-safe one-time initialisation (function-local static).
inline const KernelTable& kernels() {
  static const KernelTable table = select_kernels(env_forces_scalar());
  return table;
}

}  // namespace kern
}  // namespace lic
