// The CUDA executor: the same plan and the same per-pixel functions (pixel.h), written into device memory
// that the TensorRT backend binds as the vision engine's input.
#pragma once

#include <vector>

#include "nvila_preprocess/preprocess.h"

namespace nvila_preprocess {

// GPUs the CUDA runtime can use here (0 without a GPU or driver).
int cuda_device_count();

// `device_out` holds plan_tiles(stages) * 3 * tile * tile elements of `type`; `stream` is a cudaStream_t
// (0 = the default stream). Returns after the stream has finished the work; throws std::runtime_error.
void tile_image_cuda(const Image& image, const std::vector<Stage>& stages, int tile, const Normalization& norm,
                     OutputType type, void* device_out, void* stream);

}  // namespace nvila_preprocess
