// Argument checks and descriptor setup shared by the CPU and CUDA registrations of the tsrnn ops.
//
// Validation and glue only: every check ends in a RuntimeError that names the op, the argument and what was
// expected. No arithmetic on tensor data happens here; the kernels (tsrnn.h) do all of it.
//
// Shape letters as in tsrnn.h: T steps, B batch, D input features, H hidden size, P LSTM projection size (0 =
// none), R width of h and y (P when P > 0, else H), G gates (4 LSTM, 3 GRU), S saved row width (6H + P LSTM, 5H GRU).
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tsrnn.h"

// Fails the argument `arg` of the op that `check` (an ArgCheck) checks unless `cond` holds. `what` (a message
// expression) is only built on failure: these checks run on every call, where string building would cost more
// than the small kernels themselves.
#define TSRNN_SHIM_CHECK(check, cond, arg, what)                                                                 \
    do {                                                                                                         \
        if (!(cond)) (check).fail((arg), (what));                                                                \
    } while (0)

namespace tsrnn_shim {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;
using torch::stable::DeviceType;

// torch-style dtype names (float32, int64) rather than c10's (Float, Long), so messages match Python.
inline const char *dtype_name(ScalarType t) {
    switch (t) {
    case ScalarType::Float: return "float32";
    case ScalarType::Double: return "float64";
    case ScalarType::Half: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
    case ScalarType::Long: return "int64";
    case ScalarType::Int: return "int32";
    case ScalarType::Short: return "int16";
    case ScalarType::Char: return "int8";
    case ScalarType::Byte: return "uint8";
    case ScalarType::Bool: return "bool";
    default: return torch::headeronly::toString(t);
    }
}

inline std::string device_name(const Tensor &t) {
    switch (t.device().type()) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return "cuda:" + std::to_string(t.get_device_index());
    case DeviceType::Meta: return "meta";
    default: return "device type " + std::to_string(static_cast<int>(t.device().type()));
    }
}

inline std::string shape_string(const Tensor &t) {
    std::ostringstream s;
    s << "(";
    for (int64_t i = 0; i < t.dim(); ++i) s << (i ? ", " : "") << t.size(i);
    s << (t.dim() == 1 ? ",)" : ")");
    return s.str();
}

inline std::string shape_string(const std::vector<int64_t> &shape) {
    std::ostringstream s;
    s << "(";
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << (shape.size() == 1 ? ",)" : ")");
    return s.str();
}

// Where a kernel runs: CPU tensors only, or every tensor on x's CUDA device.
struct Placement {
    DeviceType type;
    int32_t index; // -1 for the CPU
};

// For a CUDA registration: every tensor on x's device.
inline Placement placement_of(const Tensor &x) {
    return {x.device().type(), x.device().type() == DeviceType::CPU ? -1 : x.get_device_index()};
}

// Checks of one op call: knows the op's name, the dtype every floating tensor must share (x's) and the device.
class ArgCheck {
  public:
    ArgCheck(const char *op, const Tensor &x, Placement where) : op_(op), where_(where) {
        ScalarType t = x.scalar_type();
        TSRNN_SHIM_CHECK(*this, t == ScalarType::Float || t == ScalarType::Double, "x",
                    std::string("must be float32 or float64, but got ") + dtype_name(t));
        dtype_ = t;
        device("x", x);
    }

    ScalarType dtype() const { return dtype_; }
    tsrnn_dtype kernel_dtype() const { return dtype_ == ScalarType::Float ? TSRNN_F32 : TSRNN_F64; }

    [[noreturn]] void fail(const char *arg, const std::string &what) const {
        throw std::runtime_error(std::string(op_) + ": argument '" + arg + "' " + what);
    }

    void device(const char *arg, const Tensor &t) const {
        const bool same = t.device().type() == where_.type &&
                          (where_.type == DeviceType::CPU || t.get_device_index() == where_.index);
        if (same) return;
        if (where_.type == DeviceType::CPU)
            fail(arg, "must be a CPU tensor (this is the CPU kernel), but is on " + device_name(t));
        fail(arg, "must be on the same device as x (cuda:" + std::to_string(where_.index) + "), but is on " +
                      device_name(t));
    }

