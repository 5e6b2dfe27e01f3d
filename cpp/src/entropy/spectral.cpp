// Spectral and SVD entropy: an FFT for any length (radix 2, Bluestein
// otherwise) and a one-sided Jacobi SVD, so no LAPACK or FFTW is needed.
#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

#include "autolien/entropy/entropy.hpp"

namespace autolien::entropy {

namespace {

using cd = std::complex<double>;
constexpr double nan = std::numeric_limits<double>::quiet_NaN();

void fft_pow2(std::vector<cd>& a, bool inverse) {
    const std::size_t n = a.size();
    for (std::size_t i = 1, j = 0; i < n; ++i) {
        std::size_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j)
            std::swap(a[i], a[j]);
    }
    // Twiddles from cos/sin of each angle, not a recurrence, for accuracy.
    std::vector<cd> w(n / 2);
    const double sign = inverse ? 1.0 : -1.0;
    for (std::size_t k = 0; k < n / 2; ++k) {
        const double ang = sign * 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
        w[k] = {std::cos(ang), std::sin(ang)};
    }
    for (std::size_t len = 2; len <= n; len <<= 1) {
        const std::size_t stride = n / len;
        for (std::size_t i = 0; i < n; i += len)
            for (std::size_t j = 0; j < len / 2; ++j) {
                const cd u = a[i + j];
                const cd v = a[i + j + len / 2] * w[j * stride];
                a[i + j] = u + v;
                a[i + j + len / 2] = u - v;
            }
    }
}

// |X_k|^2 for k = 0..n/2 of a real sequence.
std::vector<double> power(const std::vector<double>& x) {
    const std::size_t n = x.size();
    std::vector<cd> X;
    if ((n & (n - 1)) == 0) {
        X.assign(x.begin(), x.end());
        fft_pow2(X, false);
    } else { // Bluestein: the DFT as a convolution with a chirp
        std::size_t M = 1;
        while (M < 2 * n - 1)
            M <<= 1;
        std::vector<cd> chirp(n);
        for (std::size_t k = 0; k < n; ++k) {
            const auto k2 = static_cast<double>((static_cast<unsigned long long>(k) * k) % (2 * n));
            const double ang = -std::numbers::pi * k2 / static_cast<double>(n);
            chirp[k] = {std::cos(ang), std::sin(ang)};
        }
        std::vector<cd> a(M), b(M);
        for (std::size_t k = 0; k < n; ++k)
            a[k] = x[k] * chirp[k];
        b[0] = std::conj(chirp[0]);
        for (std::size_t k = 1; k < n; ++k)
            b[k] = b[M - k] = std::conj(chirp[k]);
        fft_pow2(a, false);
        fft_pow2(b, false);
        for (std::size_t k = 0; k < M; ++k)
            a[k] *= b[k];
        fft_pow2(a, true);
        X.resize(n);
        for (std::size_t k = 0; k < n; ++k)
            X[k] = a[k] * chirp[k] / static_cast<double>(M);
    }
    std::vector<double> p(n / 2 + 1);
    for (std::size_t k = 0; k < p.size(); ++k)
        p[k] = std::norm(X[k]);
    return p;
}

// scipy's one-sided density doubles every bin but DC and (even n) Nyquist;
// the constant scale cancels in the entropy.
void one_sided(std::vector<double>& p, std::size_t n) {
    const std::size_t end = (n % 2 == 0) ? p.size() - 1 : p.size();
    for (std::size_t k = 1; k < end; ++k)
        p[k] *= 2;
}

// Shannon entropy in bits of non-negative weights (a PSD, singular values),
// normalised by log2 of their count when asked.
double bits_of_weights(const std::vector<double>& p, bool normalize) {
    long double total = 0;
    for (double v : p)
        total += v;
    if (!(total > 0))
        return nan;
    double h = 0;
    for (double v : p) {
        const double q = v / static_cast<double>(total);
        if (q > 0)
            h -= q * std::log2(q);
    }
    if (normalize)
        h /= std::log2(static_cast<double>(p.size()));
    return h;
}

std::vector<double> demeaned(const double* x, std::size_t n) {
    long double s = 0;
    for (std::size_t i = 0; i < n; ++i)
        s += x[i];
    const double mean = static_cast<double>(s / static_cast<long double>(n));
    std::vector<double> out(x, x + n);
    for (auto& v : out)
        v -= mean;
    return out;
}

} // namespace

