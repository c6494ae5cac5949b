// CUDA kernels: one thread per output sample. The horizontal pass writes a uint8 intermediate (Pillow rounds
// between passes); the vertical pass normalises and stores straight into the planar tile batch.
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

#include "nvila_preprocess/cuda.h"
#include "nvila_preprocess/pixel.h"

namespace nvila_preprocess {
namespace {

constexpr int kBlock = 256;

void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + " failed: " + cudaGetErrorString(err));
}

// Grow-only device memory reused across calls (frames of one stream have the same size).
struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
    void* reserve(size_t n) {
        if (n > bytes) {
            if (ptr) check(cudaFree(ptr), "cudaFree");
            check(cudaMalloc(&ptr, n), "cudaMalloc");
            bytes = n;
        }
        return ptr;
    }
};

struct DeviceAxis {
    const int32_t* first;
    const int32_t* count;
    const int32_t* weights;
    int taps;  // 0: this axis keeps its size
};

__global__ void horizontal_pass(const uint8_t* src, int64_t samples, int in_width, int out_width, DeviceAxis axis,
                                uint8_t* dst) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= samples) return;
    int c = int(i % 3);
    int x = int((i / 3) % out_width);
    int64_t y = i / (3 * int64_t(out_width));
    const uint8_t* first = src + (y * in_width + axis.first[x]) * 3 + c;
    dst[i] = resample_tap_sum(first, 3, axis.weights + int64_t(x) * axis.taps, axis.count[x]);
}

NVP_HD float store_as(float value, float*) { return value; }
NVP_HD uint16_t store_as(float value, uint16_t*) { return half_bits(value); }

template <class T>
__global__ void vertical_pass_to_tiles(const uint8_t* src, int64_t samples, int width, DeviceAxis axis,
                                       Normalization norm, int tile, int cols, int64_t first_tile, T* out) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= samples) return;
    int c = int(i % 3);
    int x = int((i / 3) % width);
    int y = int(i / (3 * int64_t(width)));
    uint8_t value = axis.taps == 0
        ? src[i]
        : resample_tap_sum(src + (int64_t(axis.first[y]) * width + x) * 3 + c, width * 3,
                           axis.weights + int64_t(y) * axis.taps, axis.count[y]);
    out[tile_offset(y, x, c, tile, cols, first_tile)] = store_as(normalized(value, norm.mean[c], norm.std[c]), out);
}

unsigned blocks(int64_t samples) { return unsigned((samples + kBlock - 1) / kBlock); }

class Executor {
  public:
    void run(const Image& image, const std::vector<Stage>& stages, int tile, const Normalization& norm,
             OutputType type, void* out, cudaStream_t stream) {
        std::lock_guard<std::mutex> lock(mutex_);
        size_t row = size_t(image.width) * 3;
        auto* pixels = static_cast<uint8_t*>(input_.reserve(row * image.height));
        check(cudaMemcpy2DAsync(pixels, row, image.pixels, image.row_stride, row, image.height,
                                cudaMemcpyHostToDevice, stream), "upload");
        int64_t first_tile = 0;
        for (const Stage& stage : stages) {
            int width = stage.cols * tile, height = stage.rows * tile;
            const uint8_t* src = pixels;
            if (width != image.width) {
                AxisWeights h = axis_weights(image.width, width);
                int64_t samples = int64_t(image.height) * width * 3;
                auto* dst = static_cast<uint8_t*>(resized_.reserve(size_t(samples)));
                horizontal_pass<<<blocks(samples), kBlock, 0, stream>>>(pixels, samples, image.width, width,
                                                                         upload(h, horizontal_, stream), dst);
                src = dst;
            }
            DeviceAxis v{nullptr, nullptr, nullptr, 0};
            AxisWeights vertical;
            if (height != image.height) {
                vertical = axis_weights(image.height, height);
                v = upload(vertical, vertical_, stream);
            }
            int64_t samples = int64_t(height) * width * 3;
            if (type == OutputType::float32)
                vertical_pass_to_tiles<<<blocks(samples), kBlock, 0, stream>>>(
                    src, samples, width, v, norm, tile, stage.cols, first_tile, static_cast<float*>(out));
            else
                vertical_pass_to_tiles<<<blocks(samples), kBlock, 0, stream>>>(
                    src, samples, width, v, norm, tile, stage.cols, first_tile, static_cast<uint16_t*>(out));
            check(cudaGetLastError(), "kernel launch");
            // The weights' host copies and the scratch buffers are reused by the next stage.
            check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
            first_tile += int64_t(stage.cols) * stage.rows;
        }
    }

  private:
    static DeviceAxis upload(const AxisWeights& axis, Scratch& scratch, cudaStream_t stream) {
        size_t n = axis.first.size();
        auto* base = static_cast<int32_t*>(scratch.reserve((2 * n + axis.weights.size()) * sizeof(int32_t)));
        check(cudaMemcpyAsync(base, axis.first.data(), n * 4, cudaMemcpyHostToDevice, stream), "upload");
        check(cudaMemcpyAsync(base + n, axis.count.data(), n * 4, cudaMemcpyHostToDevice, stream), "upload");
        check(cudaMemcpyAsync(base + 2 * n, axis.weights.data(), axis.weights.size() * 4, cudaMemcpyHostToDevice,
                              stream), "upload");
        return DeviceAxis{base, base + n, base + 2 * n, axis.taps};
    }

    std::mutex mutex_;
    Scratch input_, resized_, horizontal_, vertical_;
};

}  // namespace

int cuda_device_count() {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

void tile_image_cuda(const Image& image, const std::vector<Stage>& stages, int tile, const Normalization& norm,
                     OutputType type, void* device_out, void* stream) {
    static Executor executor;
    executor.run(image, stages, tile, norm, type, device_out, static_cast<cudaStream_t>(stream));
}

}  // namespace nvila_preprocess