    // A floating tensor of the call: x's dtype, x's device, the given shape.
    void floating(const char *arg, const Tensor &t, const std::vector<int64_t> &shape,
                  const char *shape_letters) const {
        TSRNN_SHIM_CHECK(*this, t.scalar_type() == dtype_, arg,
                    std::string("must have the same dtype as x (") + dtype_name(dtype_) + "), but got " +
                        dtype_name(t.scalar_type()));
        device(arg, t);
        this->shape(arg, t, shape, shape_letters);
    }

    void shape(const char *arg, const Tensor &t, const std::vector<int64_t> &shape, const char *shape_letters) const {
        bool ok = t.dim() == static_cast<int64_t>(shape.size());
        for (int64_t i = 0; ok && i < t.dim(); ++i) ok = t.size(i) == shape[i];
        if (ok) return;
        std::string expected = std::string("must have shape ") + shape_letters + " = " + shape_string(shape);
        if (t.dim() != static_cast<int64_t>(shape.size()))
            fail(arg, expected + " (" + std::to_string(shape.size()) + "-D), but got a " + std::to_string(t.dim()) +
                          "-D tensor of shape " + shape_string(t));
        fail(arg, expected + ", but got " + shape_string(t));
    }

    void rank(const char *arg, const Tensor &t, int64_t dims, const char *shape_letters) const {
        TSRNN_SHIM_CHECK(*this, t.dim() == dims, arg,
                    "must be " + std::to_string(dims) + "-D " + shape_letters + ", but got a " +
                        std::to_string(t.dim()) + "-D tensor of shape " + shape_string(t));
    }

    // Turns a non-OK status of the C API into an error carrying its text.
    void status(tsrnn_status st, const char *call) const {
        if (st == TSRNN_OK) return;
        throw std::runtime_error(std::string(op_) + ": " + call + " failed: " + tsrnn_status_string(st) +
                                 " (tsrnn_status " + std::to_string(static_cast<int>(st)) + ")");
    }

    const char *op() const { return op_; }

  private:
    const char *op_;
    Placement where_;
    ScalarType dtype_ = ScalarType::Float;
};

// Sizes of one layer call, read off x, w_ih, w_hh (and w_hr) and checked against each other.
struct Sizes {
    int64_t T, B, D, H, P, R, G, S;
    bool batch_first;

    // (T, B, W) in the caller's convention: (B, T, W) when batch_first.
    std::vector<int64_t> seq(int64_t W) const {
        return batch_first ? std::vector<int64_t>{B, T, W} : std::vector<int64_t>{T, B, W};
    }
    // Letters of a sequence tensor of width D, or of width R ('R': spelled H, or P with a projection).
    std::string seq_letters(char w) const {
        const char *width = w == 'D' ? "D" : r_letter();
        return batch_first ? std::string("(B, T, ") + width + ")" : std::string("(T, B, ") + width + ")";
    }
    const char *r_letter() const { return P > 0 ? "P" : "H"; }
    // Element strides (t, b) of a sequence tensor in the caller's convention.
    int64_t stride_t(const Tensor &t) const { return t.stride(batch_first ? 1 : 0); }
    int64_t stride_b(const Tensor &t) const { return t.stride(batch_first ? 0 : 1); }
};