double spectral_entropy(std::span<const double> x, Spectral method, std::size_t nperseg, bool normalize) {
    const std::size_t n = x.size();
    if (n < 2)
        throw std::invalid_argument("spectral entropy needs at least 2 samples");
    for (double v : x)
        if (std::isnan(v))
            return nan;
    if (method == Spectral::fft) {
        auto p = power(demeaned(x.data(), n));
        one_sided(p, n);
        return bits_of_weights(p, normalize);
    }
    std::size_t seg = nperseg ? nperseg : 256;
    seg = std::min(seg, n);
    if (seg < 2)
        throw std::invalid_argument("nperseg must be >= 2");
    const std::size_t overlap = seg / 2;
    const std::size_t step = seg - overlap;
    const std::size_t nseg = (n - overlap) / step;
    std::vector<double> win(seg); // periodic Hann, as scipy.signal.get_window('hann')
    for (std::size_t k = 0; k < seg; ++k)
        win[k] =
            0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(seg));
    std::vector<double> acc(seg / 2 + 1, 0.0);
    for (std::size_t s = 0; s < nseg; ++s) {
        auto y = demeaned(x.data() + s * step, seg);
        for (std::size_t k = 0; k < seg; ++k)
            y[k] *= win[k];
        const auto p = power(y);
        for (std::size_t k = 0; k < acc.size(); ++k)
            acc[k] += p[k];
    }
    one_sided(acc, seg);
    return bits_of_weights(acc, normalize);
}

double svd_entropy(std::span<const double> x, int order, int delay, bool normalize) {
    if (order < 2 || order > 64)
        throw std::invalid_argument("order must be in 2..64, got " + std::to_string(order));
    if (delay < 1)
        throw std::invalid_argument("delay must be >= 1, got " + std::to_string(delay));
    const auto m = static_cast<std::size_t>(order);
    const std::size_t span = (m - 1) * static_cast<std::size_t>(delay);
    if (x.size() <= span)
        return nan;
    for (double v : x)
        if (std::isnan(v))
            return nan;
    const std::size_t rows = x.size() - span;
    // Column j of the embedding is x shifted by j*delay.
    std::vector<double> a(rows * m);
    for (std::size_t j = 0; j < m; ++j)
        std::copy_n(x.data() + j * static_cast<std::size_t>(delay), rows, a.data() + j * rows);
    // One-sided Jacobi (Hestenes): rotate column pairs until all are
    // orthogonal; the singular values are then the column norms. It keeps the
    // small singular values as accurate as LAPACK's, unlike the Gram matrix.
    auto col = [&](std::size_t j) { return a.data() + j * rows; };
    for (int sweep = 0; sweep < 60; ++sweep) {
        bool rotated = false;
        for (std::size_t j = 0; j + 1 < m; ++j)
            for (std::size_t k = j + 1; k < m; ++k) {
                double al = 0, be = 0, ga = 0;
                const double* u = col(j);
                const double* v = col(k);
                for (std::size_t i = 0; i < rows; ++i) {
                    al += u[i] * u[i];
                    be += v[i] * v[i];
                    ga += u[i] * v[i];
                }
                if (std::fabs(ga) <= 1e-15 * std::sqrt(al * be) || ga == 0)
                    continue;
                rotated = true;
                const double zeta = (be - al) / (2 * ga);
                const double t = std::copysign(1.0, zeta) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
                const double c = 1 / std::sqrt(1 + t * t);
                const double s = c * t;
                double* uu = col(j);
                double* vv = col(k);
                for (std::size_t i = 0; i < rows; ++i) {
                    const double p = uu[i];
                    const double q = vv[i];
                    uu[i] = c * p - s * q;
                    vv[i] = s * p + c * q;
                }
            }
        if (!rotated)
            break;
    }
    std::vector<double> sv(m);
    for (std::size_t j = 0; j < m; ++j) {
        long double q = 0;
        for (std::size_t i = 0; i < rows; ++i)
            q += static_cast<long double>(col(j)[i]) * col(j)[i];
        sv[j] = static_cast<double>(std::sqrt(q));
    }
    return bits_of_weights(sv, normalize);
}

} // namespace autolien::entropy
