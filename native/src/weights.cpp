// Pillow's bicubic coefficients (a = -0.5, support widened by the downscale factor for antialiasing),
// normalised per output sample and stored as 22-bit fixed point. The double arithmetic follows Pillow's
// operation order; the build turns off floating-point contraction so no FMA changes a rounding.
#include <algorithm>
#include <cmath>

#include "nvila_preprocess/pixel.h"
#include "nvila_preprocess/preprocess.h"

namespace nvila_preprocess {
namespace {

constexpr double kCubicA = -0.5;
constexpr double kCubicSupport = 2.0;

double cubic(double x) {
    x = std::fabs(x);
    if (x < 1.0) return ((kCubicA + 2.0) * x - (kCubicA + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * kCubicA;
    return 0.0;
}

}  // namespace

AxisWeights axis_weights(int in_size, int out_size) {
    AxisWeights axis;
    double scale = double(in_size) / out_size;
    double filter_scale = std::max(scale, 1.0);
    double support = kCubicSupport * filter_scale;
    axis.first.resize(out_size);
    axis.count.resize(out_size);
    for (int i = 0; i < out_size; ++i) {
        double center = (i + 0.5) * scale;
        int first = std::max(int(center - support + 0.5), 0);
        int last = std::min(int(center + support + 0.5), in_size);
        axis.first[i] = first;
        axis.count[i] = last - first;
        axis.taps = std::max(axis.taps, last - first);
    }
    axis.weights.assign(size_t(out_size) * axis.taps, 0);
    std::vector<double> kernel(axis.taps);
    for (int i = 0; i < out_size; ++i) {
        double center = (i + 0.5) * scale;
        double total = 0.0;
        for (int k = 0; k < axis.count[i]; ++k) {
            kernel[k] = cubic((k + axis.first[i] - center + 0.5) * (1.0 / filter_scale));
            total += kernel[k];
        }
        for (int k = 0; k < axis.count[i]; ++k) {
            double w = total != 0.0 ? kernel[k] / total : kernel[k];
            double fixed = w * (1 << kPrecisionBits);
            axis.weights[size_t(i) * axis.taps + k] = int32_t(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
        }
    }
    return axis;
}

int64_t plan_tiles(const std::vector<Stage>& stages) {
    int64_t tiles = 0;
    for (const Stage& s : stages) tiles += int64_t(s.cols) * s.rows;
    return tiles;
}

}  // namespace nvila_preprocess