// w_hr is the LSTM's projection (P, H), 1 <= P < H, or absent (P = 0; always for GRU).
inline Sizes check_sizes(const ArgCheck &c, tsrnn_cell cell, const Tensor &x, const Tensor &w_ih,
                         const Tensor &w_hh, const std::optional<Tensor> &w_hr, bool batch_first) {
    Sizes s{};
    s.batch_first = batch_first;
    s.G = cell == TSRNN_CELL_LSTM ? 4 : 3;
    const char *gd = cell == TSRNN_CELL_LSTM ? "(4*H, D)" : "(3*H, D)";
    const char *gr = cell == TSRNN_CELL_LSTM ? (w_hr ? "(4*H, P)" : "(4*H, H)") : "(3*H, H)";

    c.rank("x", x, 3, batch_first ? "(B, T, D)" : "(T, B, D)");
    s.T = x.size(batch_first ? 1 : 0);
    s.B = x.size(batch_first ? 0 : 1);
    s.D = x.size(2);
    TSRNN_SHIM_CHECK(c, s.D >= 1, "x", "must have at least one feature (D >= 1), but got shape " + shape_string(x));

    // H comes from w_hh's G*H rows, R from its columns (H, or P with a projection).
    c.rank("w_hh", w_hh, 2, gr);
    s.H = w_hh.size(0) / s.G;
    TSRNN_SHIM_CHECK(c, s.H >= 1 && w_hh.size(0) % s.G == 0 && w_hh.size(1) >= 1, "w_hh",
                  std::string("must have shape ") + gr + " with H >= 1, but got " + shape_string(w_hh));
    if (w_hr.has_value()) {
        TSRNN_SHIM_CHECK(c, cell == TSRNN_CELL_LSTM, "w_hr", "must be None: only an LSTM has a projection");
        c.rank("w_hr", *w_hr, 2, "(P, H)");
        s.P = w_hr->size(0);
        TSRNN_SHIM_CHECK(c, s.P >= 1 && s.P < s.H, "w_hr",
                      "must have shape (P, H) with 1 <= P < H = " + std::to_string(s.H) + ", but got " +
                          shape_string(*w_hr));
        c.floating("w_hr", *w_hr, {s.P, s.H}, "(P, H)");
    }
    s.R = s.P > 0 ? s.P : s.H;
    c.floating("w_hh", w_hh, {s.G * s.H, s.R}, gr);

    c.rank("w_ih", w_ih, 2, gd);
    c.floating("w_ih", w_ih, {s.G * s.H, s.D}, gd);
    s.S = tsrnn_saved_row(cell, s.H, s.P);
    return s;
}

// t itself when it is contiguous already (a direct C-shim query), else a contiguous copy: the stable contiguous()
// is a dispatcher call by name even when it has nothing to do.
inline Tensor contig(const Tensor &t) { return t.is_contiguous() ? t : torch::stable::contiguous(t); }

// An optional state of W values a row: (1, B, W), one layer and direction of nn.*'s (L * dirs, B, W), as the op
// returns its states, or (B, W); checked and made contiguous; nullopt stays nullopt. proj: W is P (else H), for
// the message's letters (literals: nothing is built on a call that passes).
inline std::optional<Tensor> check_state(const ArgCheck &c, const char *arg, const std::optional<Tensor> &t,
                                         int64_t B, int64_t W, bool proj) {
    if (!t.has_value()) return std::nullopt;
    if (t->dim() == 2)
        c.floating(arg, *t, {B, W}, proj ? "(B, P)" : "(B, H)");
    else
        c.floating(arg, *t, {1, B, W}, proj ? "(1, B, P) or (B, P)" : "(1, B, H) or (B, H)");
    return contig(*t);
}

// Optional hidden state (h0, grad_h_n): (1, B, R) or (B, R).
inline std::optional<Tensor> check_hidden(const ArgCheck &c, const char *arg, const std::optional<Tensor> &t,
                                          const Sizes &s) {
    return check_state(c, arg, t, s.B, s.R, s.P > 0);
}

// Optional cell state (c0, grad_c_n): (1, B, H) or (B, H).
inline std::optional<Tensor> check_cell(const ArgCheck &c, const char *arg, const std::optional<Tensor> &t,
                                        const Sizes &s) {
    return check_state(c, arg, t, s.B, s.H, false);
}

inline std::optional<Tensor> check_bias(const ArgCheck &c, const char *arg, const std::optional<Tensor> &t,
                                        const Sizes &s) {
    if (!t.has_value()) return std::nullopt;
    c.floating(arg, *t, {s.G * s.H}, s.G == 4 ? "(4*H,)" : "(3*H,)");
    return contig(*t);
}

