// Per-pixel arithmetic shared by the CPU and CUDA builds: compiled as __host__ __device__ under nvcc and as
// plain inline C++ otherwise, so the CPU output the tests compare bit for bit is what the GPU computes.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define NVP_HD __host__ __device__ __forceinline__
#else
#define NVP_HD inline
#endif

namespace nvila_preprocess {

// Pillow's 8-bit resampler keeps weights as fixed point with 32 - 8 - 2 fractional bits.
constexpr int kPrecisionBits = 22;
constexpr int32_t kRoundingHalf = 1 << (kPrecisionBits - 1);

// One output sample of a resampling pass: the rounding half plus every tap, then Pillow's shift and clip.
NVP_HD uint8_t resample_tap_sum(const uint8_t* first, int stride, const int32_t* weights, int taps) {
    int32_t acc = kRoundingHalf;
    for (int k = 0; k < taps; ++k) acc += int32_t(first[k * stride]) * weights[k];
    int32_t value = acc >> kPrecisionBits;
    return uint8_t(value < 0 ? 0 : (value > 255 ? 255 : value));
}

NVP_HD uint8_t clip_shifted(int32_t acc) {
    int32_t value = acc >> kPrecisionBits;
    return uint8_t(value < 0 ? 0 : (value > 255 ? 255 : value));
}

// The processor's rescale (in double, stored as float32) then (x - mean) / std in float32.
NVP_HD float normalized(uint8_t value, float mean, float std) {
    float scaled = float(double(value) * (1.0 / 255.0));
    return (scaled - mean) / std;
}

NVP_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
#endif
}

// float32 -> IEEE half bits, round to nearest even (numpy's astype(float16), including subnormals and inf).
NVP_HD uint16_t half_bits(float f) {
    uint32_t x = float_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));  // inf, NaN
    if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // 65520 and above round to inf
    if (ax >= 0x38800000u) {  // a normal half: drop 13 mantissa bits with round-half-even (carries are fine)
        uint32_t rounded = ax + 0xfffu + ((ax >> 13) & 1u) - (112u << 23);
        return uint16_t(sign | (rounded >> 13));
    }
    int shift = 126 - int(ax >> 23);  // a subnormal half counts units of 2^-24
    if (shift > 24) return uint16_t(sign);
    uint32_t mantissa = (ax & 0x7fffffu) | 0x800000u;
    uint32_t q = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
}

// Where sample (y, x, channel) of a stage's resized image lands in the planar tile batch [T, 3, S, S]:
// tile (y / S, x / S) row-major after the stage's first tile.
NVP_HD int64_t tile_offset(int y, int x, int channel, int tile, int cols, int64_t first_tile) {
    int64_t t = first_tile + int64_t(y / tile) * cols + x / tile;
    return ((t * 3 + channel) * tile + y % tile) * int64_t(tile) + x % tile;
}

}  // namespace nvila_preprocess
