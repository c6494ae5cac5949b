// Frame -> normalised planar ViT tiles. A plan (which stages, computed by the Python side from the model's
// image mode) is executed here: every stage squash-resizes the whole image with Pillow's fixed-point
// bicubic (horizontal pass, then vertical) to cols x rows tiles, then normalises and cuts the tiles
// straight into the caller's [T, 3, S, S] buffer as float32 or float16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nvila_preprocess {

struct Image {
    const uint8_t* pixels;  // RGB interleaved
    int height;
    int width;
    std::ptrdiff_t row_stride;  // bytes
};

struct Stage {
    int cols;
    int rows;
};

struct Normalization {
    float mean[3];
    float std[3];
};

enum class OutputType { float32, float16 };

// One axis resampled in_size -> out_size: per output sample its first input index, its tap count and
// `taps` fixed-point weights (zero-padded), exactly as Pillow computes them.
struct AxisWeights {
    int taps = 0;
    std::vector<int32_t> first;
    std::vector<int32_t> count;
    std::vector<int32_t> weights;  // [out_size, taps]
};

AxisWeights axis_weights(int in_size, int out_size);

int64_t plan_tiles(const std::vector<Stage>& stages);

// CPU: `threads` <= 0 uses every core. `out` holds plan_tiles(stages) * 3 * tile * tile elements.
void tile_image_cpu(const Image& image, const std::vector<Stage>& stages, int tile, const Normalization& norm,
                    OutputType type, void* out, int threads);

}  // namespace nvila_preprocess