// lengths: int64 CPU tensor (B,) with every value in [0, T]; always a host tensor, whatever x's device.
inline std::optional<Tensor> check_lengths(const ArgCheck &c, const std::optional<Tensor> &lengths, const Sizes &s) {
    if (!lengths.has_value()) return std::nullopt;
    const Tensor &l = *lengths;
    TSRNN_SHIM_CHECK(c, l.scalar_type() == ScalarType::Long, "lengths",
                  std::string("must be an int64 tensor, but got ") + dtype_name(l.scalar_type()));
    TSRNN_SHIM_CHECK(c, l.device().type() == DeviceType::CPU, "lengths",
                  "must be a CPU tensor, but is on " + device_name(l));
    c.shape("lengths", l, {s.B}, "(B,)");
    Tensor lc = contig(l);
    const int64_t *v = lc.const_data_ptr<int64_t>();
    for (int64_t b = 0; b < s.B; ++b)
        TSRNN_SHIM_CHECK(c, 0 <= v[b] && v[b] <= s.T, "lengths",
                      "must hold values in [0, T] = [0, " + std::to_string(s.T) + "], but lengths[" +
                          std::to_string(b) + "] = " + std::to_string(v[b]));
    return lc;
}

// Element counts of the call must fit the kernels' limit (tsrnn.h: TSRNN_MAX_ELEMENTS).
// Checked before anything is copied or allocated: a huge (e.g. stride-0 expanded) input gets this message instead
// of an allocator failure whose text the stable ABI does not carry.
inline void check_counts(const ArgCheck &c, const Sizes &s) {
    const int64_t widest = std::max(s.D, std::max(s.S, s.R));
    int64_t tb = 0, n = 0;
    const bool ok = !__builtin_mul_overflow(s.T, s.B, &tb) && !__builtin_mul_overflow(tb, widest, &n) &&
                    n <= TSRNN_MAX_ELEMENTS;
    if (!ok)
        c.fail("x", "is too large: T*B*max(D, S) = " + std::to_string(s.T) + "*" + std::to_string(s.B) + "*" +
                        std::to_string(widest) + " elements overflow the kernels' int64 element counts");
}

// A sequence input (x, grad_y) whose (t, b) strides can be handed to the kernel as they are: last dimension
// contiguous and rows nested as tsrnn.h wants output rows (grad_y shares y's strides in the desc). Otherwise a
// contiguous copy.
inline Tensor seq_input(const Tensor &t, const Sizes &s) {
    const int64_t W = t.size(2);
    const bool inner_ok = W == 1 || t.stride(2) == 1;
    if (inner_ok && tsrnn_rows_nested(s.T, s.B, W, s.stride_t(t), s.stride_b(t))) return t;
    return torch::stable::contiguous(t);
}

// Element strides (t, b) of a sequence tensor, as the desc takes them.
struct SeqStrides {
    int64_t t, b;
};

inline SeqStrides strides_of(const Tensor &t, const Sizes &s) { return {s.stride_t(t), s.stride_b(t)}; }

// The strides a contiguous (T, B, W) / (B, T, W) tensor would have (used when grad_y is absent).
inline SeqStrides contiguous_strides(const Sizes &s, int64_t W) {
    return s.batch_first ? SeqStrides{W, s.T * W} : SeqStrides{s.B * W, W};
}

// lengths is host memory for every backend (tsrnn.h; the CUDA functions copy it to the device themselves):
// the CPU tensor's data, or nullptr when every sequence has length T. num_threads (1 here) and stream are the
// device registration's to fill in.
inline tsrnn_desc make_desc(const Sizes &s, SeqStrides x_strides, SeqStrides y_strides, const int64_t *lengths,
                            bool reverse, int reset_after) {
    tsrnn_desc d{};
    d.T = s.T;
    d.B = s.B;
    d.D = s.D;
    d.H = s.H;
    d.P = s.P;
    d.x_stride_t = x_strides.t;
    d.x_stride_b = x_strides.b;
    d.y_stride_t = y_strides.t;
    d.y_stride_b = y_strides.b;
    d.lengths = lengths;
    d.reverse = reverse ? 1 : 0;
    d.reset_after = reset_after;
    d.num_threads = 1;
    return d;
}

template <class real> inline const real *ptr(const std::optional<Tensor> &t) {
    return t.has_value() ? t->const_data_ptr<real>() : nullptr;
}

} // namespace tsrnn_shim
