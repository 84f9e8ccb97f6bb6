#ifndef DSRT_BACKENDS_ONEDNN_CPU_AVX512_H_
#define DSRT_BACKENDS_ONEDNN_CPU_AVX512_H_

// The AVX-512 (F/BW/VL/DQ + BF16 + VNNI) versions of cpu.h's kernels. This file's
// .cc alone is compiled for that ISA; cpu.cc calls in only when CPUID says so.

#include <cstdint>

#include "backends/onednn/cpu.h"

namespace dsrt::backends::onednn::avx512 {

void F32ToBf16(const float* src, uint16_t* dst, int64_t n);
void Bf16ToF32(const uint16_t* src, float* dst, int64_t n);
void SiluMul(const float* gate, const float* up, int64_t n, bool round_silu_to_bf16, float* out);
float SumF32(const float* x, int64_t n);
float DotF32(const float* a, const float* b, int64_t n);
void Axpy(float a, const float* x, float* y, int64_t n);
void AxpyBf16(float a, const uint16_t* x, float* y, int64_t n);
float DotBf16(const float* a, const uint16_t* b, int64_t n);
void Bf16Gemv(const uint16_t* x, const uint16_t* packed, int64_t k, int64_t n, float* y);
void QuantizeActivations(const float* x, int64_t tokens, int64_t k, int64_t group_size, int8_t* values,
                         float* scales, int32_t* sums);
void VnniRowBlocks(const QuantizedActivations& x, const VnniWeight& w, int64_t block_begin, int64_t block_end,
                   float* y, int64_t y_stride);

}  // namespace dsrt::backends::onednn::avx512

#endif  // DSRT_BACKENDS_ONEDNN_CPU_AVX512_H_
