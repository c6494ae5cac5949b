// The CPU executor: per stage a horizontal pass (rows in strips of kStrip, transposed so the taps of one
// output column are contiguous for every row of the strip and the inner loop vectorises), then a vertical
// pass fused with normalisation and the cut into planar tiles. Rows are split across threads; every
// sum is exact integer arithmetic, so neither the loop order nor the threading changes a bit.
#include <algorithm>
#include <thread>
#include <vector>

#include "nvila_preprocess/pixel.h"
#include "nvila_preprocess/preprocess.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NVP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NVP_CLONES
#endif

namespace nvila_preprocess {
namespace {

constexpr int kStrip = 16;                // rows transposed together in the horizontal pass
constexpr int64_t kWorkPerThread = 1 << 16;  // below this many output samples a second thread costs more

template <class Body>
void parallel_rows(int rows, int64_t samples_per_row, int threads, Body body) {
    int64_t useful = std::max<int64_t>(1, int64_t(rows) * samples_per_row / kWorkPerThread);
    int n = int(std::min<int64_t>({int64_t(threads), useful, int64_t(rows)}));
    if (n <= 1) {
        body(0, rows);
        return;
    }
    std::vector<std::thread> workers;
    for (int i = 0; i < n - 1; ++i) workers.emplace_back(body, rows * i / n, rows * (i + 1) / n);
    body(rows * (n - 1) / n, rows);
    for (std::thread& w : workers) w.join();
}

NVP_CLONES
void horizontal_rows(const Image& image, const AxisWeights& axis, int out_width, uint8_t* dst, int begin, int end) {
    std::vector<uint8_t> strip(size_t(image.width) * kStrip * 3, 0);
    int32_t acc[kStrip * 3];
    for (int y0 = begin; y0 < end; y0 += kStrip) {
        int n = std::min(kStrip, end - y0);
        for (int r = 0; r < n; ++r) {
            const uint8_t* row = image.pixels + (y0 + r) * image.row_stride;
            for (int x = 0; x < image.width; ++x)
                for (int c = 0; c < 3; ++c) strip[(size_t(x) * kStrip + r) * 3 + c] = row[x * 3 + c];
        }
        for (int ox = 0; ox < out_width; ++ox) {
            const int32_t* w = &axis.weights[size_t(ox) * axis.taps];
            const uint8_t* src = &strip[size_t(axis.first[ox]) * kStrip * 3];
            for (int i = 0; i < kStrip * 3; ++i) acc[i] = kRoundingHalf;
            for (int k = 0; k < axis.count[ox]; ++k, src += kStrip * 3)
                for (int i = 0; i < kStrip * 3; ++i) acc[i] += int32_t(src[i]) * w[k];
            for (int r = 0; r < n; ++r)
                for (int c = 0; c < 3; ++c)
                    dst[(size_t(y0 + r) * out_width + ox) * 3 + c] = clip_shifted(acc[r * 3 + c]);
        }
    }
}

template <class T>
struct Lookup {
    T value[3][256];
};

template <class T>
void write_row(const uint8_t* line, int y, int tile, int cols, int64_t first_tile, const Lookup<T>& lut,
               T* out) {
    for (int tc = 0; tc < cols; ++tc) {
        for (int c = 0; c < 3; ++c) {
            T* dst = out + tile_offset(y, tc * tile, c, tile, cols, first_tile);
            const uint8_t* src = line + size_t(tc) * tile * 3 + c;
            const T* table = lut.value[c];
            for (int x = 0; x < tile; ++x) dst[x] = table[src[x * 3]];
        }
    }
}

NVP_CLONES
void vertical_line(const uint8_t* src, std::ptrdiff_t stride, const AxisWeights& axis, int oy, int samples,
                   int32_t* acc, uint8_t* line) {
    const int32_t* w = &axis.weights[size_t(oy) * axis.taps];
    const uint8_t* row = src + axis.first[oy] * stride;
    for (int i = 0; i < samples; ++i) acc[i] = kRoundingHalf;
    for (int k = 0; k < axis.count[oy]; ++k, row += stride)
        for (int i = 0; i < samples; ++i) acc[i] += int32_t(row[i]) * w[k];
    for (int i = 0; i < samples; ++i) line[i] = clip_shifted(acc[i]);
}

template <class T>
void run_stage(const Image& image, const Stage& stage, int tile, int64_t first_tile, const Lookup<T>& lut, T* out,
               int threads) {
    int width = stage.cols * tile, height = stage.rows * tile;
    const uint8_t* src = image.pixels;
    std::ptrdiff_t stride = image.row_stride;
    std::vector<uint8_t> resized;
    if (width != image.width) {
        AxisWeights axis = axis_weights(image.width, width);
        resized.resize(size_t(image.height) * width * 3);
        parallel_rows(image.height, int64_t(width) * axis.taps, threads, [&](int begin, int end) {
            horizontal_rows(image, axis, width, resized.data(), begin, end);
        });
        src = resized.data();
        stride = std::ptrdiff_t(width) * 3;
    }
    bool same_height = height == image.height;
    AxisWeights axis = same_height ? AxisWeights{} : axis_weights(image.height, height);
    parallel_rows(height, int64_t(width) * (same_height ? 1 : axis.taps), threads, [&](int begin, int end) {
        std::vector<int32_t> acc(size_t(width) * 3);
        std::vector<uint8_t> line(size_t(width) * 3);
        for (int y = begin; y < end; ++y) {
            const uint8_t* row = src + y * stride;
            if (!same_height) {
                vertical_line(src, stride, axis, y, width * 3, acc.data(), line.data());
                row = line.data();
            }
            write_row(row, y, tile, stage.cols, first_tile, lut, out);
        }
    });
}

template <class T>
void run_plan(const Image& image, const std::vector<Stage>& stages, int tile, const Lookup<T>& lut, T* out,
              int threads) {
    int64_t first_tile = 0;
    for (const Stage& stage : stages) {
        run_stage(image, stage, tile, first_tile, lut, out, threads);
        first_tile += int64_t(stage.cols) * stage.rows;
    }
}

}  // namespace

void tile_image_cpu(const Image& image, const std::vector<Stage>& stages, int tile, const Normalization& norm,
                    OutputType type, void* out, int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    if (type == OutputType::float32) {
        Lookup<float> lut;
        for (int c = 0; c < 3; ++c)
            for (int v = 0; v < 256; ++v) lut.value[c][v] = normalized(uint8_t(v), norm.mean[c], norm.std[c]);
        run_plan(image, stages, tile, lut, static_cast<float*>(out), threads);
    } else {
        Lookup<uint16_t> lut;
        for (int c = 0; c < 3; ++c)
            for (int v = 0; v < 256; ++v)
                lut.value[c][v] = half_bits(normalized(uint8_t(v), norm.mean[c], norm.std[c]));
        run_plan(image, stages, tile, lut, static_cast<uint16_t*>(out), threads);
    }
}

}  // namespace nvila_preprocess
