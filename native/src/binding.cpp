// Python module nvila_edge.runtime._preprocess: executes a tile plan into a caller-owned numpy buffer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "nvila_preprocess/preprocess.h"
#ifdef NVILA_PREPROCESS_CUDA
#include "nvila_preprocess/cuda.h"
#endif

namespace py = pybind11;
using namespace nvila_preprocess;

namespace {

Image image_view(const py::array& rgb) {
    if (!py::isinstance<py::array_t<uint8_t>>(rgb) || rgb.ndim() != 3 || rgb.shape(2) != 3 || rgb.strides(2) != 1 ||
        rgb.strides(1) != 3 || rgb.shape(0) < 1 || rgb.shape(1) < 1)
        throw py::value_error("expected an RGB uint8 [H, W, 3] image with interleaved pixels");
    return Image{static_cast<const uint8_t*>(rgb.data()), int(rgb.shape(0)), int(rgb.shape(1)), rgb.strides(0)};
}

std::vector<Stage> stage_list(const std::vector<std::pair<int, int>>& stages, int tile) {
    if (tile < 1) throw py::value_error("tile size must be positive");
    std::vector<Stage> out;
    for (const auto& [cols, rows] : stages) {
        if (cols < 1 || rows < 1) throw py::value_error("every stage needs at least one tile column and row");
        out.push_back(Stage{cols, rows});
    }
    return out;
}

Normalization normalization(const std::array<float, 3>& mean, const std::array<float, 3>& std) {
    Normalization n{};
    for (int c = 0; c < 3; ++c) n.mean[c] = mean[c], n.std[c] = std[c];
    return n;
}

OutputType output_type(const py::array& out, int64_t tiles, int tile) {
    OutputType type;
    if (py::isinstance<py::array_t<float>>(out) && out.dtype().itemsize() == 4)
        type = OutputType::float32;
    else if (out.dtype().kind() == 'f' && out.dtype().itemsize() == 2)
        type = OutputType::float16;
    else
        throw py::value_error("the output buffer must be float32 or float16");
    std::vector<py::ssize_t> want{py::ssize_t(tiles), 3, tile, tile};
    if (out.ndim() != 4 || !(out.flags() & py::array::c_style) || !out.writeable() ||
        std::vector<py::ssize_t>(out.shape(), out.shape() + 4) != want)
        throw py::value_error("the output buffer must be a writable C-contiguous [" + std::to_string(tiles) + ", 3, " +
                              std::to_string(tile) + ", " + std::to_string(tile) + "] array");
    return type;
}

void tile_into(const py::array& rgb, const std::vector<std::pair<int, int>>& stages, int tile,
               const std::array<float, 3>& mean, const std::array<float, 3>& std, py::array out, int threads) {
    Image image = image_view(rgb);
    std::vector<Stage> plan = stage_list(stages, tile);
    OutputType type = output_type(out, plan_tiles(plan), tile);
    Normalization norm = normalization(mean, std);
    void* data = out.mutable_data();
    py::gil_scoped_release unlocked;
    tile_image_cpu(image, plan, tile, norm, type, data, threads);
}

#ifdef NVILA_PREPROCESS_CUDA
void tile_into_device(const py::array& rgb, const std::vector<std::pair<int, int>>& stages, int tile,
                      const std::array<float, 3>& mean, const std::array<float, 3>& std, uintptr_t device_out,
                      bool half, uintptr_t stream) {
    Image image = image_view(rgb);
    std::vector<Stage> plan = stage_list(stages, tile);
    Normalization norm = normalization(mean, std);
    py::gil_scoped_release unlocked;
    tile_image_cuda(image, plan, tile, norm, half ? OutputType::float16 : OutputType::float32,
                    reinterpret_cast<void*>(device_out), reinterpret_cast<void*>(stream));
}
#endif

}  // namespace

PYBIND11_MODULE(_preprocess, m) {
    m.doc() = "Frame -> normalised planar ViT tiles (Pillow-exact bicubic), written into the caller's buffer.";
    m.def("tile_into", &tile_into, py::arg("rgb"), py::arg("stages"), py::arg("tile"), py::arg("mean"),
          py::arg("std"), py::arg("out"), py::arg("threads") = 0,
          "Execute a tile plan ([(cols, rows), ...] in ViT batch order) on the CPU into `out` [T, 3, S, S].");
#ifdef NVILA_PREPROCESS_CUDA
    m.attr("cuda") = true;
    m.def("cuda_devices", &cuda_device_count, "GPUs the kernels can run on here (0 without a GPU or driver).");
    m.def("tile_into_device", &tile_into_device, py::arg("rgb"), py::arg("stages"), py::arg("tile"), py::arg("mean"),
          py::arg("std"), py::arg("device_out"), py::arg("half"), py::arg("stream") = 0,
          "The same on the GPU, into device memory at `device_out` (synchronised on `stream` before returning).");
#else
    m.attr("cuda") = false;
#endif
}
