// libFuzzer target for the public C API (kernels/include/tsrnn.h). Built by `make fuzz-smoke` / `make fuzz`
// (clang, -fsanitize=fuzzer,address,undefined; see cmake/sanitize.cmake).
//
// Each input is decoded (decode() below) into one call: cell, pass, dtype, small shapes T, B <= 16, D, H <= 33
// (or edge values: negative, 2^31, 2^61, INT64_MAX, ...), the LSTM projection P (0 .. H-1, or invalid), strides
// of x and y (time-major, batch-first, padded, half of a bidirectional buffer, broadcast, or raw values:
// negative, overlapping, huge), reverse / reset_after (0, 1, or invalid), lengths (valid or not), num_threads
// (1 .. 3 or edge values), the caller's pool (none, or serial in or against index order), which optional
// pointers are NULL, one required pointer made NULL (or w_hr / grad_w_hr passed where they must not be), the
// workspace (exact, short, misaligned, NULL), NaN in inputs.
//
// Every buffer is a separate malloc of exactly the bytes the call may touch (the strided extent for x / y), so
// ASan reports any access outside it; positions of x and grad_y that the call must not read (gaps between rows,
// grad_y rows past a sequence's length) hold NaN. The reference and the CPU kernels get identical inputs and
// tsrnn_workspace_size's exact size each, then:
//   - the status of each is what tsrnn.h documents for the arguments (an oracle written from tsrnn.h, verdict()):
//     TSRNN_OK exactly for valid calls, and otherwise one of the statuses of the rules the call breaks
//   - with num_threads >= 1 both return the same status (the CPU kernels accept what the reference accepts)
//   - both accepted: every output matches within a tolerance (f64 tight, f32 loose; NaN matches NaN only),
//     positions of y / grad_x outside every row still hold the sentinel written before the call, rows past a
//     sequence's length are zero; the CPU kernels with num_threads > 1 equal a 1-thread call bit for bit
//   - no input buffer (nor the desc, nor lengths) changes, whatever the status
// A violated check prints what differs and aborts, which libFuzzer reports as a crash with the input saved.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "tsrnn.h"

namespace {

using i128 = __int128;

constexpr int64_t kMaxElems = TSRNN_MAX_ELEMENTS;    // tsrnn.h: element counts whose f64 bytes fit int64
constexpr int64_t kCapElems = int64_t(1) << 21;      // buffers this harness allocates, in elements, each
constexpr double kCapWork = double(int64_t(1) << 23); // T*B*G*H*(D+H): calls larger than this are not made
constexpr size_t kCapWorkspace = size_t(1) << 28;     // a larger workspace is only asked for by calls not made
constexpr double kSentinel = -1234.5;

struct Spec;
void describe(const Spec &s, FILE *f);
const Spec *g_current = nullptr; // the input being run, printed by fail()

[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fputs("tsrnn fuzz: CHECK FAILED: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
    if (g_current) describe(*g_current, stderr);
    std::abort();
}

uint32_t bit(tsrnn_status s) { return 1u << unsigned(s); }

// ---- decoding ------------------------------------------------------------------------------------------

// Pools that run a phase's pieces one after another on the calling thread (tsrnn.h allows any order).
int serial_pool(void *, int count, tsrnn_task task, void *ctx) {
    for (int i = 0; i < count; ++i) task(ctx, i, count);
    return 0;
}
int reverse_pool(void *, int count, tsrnn_task task, void *ctx) {
    for (int i = count - 1; i >= 0; --i) task(ctx, i, count);
    return 0;
}

struct Reader {
    const uint8_t *p;
    size_t n;
    uint8_t u8() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(u8()) << (8 * i);
        return v;
    }
};

// Edge values of a size, a stride or a length: out of range, or products that overflow int64.
constexpr int64_t kEdge[16] = {-1,
                               -2,
                               INT64_MIN,
                               INT64_MAX,
                               int64_t(1) << 31,
                               int64_t(1) << 32,
                               int64_t(1) << 40,
                               int64_t(1) << 61,
                               kMaxElems,
                               kMaxElems + 1,
                               3037000500, // about sqrt(2^63)
                               int64_t(1) << 20,
                               100,
                               64,
                               257,
                               0};
constexpr int kFlagEdge[8] = {0, 1, 2, -1, INT32_MIN, INT32_MAX, 3, 1};
constexpr int kThreadEdge[8] = {0, -1, INT32_MIN, 4, 7, 64, 300, INT32_MAX};

enum XLayout { XTime, XBatch, XPadTime, XPadBatch, XBcastT, XBcastB, XBcastTB, XRaw };
enum YLayout { YTime, YBatch, YBidir, YPadBatch, YOverlap, YRaw, YTime2, YTime3 };

// Optional pointers: bit i of Spec::null_mask set = passed as NULL.
enum Opt {
    kH0, kC0, kBih, kBhh, kSaved, kGradY, kGradHn, kGradCn, kGradX, kGradH0, kGradC0, kGradWih, kGradWhh,
    kGradBih, kGradBhh, kGradWhr
};
// Required pointers (or pointers that must be NULL) broken on purpose: Spec::broken.
enum Broken { kNone = -1, kDesc, kX, kWih, kWhh, kYOrSaved, kHn, kCn, kWhr, kGradWhrGiven, kBrokenCount };
// Workspace passed: Spec::ws_mode.
enum WsMode { WsExact, WsLarger, WsShort, WsMisaligned8, WsMisaligned4, WsNull, WsNullZero, WsZero };

struct Spec {
    tsrnn_cell cell = TSRNN_CELL_LSTM;
    tsrnn_pass pass = TSRNN_PASS_FWD;
    tsrnn_dtype dtype = TSRNN_F32;
    tsrnn_desc desc{};
    bool use_lengths = false;
    std::vector<int64_t> lengths; // min(B, 64) values when B > 0
    uint32_t null_mask = 0;
    int broken = kNone;
    int ws_mode = WsExact;
    uint64_t seed = 0;
    int nan_count = 0;
    bool x_past_nan = false; // x rows past a sequence's length hold NaN (the kernels must not read them)
    // tsrnn_workspace_size with raw enum values
    bool wild = false, wild_bytes_null = false;
    int wild_cell = 0, wild_pass = 0, wild_backend = 0, wild_dtype = 0;
    bool lstm() const { return cell == TSRNN_CELL_LSTM; }
    bool fwd() const { return pass == TSRNN_PASS_FWD; }
    bool is_null(Opt o) const { return null_mask >> o & 1; }
};

int64_t size_of(uint8_t b, int64_t lo, int64_t span) { return b < 0xF0 ? lo + b % span : kEdge[b & 15]; }

// Wrapping int64 arithmetic for decoded strides and edge values (any int64 is a fine input).
int64_t wmul(int64_t a, int64_t b) { return int64_t(uint64_t(a) * uint64_t(b)); }
int64_t wadd(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }

int64_t raw_stride(Reader &r) {
    const uint8_t b = r.u8();
    if (b < 0xE0) return b % 80;
    if (b < 0xF0) return -int64_t(1 + (b & 15));
    return kEdge[b & 15];
}

Spec decode(const uint8_t *data, size_t size) {
    Reader r{data, size};
    Spec s;
    const uint8_t f0 = r.u8();
    s.cell = (f0 & 1) ? TSRNN_CELL_GRU : TSRNN_CELL_LSTM;
    s.pass = (f0 & 2) ? TSRNN_PASS_BWD : TSRNN_PASS_FWD;
    s.dtype = (f0 & 4) ? TSRNN_F64 : TSRNN_F32;
    s.use_lengths = f0 & 8;
    tsrnn_desc &d = s.desc;
    d.reverse = (f0 >> 4) & 1;
    d.reset_after = (f0 >> 5) & 1;
    const bool nan = f0 & 64, odd_flags = f0 & 128;

    d.T = size_of(r.u8(), 0, 17);
    d.B = size_of(r.u8(), 0, 17);
    d.D = size_of(r.u8(), 1, 33);
    d.H = size_of(r.u8(), 1, 33);
    const uint8_t pb = r.u8();
    if (pb >= 0xF0) {
        const int64_t pe[8] = {-1, d.H, wadd(d.H, 1), INT64_MIN, INT64_MAX, wmul(-1, d.H), wmul(2, d.H), 1};
        d.P = (pb & 8) ? pe[pb & 7] : kEdge[pb & 7];
    } else if (s.lstm() && (pb & 1)) {
        d.P = (d.H >= 1 && d.H <= 4096) ? (pb >> 1) % d.H : (pb >> 1);
    } else {
        d.P = 0;
    }
    const int64_t R = (s.lstm() && d.P > 0 && d.P < d.H) ? d.P : d.H;

    // strides: x (T x B x D), y (T x B x R)
    const uint8_t xl = r.u8(), yl = r.u8();
    const int64_t xpad = 1 + (xl >> 3) % 3, ypad = 1 + (yl >> 3) % 3;
    const int64_t xrow = wadd(d.D, xpad), yrow = wadd(R, ypad);
    switch (xl & 7) {
    case XTime: d.x_stride_b = d.D, d.x_stride_t = wmul(d.B, d.D); break;
    case XBatch: d.x_stride_t = d.D, d.x_stride_b = wmul(d.T, d.D); break;
    case XPadTime: d.x_stride_b = xrow, d.x_stride_t = wadd(wmul(d.B, xrow), xpad); break;
    case XPadBatch: d.x_stride_t = xrow, d.x_stride_b = wadd(wmul(d.T, xrow), xpad); break;
    case XBcastT: d.x_stride_t = 0, d.x_stride_b = d.D; break;
    case XBcastB: d.x_stride_t = d.D, d.x_stride_b = 0; break;
    case XBcastTB: d.x_stride_t = 0, d.x_stride_b = 0; break;
    default: d.x_stride_t = raw_stride(r), d.x_stride_b = raw_stride(r); break;
    }
    switch (yl & 7) {
    case YBatch: d.y_stride_t = R, d.y_stride_b = wmul(d.T, R); break;
    case YBidir: d.y_stride_b = wmul(2, R), d.y_stride_t = wmul(d.B, wmul(2, R)); break; // half of (T x B x 2R)
    case YPadBatch: d.y_stride_t = yrow, d.y_stride_b = wmul(d.T, yrow); break;
    case YOverlap:
        if (yl & 8) d.y_stride_t = 0, d.y_stride_b = R; // every step writes the same rows
        else d.y_stride_b = wadd(R, -1), d.y_stride_t = wmul(d.B, R); // neighbouring rows share an element
        break;
    case YRaw: d.y_stride_t = raw_stride(r), d.y_stride_b = raw_stride(r); break;
    default: d.y_stride_b = R, d.y_stride_t = wmul(d.B, R); break;
    }

    const uint8_t tb = r.u8();
    d.num_threads = (tb & 3) < 3 ? 1 + (tb & 3) : kThreadEdge[(tb >> 2) & 7];
    // the caller's pool (tsrnn_desc.parallel) half of the time: in order or in reverse order, on this thread
    if (tb & 0x40) d.parallel = (tb & 0x20) ? reverse_pool : serial_pool;
    if (odd_flags) {
        const uint8_t fb = r.u8();
        d.reverse = kFlagEdge[fb & 7];
        d.reset_after = kFlagEdge[(fb >> 3) & 7];
    }

    s.null_mask = r.u8() | uint32_t(r.u8()) << 8;
    const uint8_t bb = r.u8();
    s.broken = bb >= 0xE0 ? (bb - 0xE0) % kBrokenCount : kNone;
    const uint8_t wb = r.u8();
    s.ws_mode = wb < 0xC0 ? WsExact : (wb & 7);
    s.seed = r.u64();
    if (nan) {
        const uint8_t nb = r.u8();
        s.nan_count = 1 + nb % 3;
        s.x_past_nan = nb & 0x80;
    }
    const uint8_t qb = r.u8();
    if (qb >= 0xF0) { // tsrnn_workspace_size with raw enums
        const int raw[8] = {0, 1, 2, 3, -1, 100, INT32_MIN, 1};
        s.wild = true;
        s.wild_bytes_null = qb & 1;
        const uint8_t e0 = r.u8(), e1 = r.u8();
        s.wild_cell = raw[e0 & 7], s.wild_pass = raw[e0 >> 3 & 7];
        s.wild_backend = raw[e1 & 7], s.wild_dtype = raw[e1 >> 3 & 7];
    }
    if (s.use_lengths && d.B > 0) {
        const int64_t n = std::min<int64_t>(d.B, 64);
        for (int64_t b = 0; b < n; ++b) {
            const uint8_t lb = r.u8();
            int64_t L;
            if (lb < 0xF8) L = (d.T >= 0 && d.T < 4096) ? lb % (d.T + 1) : lb;
            else {
                const int64_t le[8] = {-1, wadd(d.T, 1), INT64_MIN, INT64_MAX, wadd(d.T, 100), wmul(-1, d.T), 0, d.T};
                L = le[lb & 7];
            }
            s.lengths.push_back(L);
        }
    }
    return s;
}

// The decoded call, as text (printed on a failure, and for every input when TSRNN_FUZZ_VERBOSE is set).
void describe(const Spec &s, FILE *f) {
    const tsrnn_desc &d = s.desc;
    std::fprintf(f,
                 "call: %s %s %s  T=%lld B=%lld D=%lld H=%lld P=%lld  x_stride t=%lld b=%lld  y_stride t=%lld b=%lld  "
                 "reverse=%d reset_after=%d num_threads=%d pool=%s\n",
                 s.lstm() ? "lstm" : "gru", s.fwd() ? "fwd" : "bwd", s.dtype == TSRNN_F32 ? "f32" : "f64",
                 (long long)d.T, (long long)d.B, (long long)d.D, (long long)d.H, (long long)d.P,
                 (long long)d.x_stride_t, (long long)d.x_stride_b, (long long)d.y_stride_t, (long long)d.y_stride_b,
                 d.reverse, d.reset_after, d.num_threads,
                 !d.parallel ? "own threads" : d.parallel == serial_pool ? "serial" : "reverse");
    std::fprintf(f, "      lengths=");
    if (!s.use_lengths) std::fprintf(f, "NULL");
    for (int64_t L : s.lengths) std::fprintf(f, "%lld ", (long long)L);
    static const char *opt_names[16] = {"h0",      "c0",       "b_ih",      "b_hh",      "saved",     "grad_y",
                                        "grad_h_n", "grad_c_n", "grad_x",    "grad_h0",   "grad_c0",   "grad_w_ih",
                                        "grad_w_hh", "grad_b_ih", "grad_b_hh", "grad_w_hr"};
    static const char *broken_names[kBrokenCount] = {"desc",   "x",   "w_ih", "w_hh",          "y/saved",
                                                     "h_n",    "c_n", "w_hr", "grad_w_hr given"};
    static const char *ws_names[8] = {"exact", "larger", "short", "misaligned+8", "misaligned+4", "NULL",
                                      "NULL, 0 bytes", "0 bytes"};
    std::fprintf(f, " NULL optionals:");
    for (int i = 0; i < 16; ++i)
        if (s.null_mask >> i & 1) std::fprintf(f, " %s", opt_names[i]);
    std::fprintf(f, "  broken: %s  workspace: %s  NaNs: %d%s  seed %llu\n",
                 s.broken == kNone ? "none" : broken_names[s.broken], ws_names[s.ws_mode], s.nan_count,
                 s.x_past_nan ? " (and x past lengths)" : "", (unsigned long long)s.seed);
}

// ---- the oracle: what tsrnn.h says the status of a call is ------------------------------------------------

// Statuses a call may return: `required` are those of the rules it breaks (empty: a valid call, TSRNN_OK);
// `allowed` may be returned too (conservative checks that tsrnn.h permits, or rules that depend on a value the
// harness cannot know, like the workspace size of a desc the query rejects).
struct Verdict {
    uint32_t required = 0, allowed = 0;
    bool accepts(tsrnn_status st) const {
        if (st == TSRNN_OK) return required == 0;
        return ((required | allowed) & bit(st)) != 0;
    }
};

bool fits(i128 v) { return v <= kMaxElems; }

// Products of non-negative counts, saturated far above kMaxElems (three int64 factors overflow even __int128).
constexpr i128 kSat = i128(1) << 100;
i128 sat(i128 a, i128 b) {
    if (a == 0 || b == 0) return 0;
    if (a >= kSat || b >= kSat || a > kSat / b) return kSat;
    return a * b;
}
i128 sat(i128 a, i128 b, i128 c) { return sat(sat(a, b), c); }

// Last element + 1 of a (T x B x W) strided tensor, 0 when empty (T, B >= 0, strides >= 0 assumed).
i128 extent(int64_t T, int64_t B, int64_t W, int64_t st, int64_t sb) {
    if (T == 0 || B == 0) return 0;
    return i128(T - 1) * st + i128(B - 1) * sb + W;
}

// Rows of width W at t*st + b*sb: 0 disjoint and nested (time-major or batch-first nesting, which every backend
// accepts), 1 disjoint but not nested (a backend may refuse it), 2 overlapping, 3 too many rows to tell. Written
// from tsrnn.h's "Layout and strides"; tsrnn_rows_nested, the library's own statement of the rule, must say nested
// exactly for 0.
int row_overlap(int64_t T, int64_t B, int64_t W, int64_t st, int64_t sb) {
    const int nested = tsrnn_rows_nested(T, B, W, st, sb);
    auto result = [&](int verdict) {
        if ((verdict == 0) != (nested == 1))
            fail("tsrnn_rows_nested(T %lld, B %lld, W %lld, stride_t %lld, stride_b %lld) = %d, the rule says %s",
                 (long long)T, (long long)B, (long long)W, (long long)st, (long long)sb, nested,
                 verdict == 0 ? "nested" : "not nested");
        return verdict;
    };
    if (T == 0 || B == 0) return result(0);
    const i128 span_b = i128(B - 1) * sb, span_t = i128(T - 1) * st;
    if ((B == 1 || sb >= W) && (T == 1 || i128(st) >= span_b + W)) return result(0);
    if ((T == 1 || st >= W) && (B == 1 || i128(sb) >= span_t + W)) return result(0);
    if (sat(T, B) > (int64_t(1) << 20)) return 3;
    std::vector<i128> starts;
    starts.reserve(size_t(T * B));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < B; ++b) starts.push_back(i128(t) * st + i128(b) * sb);
    std::sort(starts.begin(), starts.end());
    for (size_t i = 1; i < starts.size(); ++i)
        if (starts[i] - starts[i - 1] < W) return 2;
    return 1;
}

// Sizes of one call; `ok` when the desc's sizes are in range (so the counts below mean something).
struct Sizes {
    bool ok = false;
    int64_t G = 0, R = 0, S = 0; // S: valid only when it fits (the call is made only then)
    i128 x = 0, y = 0, BR = 0, BH = 0, wih = 0, whh = 0, bias = 0, whr = 0, saved = 0;
    double work = 0;
};

Sizes sizes_of(const Spec &s) {
    const tsrnn_desc &d = s.desc;
    Sizes z;
    if (d.T < 0 || d.B < 0 || d.D < 1 || d.H < 1) return z;
    if (s.lstm() ? (d.P < 0 || (d.P > 0 && d.P >= d.H)) : d.P != 0) return z;
    if (d.x_stride_t < 0 || d.x_stride_b < 0 || d.y_stride_t < 0 || d.y_stride_b < 0) return z;
    z.ok = true;
    z.G = s.lstm() ? 4 : 3;
    z.R = d.P > 0 ? d.P : d.H;
    const i128 S = s.lstm() ? sat(6, d.H) + d.P : sat(5, d.H);
    z.S = S <= kMaxElems ? int64_t(S) : 0;
    z.x = extent(d.T, d.B, d.D, d.x_stride_t, d.x_stride_b);
    z.y = extent(d.T, d.B, z.R, d.y_stride_t, d.y_stride_b);
    z.BR = sat(d.B, z.R);
    z.BH = sat(d.B, d.H);
    z.wih = sat(z.G, d.H, d.D);
    z.whh = sat(z.G, d.H, z.R);
    z.bias = sat(z.G, d.H);
    z.whr = sat(d.P, d.H);
    z.saved = sat(d.T, d.B, S);
    z.work = double(d.T) * double(d.B) * double(z.G) * double(d.H) * (double(d.D) + double(d.H));
    return z;
}

// Statuses for the desc alone (what tsrnn_workspace_size checks).
Verdict desc_verdict(const Spec &s, tsrnn_backend backend, bool desc_null) {
    Verdict v;
    const tsrnn_desc &d = s.desc;
    if (desc_null) {
        v.required |= bit(TSRNN_ERR_NULL);
        return v;
    }
    if (d.T < 0 || d.B < 0 || d.D < 1 || d.H < 1) v.required |= bit(TSRNN_ERR_SHAPE);
    if (s.lstm()) {
        if (d.P < 0 || (d.P > 0 && d.P >= d.H)) v.required |= bit(TSRNN_ERR_SHAPE);
    } else if (d.P != 0) { // "must be 0 for GRU": a bad argument, or a size out of range
        v.required |= bit(TSRNN_ERR_ARGUMENT);
        v.allowed |= bit(TSRNN_ERR_SHAPE);
    }
    if (d.reverse != 0 && d.reverse != 1) v.required |= bit(TSRNN_ERR_ARGUMENT);
    if (!s.lstm() && d.reset_after != 0 && d.reset_after != 1) v.required |= bit(TSRNN_ERR_ARGUMENT);
    if (backend == TSRNN_BACKEND_CPU && d.num_threads < 1) v.required |= bit(TSRNN_ERR_THREADS);
    if (d.x_stride_t < 0 || d.x_stride_b < 0 || d.y_stride_t < 0 || d.y_stride_b < 0)
        v.required |= bit(TSRNN_ERR_STRIDE);

    const Sizes z = sizes_of(s);
    if (!z.ok) { // a count check may fire before the rule broken above (the order is the backend's)
        v.allowed |= bit(TSRNN_ERR_SHAPE) | bit(TSRNN_ERR_STRIDE);
        return v;
    }
    // every buffer the call touches must have an element count (bytes in f64) that fits int64
    for (i128 n : {z.x, z.y, z.BR, z.BH, z.wih, z.whh, z.bias, z.whr, z.saved})
        if (!fits(n)) v.required |= bit(TSRNN_ERR_SHAPE);
    // internal.h's own bounds, coarser than the buffers': G*H*H, T*B*7H, T*B*D
    if (!fits(sat(z.G, d.H, d.H)) || !fits(sat(sat(d.T, d.B), 7, d.H)) || !fits(sat(d.T, d.B, d.D)))
        v.allowed |= bit(TSRNN_ERR_SHAPE);
    switch (row_overlap(d.T, d.B, z.R, d.y_stride_t, d.y_stride_b)) {
    case 0: break;
    case 2: v.required |= bit(TSRNN_ERR_STRIDE); break;
    default: v.allowed |= bit(TSRNN_ERR_STRIDE); break;
    }
    return v;
}

// ---- buffers ---------------------------------------------------------------------------------------------

// One malloc of exactly n elements (n may be 0: a pointer ASan knows is 0 bytes long).
template <class real> struct Buf {
    real *p = nullptr;
    int64_t n = 0;
    Buf() = default;
    explicit Buf(int64_t count) : p(static_cast<real *>(std::malloc(size_t(count) * sizeof(real)))), n(count) {
        if (!p) fail("malloc of %lld elements failed", (long long)count);
    }
    Buf(const Buf &o) : Buf(o.n) { std::memcpy(p, o.p, size_t(n) * sizeof(real)); }
    Buf(Buf &&o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
    Buf &operator=(Buf &&o) noexcept {
        std::swap(p, o.p), std::swap(n, o.n);
        return *this;
    }
    Buf &operator=(const Buf &) = delete;
    ~Buf() { std::free(p); }
    void fill(real v) { std::fill(p, p + n, v); }
    bool same_bits(const Buf &o) const { return n == o.n && std::memcmp(p, o.p, size_t(n) * sizeof(real)) == 0; }
};

struct Rng {
    uint64_t s;
    uint64_t next() { // splitmix64
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * 0x1p-53; }
};

// A workspace per tsrnn_workspace_size, passed as ws_mode says. Exact sizes are separate allocations, so ASan
// sees a byte past `need`.
struct Workspace {
    void *base = nullptr, *ptr = nullptr;
    size_t have = 0;
    Workspace(int mode, size_t need, bool query_ok) {
        if (!query_ok) need = 256; // the call should refuse the desc before it looks at the workspace
        size_t alloc = need, offset = 0;
        have = need;
        switch (mode) {
        case WsLarger: alloc = have = need + 192; break;
        case WsShort: alloc = have = need > 0 ? need - 1 : 0; break;
        case WsMisaligned8: offset = 8, alloc = need + 8; break;
        case WsMisaligned4: offset = 4, alloc = need + 4; break;
        case WsNull: alloc = 0; break;
        case WsNullZero: alloc = 0, have = 0; break;
        case WsZero: alloc = 0, have = 0; break;
        default: break;
        }
        if (mode == WsNull || mode == WsNullZero) return;
        if (posix_memalign(&base, TSRNN_WORKSPACE_ALIGN, alloc ? alloc : 1) != 0) fail("posix_memalign failed");
        if (alloc == 0) { // a 0-byte region for ASan: free the 1-byte one and take malloc(0)'s pointer instead
            std::free(base);
            base = std::malloc(0);
        }
        ptr = static_cast<char *>(base) + offset;
    }
    ~Workspace() { std::free(base); }
    Workspace(const Workspace &) = delete;
    Workspace &operator=(const Workspace &) = delete;
    // tsrnn.h: at least the queried bytes, 64-byte aligned (nothing is asked for when need is 0)
    static bool valid(int mode, size_t need) { return need == 0 || mode == WsExact || mode == WsLarger; }
};

// ---- typed calls -----------------------------------------------------------------------------------------

template <class real> struct Fns;
template <> struct Fns<float> {
    static constexpr auto lstm_fwd_ref = &tsrnn_lstm_fwd_ref_f32, lstm_fwd_cpu = &tsrnn_lstm_fwd_cpu_f32;
    static constexpr auto lstm_bwd_ref = &tsrnn_lstm_bwd_ref_f32, lstm_bwd_cpu = &tsrnn_lstm_bwd_cpu_f32;
    static constexpr auto gru_fwd_ref = &tsrnn_gru_fwd_ref_f32, gru_fwd_cpu = &tsrnn_gru_fwd_cpu_f32;
    static constexpr auto gru_bwd_ref = &tsrnn_gru_bwd_ref_f32, gru_bwd_cpu = &tsrnn_gru_bwd_cpu_f32;
    static constexpr double rtol = 2e-3, atol = 2e-4; // relative to max(1, max |ref|) of the buffer
};
template <> struct Fns<double> {
    static constexpr auto lstm_fwd_ref = &tsrnn_lstm_fwd_ref_f64, lstm_fwd_cpu = &tsrnn_lstm_fwd_cpu_f64;
    static constexpr auto lstm_bwd_ref = &tsrnn_lstm_bwd_ref_f64, lstm_bwd_cpu = &tsrnn_lstm_bwd_cpu_f64;
    static constexpr auto gru_fwd_ref = &tsrnn_gru_fwd_ref_f64, gru_fwd_cpu = &tsrnn_gru_fwd_cpu_f64;
    static constexpr auto gru_bwd_ref = &tsrnn_gru_bwd_ref_f64, gru_bwd_cpu = &tsrnn_gru_bwd_cpu_f64;
    static constexpr double rtol = 1e-9, atol = 1e-10;
};

const char *backend_name(tsrnn_backend b) { return b == TSRNN_BACKEND_REF ? "ref" : "cpu"; }

template <class real> class Harness {
  public:
    explicit Harness(const Spec &s) : s_(s), z_(sizes_of(s)) {}

    void run() {
        const tsrnn_desc &d = s_.desc;
        // inputs: desc, lengths and the data buffers
        desc_ = d;
        if (s_.use_lengths) {
            lengths_ = s_.lengths;
            if (lengths_.empty()) lengths_.push_back(0); // B == 0 (or < 0): a pointer that must not be read
            desc_.lengths = lengths_.data();
        }
        exact_ = z_.ok;
        for (i128 n : {z_.x, z_.y, z_.BR, z_.BH, z_.wih, z_.whh, z_.bias, z_.whr, z_.saved})
            if (n > kCapElems) exact_ = false;
        if (s_.use_lengths && d.B > int64_t(lengths_.size())) exact_ = false;

        // A desc that is valid but too large to make the call with here (or whose lengths were not all decoded):
        // only the queries are checked. An invalid desc is called with 0-element buffers: it must be refused
        // before any of them is touched.
        const bool lengths_complete = !s_.use_lengths || d.B <= int64_t(lengths_.size());
        const bool desc_ok = s_.broken != kDesc && (desc_verdict(s_, TSRNN_BACKEND_REF, false).required == 0 ||
                                                    desc_verdict(s_, TSRNN_BACKEND_CPU, false).required == 0);
        if (desc_ok && (!exact_ || z_.work > kCapWork || !lengths_complete)) return;
        for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU}) {
            size_t need = 0;
            if (desc_ok && tsrnn_workspace_size(s_.cell, s_.pass, backend, s_.dtype, &desc_, &need) == TSRNN_OK &&
                need > kCapWorkspace)
                return;
        }
        const Verdict vref = call_verdict(TSRNN_BACKEND_REF), vcpu = call_verdict(TSRNN_BACKEND_CPU);
        allocate();
        fill_inputs();
        if (!s_.fwd()) make_saved();

        const tsrnn_status st_ref = call(TSRNN_BACKEND_REF, vref, ref_out_);
        const tsrnn_status st_cpu = call(TSRNN_BACKEND_CPU, vcpu, cpu_out_);
        if (d.num_threads >= 1 && st_ref != st_cpu)
            fail("ref returned %d (%s) but cpu %d (%s)", st_ref, tsrnn_status_string(st_ref), st_cpu,
                 tsrnn_status_string(st_cpu));
        if (st_ref == TSRNN_OK) check_rows(ref_out_, TSRNN_BACKEND_REF);
        if (st_cpu == TSRNN_OK) check_rows(cpu_out_, TSRNN_BACKEND_CPU);
        if (st_ref != TSRNN_OK || st_cpu != TSRNN_OK) return;
        compare(ref_out_, cpu_out_);
        if (desc_.num_threads > 1) { // results do not depend on num_threads
            Outputs one = fresh_outputs();
            const int threads = desc_.num_threads;
            desc_.num_threads = 1;
            const tsrnn_status st = call(TSRNN_BACKEND_CPU, call_verdict(TSRNN_BACKEND_CPU), one);
            desc_.num_threads = threads;
            if (st != TSRNN_OK) fail("cpu with 1 thread returned %d", st);
            for (size_t i = 0; i < one.bufs.size(); ++i)
                if (cpu_out_.present[i] && !one.bufs[i].same_bits(cpu_out_.bufs[i]))
                    fail("cpu output %s with %d threads differs from 1 thread", out_name(i), threads);
        }
    }

  private:
    // Output buffers of one call, in a fixed order; present[i] = passed (non-NULL).
    enum OutIdx { OY, OHn, OCn, OSaved, OGx, OGh0, OGc0, OGwih, OGwhh, OGbih, OGbhh, OGwhr, ONum };
    static const char *out_name(size_t i) {
        static const char *names[ONum] = {"y",       "h_n",       "c_n",       "saved",     "grad_x",   "grad_h0",
                                          "grad_c0", "grad_w_ih", "grad_w_hh", "grad_b_ih", "grad_b_hh", "grad_w_hr"};
        return names[i];
    }
    struct Outputs {
        std::vector<Buf<real>> bufs;
        std::vector<bool> present;
    };

    const Spec &s_;
    const Sizes z_;
    tsrnn_desc desc_{};
    std::vector<int64_t> lengths_;
    bool exact_ = false;
    // inputs
    Buf<real> x_, h0_, c0_, wih_, whh_, bih_, bhh_, whr_, gy_, ghn_, gcn_, saved_in_, dummy_;
    Outputs ref_out_, cpu_out_;

    int64_t n_of(i128 v) const { return exact_ ? int64_t(v) : 0; }
    int64_t length(int64_t b) const {
        if (!s_.use_lengths) return desc_.T;
        return std::clamp<int64_t>(lengths_[size_t(b)], 0, desc_.T);
    }
    bool present(Opt o) const { return !s_.is_null(o); }

    Outputs fresh_outputs() const {
        Outputs o;
        const bool f = s_.fwd(), l = s_.lstm();
        const int64_t n[ONum] = {n_of(z_.y),    n_of(z_.BR),  n_of(z_.BH),   n_of(z_.saved),
                                 n_of(z_.x),    n_of(z_.BR),  n_of(z_.BH),   n_of(z_.wih),
                                 n_of(z_.whh),  n_of(z_.bias), n_of(z_.bias), n_of(z_.whr)};
        const bool p[ONum] = {f,
                              f,
                              f && l,
                              f && present(kSaved),
                              !f && present(kGradX),
                              !f && present(kGradH0),
                              !f && l && present(kGradC0),
                              !f && present(kGradWih),
                              !f && present(kGradWhh),
                              !f && present(kGradBih),
                              !f && present(kGradBhh),
                              !f && l && desc_.P > 0 && present(kGradWhr)};
        o.bufs.reserve(ONum);
        for (int i = 0; i < ONum; ++i) {
            o.bufs.emplace_back(p[i] ? n[i] : 0);
            o.bufs.back().fill(real(kSentinel));
            o.present.push_back(p[i]);
        }
        return o;
    }

    void allocate() {
        x_ = Buf<real>(n_of(z_.x)), h0_ = Buf<real>(n_of(z_.BR)), c0_ = Buf<real>(n_of(z_.BH));
        wih_ = Buf<real>(n_of(z_.wih)), whh_ = Buf<real>(n_of(z_.whh));
        bih_ = Buf<real>(n_of(z_.bias)), bhh_ = Buf<real>(n_of(z_.bias)), whr_ = Buf<real>(n_of(z_.whr));
        gy_ = Buf<real>(n_of(z_.y)), ghn_ = Buf<real>(n_of(z_.BR)), gcn_ = Buf<real>(n_of(z_.BH));
        saved_in_ = Buf<real>(n_of(z_.saved));
        dummy_ = Buf<real>(0);
        ref_out_ = fresh_outputs();
        cpu_out_ = fresh_outputs();
    }

    // Marks the elements of the rows (t, b), t < limit(b), of a (T x B x W) strided buffer.
    template <class Limit>
    std::vector<char> rows_mask(int64_t n, int64_t W, int64_t st, int64_t sb, Limit &&limit) const {
        std::vector<char> m(size_t(n), 0);
        for (int64_t b = 0; b < desc_.B; ++b)
            for (int64_t t = 0; t < limit(b); ++t)
                for (int64_t k = 0; k < W; ++k) m[size_t(t * st + b * sb + k)] = 1;
        return m;
    }

    void fill_inputs() {
        Rng rng{s_.seed};
        const real nan = std::numeric_limits<real>::quiet_NaN();
        const double ws = 1.0 / std::sqrt(double(std::max<int64_t>(desc_.H, 1)));
        auto fill = [&](Buf<real> &b, double scale) {
            for (int64_t i = 0; i < b.n; ++i) b.p[i] = real(rng.uniform(-scale, scale));
        };
        fill(x_, 1), fill(h0_, 1), fill(c0_, 1), fill(wih_, ws), fill(whh_, ws), fill(bih_, ws), fill(bhh_, ws);
        fill(whr_, ws), fill(gy_, 1), fill(ghn_, 1), fill(gcn_, 1);
        for (int64_t i = 0; i < saved_in_.n; ++i) saved_in_.p[i] = real(rng.uniform(0, 1));
        if (exact_) {
            // x: NaN outside every row the call reads (and, when asked, in rows past a sequence's length)
            const bool past = s_.x_past_nan;
            auto x_rows = rows_mask(x_.n, desc_.D, desc_.x_stride_t, desc_.x_stride_b,
                                    [&](int64_t b) { return past ? length(b) : desc_.T; });
            for (int64_t i = 0; i < x_.n; ++i)
                if (!x_rows[size_t(i)]) x_.p[i] = nan;
            // grad_y: NaN outside the rows within each sequence's length ("rows past a sequence's length are
            // ignored"); y's rows may overlap here only in calls that must be refused
            auto y_rows = rows_mask(gy_.n, z_.R, desc_.y_stride_t, desc_.y_stride_b, [&](int64_t b) { return length(b); });
            for (int64_t i = 0; i < gy_.n; ++i)
                if (!y_rows[size_t(i)]) gy_.p[i] = nan;
        }
        Buf<real> *targets[] = {&x_, &h0_, &c0_, &wih_, &whh_, &bih_, &bhh_, &whr_, &gy_, &ghn_, &gcn_};
        for (int k = 0; k < s_.nan_count; ++k) {
            Buf<real> &b = *targets[rng.next() % 11];
            if (b.n > 0) b.p[rng.next() % uint64_t(b.n)] = nan;
        }
    }

    // saved for a backward call: the reference forward of the same call when it accepts it, else random
    void make_saved() {
        if (!exact_ || saved_in_.n == 0) return;
        size_t need = 0;
        if (tsrnn_workspace_size(s_.cell, TSRNN_PASS_FWD, TSRNN_BACKEND_REF, s_.dtype, &desc_, &need) != TSRNN_OK)
            return;
        Workspace ws(WsExact, need, true);
        Buf<real> y(n_of(z_.y)), hn(n_of(z_.BR)), cn(n_of(z_.BH));
        using F = Fns<real>;
        const real *whr = desc_.P > 0 ? whr_.p : nullptr;
        const real *h0 = present(kH0) ? h0_.p : nullptr, *c0 = present(kC0) ? c0_.p : nullptr; // as the backward
        if (s_.lstm())
            (void)F::lstm_fwd_ref(&desc_, x_.p, h0, c0, wih_.p, whh_.p, bih_.p, bhh_.p, whr, y.p, hn.p, cn.p,
                                  saved_in_.p, ws.ptr, ws.have);
        else
            (void)F::gru_fwd_ref(&desc_, x_.p, h0, wih_.p, whh_.p, bih_.p, bhh_.p, y.p, hn.p, saved_in_.p, ws.ptr,
                                 ws.have);
    }

    // Statuses for the whole call: the desc's, then pointers, grad_x's layout, lengths, workspace.
    Verdict call_verdict(tsrnn_backend backend) const {
        const tsrnn_desc &d = desc_;
        Verdict v = desc_verdict(s_, backend, s_.broken == kDesc);
        if (s_.broken == kDesc) return v;
        const bool f = s_.fwd(), l = s_.lstm();
        switch (s_.broken) {
        case kX:
        case kWih:
        case kWhh: v.required |= bit(TSRNN_ERR_NULL); break;
        case kYOrSaved: v.required |= bit(TSRNN_ERR_NULL); break; // y (forward) or saved (backward)
        case kHn: if (f) v.required |= bit(TSRNN_ERR_NULL); break;
        case kCn: if (f && l) v.required |= bit(TSRNN_ERR_NULL); break;
        default: break;
        }
        const bool p_ok = z_.ok;
        if (l && p_ok) {
            const bool whr_given = d.P > 0 ? s_.broken != kWhr : s_.broken == kWhr;
            if (d.P > 0 && !whr_given) v.required |= bit(TSRNN_ERR_NULL);
            if (d.P == 0 && whr_given) v.required |= bit(TSRNN_ERR_ARGUMENT);
            if (!f && d.P == 0 && s_.broken == kGradWhrGiven) v.required |= bit(TSRNN_ERR_ARGUMENT);
        }
        if (!f && present(kGradX)) {
            if (!p_ok) v.allowed |= bit(TSRNN_ERR_STRIDE);
            else switch (row_overlap(d.T, d.B, d.D, d.x_stride_t, d.x_stride_b)) {
                case 0: break;
                case 2: v.required |= bit(TSRNN_ERR_STRIDE); break;
                default: v.allowed |= bit(TSRNN_ERR_STRIDE); break;
                }
        }
        if (s_.use_lengths) {
            for (int64_t L : lengths_)
                if (d.B > 0 && (L < 0 || L > d.T)) v.required |= bit(TSRNN_ERR_LENGTHS);
        }
        size_t need = 0;
        const tsrnn_status q = tsrnn_workspace_size(s_.cell, s_.pass, backend, s_.dtype, &d, &need);
        if (q != TSRNN_OK || need > kCapWorkspace) v.allowed |= bit(TSRNN_ERR_WORKSPACE); // 256 bytes are passed
        else if (!Workspace::valid(s_.ws_mode, need)) v.required |= bit(TSRNN_ERR_WORKSPACE);
        return v;
    }

    tsrnn_status call(tsrnn_backend backend, const Verdict &v, Outputs &out) {
        size_t need = 0;
        const tsrnn_status q = tsrnn_workspace_size(s_.cell, s_.pass, backend, s_.dtype, &desc_, &need);
        Workspace ws(s_.ws_mode, need, q == TSRNN_OK && need <= kCapWorkspace);

        // what must not change
        const tsrnn_desc desc_before = desc_;
        const std::vector<int64_t> lengths_before = lengths_;
        const Buf<real> ins_before[] = {x_, h0_, c0_, wih_, whh_, bih_, bhh_, whr_, gy_, ghn_, gcn_, saved_in_};

        const bool f = s_.fwd(), l = s_.lstm();
        const tsrnn_desc *dp = s_.broken == kDesc ? nullptr : &desc_;
        const real *x = s_.broken == kX ? nullptr : x_.p;
        const real *wih = s_.broken == kWih ? nullptr : wih_.p, *whh = s_.broken == kWhh ? nullptr : whh_.p;
        const real *h0 = present(kH0) ? h0_.p : nullptr, *c0 = present(kC0) ? c0_.p : nullptr;
        const bool whr_given = desc_.P > 0 ? s_.broken != kWhr : s_.broken == kWhr;
        const real *whr = whr_given ? (desc_.P > 0 ? whr_.p : dummy_.p) : nullptr;
        auto o = [&](int i) -> real * { return out.present[size_t(i)] ? out.bufs[size_t(i)].p : nullptr; };
        using F = Fns<real>;
        const bool ref = backend == TSRNN_BACKEND_REF;
        tsrnn_status st;
        if (f) {
            const real *bih = present(kBih) ? bih_.p : nullptr, *bhh = present(kBhh) ? bhh_.p : nullptr;
            real *y = s_.broken == kYOrSaved ? nullptr : o(OY), *hn = s_.broken == kHn ? nullptr : o(OHn);
            real *cn = s_.broken == kCn ? nullptr : o(OCn);
            if (l)
                st = (ref ? F::lstm_fwd_ref : F::lstm_fwd_cpu)(dp, x, h0, c0, wih, whh, bih, bhh, whr, y, hn, cn,
                                                                o(OSaved), ws.ptr, ws.have);
            else
                st = (ref ? F::gru_fwd_ref : F::gru_fwd_cpu)(dp, x, h0, wih, whh, bih, bhh, y, hn, o(OSaved), ws.ptr,
                                                              ws.have);
        } else {
            const real *saved = s_.broken == kYOrSaved ? nullptr : saved_in_.p;
            const real *gy = present(kGradY) ? gy_.p : nullptr, *ghn = present(kGradHn) ? ghn_.p : nullptr;
            const real *gcn = present(kGradCn) ? gcn_.p : nullptr;
            real *gwhr = o(OGwhr);
            if (l && desc_.P == 0 && s_.broken == kGradWhrGiven) gwhr = dummy_.p;
            if (l)
                st = (ref ? F::lstm_bwd_ref : F::lstm_bwd_cpu)(dp, x, h0, c0, wih, whh, whr, saved, gy, ghn, gcn,
                                                                o(OGx), o(OGh0), o(OGc0), o(OGwih), o(OGwhh), o(OGbih),
                                                                o(OGbhh), gwhr, ws.ptr, ws.have);
            else
                st = (ref ? F::gru_bwd_ref : F::gru_bwd_cpu)(dp, x, h0, wih, whh, saved, gy, ghn, o(OGx), o(OGh0),
                                                              o(OGwih), o(OGwhh), o(OGbih), o(OGbhh), ws.ptr, ws.have);
        }

        if (!v.accepts(st))
            fail("%s %s %s %s returned %d (%s); tsrnn.h requires one of mask 0x%x (0 = ok), allows 0x%x", backend_name(backend),
                 l ? "lstm" : "gru", f ? "fwd" : "bwd", s_.dtype == TSRNN_F32 ? "f32" : "f64", st,
                 tsrnn_status_string(st), v.required, v.allowed);
        if (std::memcmp(&desc_before, &desc_, sizeof desc_) != 0 || lengths_before != lengths_)
            fail("%s changed the desc or the lengths", backend_name(backend));
        const Buf<real> *ins_after[] = {&x_, &h0_, &c0_, &wih_, &whh_, &bih_, &bhh_, &whr_, &gy_, &ghn_, &gcn_, &saved_in_};
        for (size_t i = 0; i < 12; ++i)
            if (!ins_before[i].same_bits(*ins_after[i])) fail("%s changed input #%zu", backend_name(backend), i);
        return st;
    }

    // CPU vs reference: |cpu - ref| <= atol * scale + rtol * |ref|, scale = max(1, max |ref|) of the buffer;
    // NaN matches NaN only, infinities match exactly.
    void compare(const Outputs &ref, const Outputs &cpu) const {
        for (size_t i = 0; i < ref.bufs.size(); ++i) {
            if (!ref.present[i]) continue;
            const Buf<real> &a = ref.bufs[i], &b = cpu.bufs[i];
            double scale = 1;
            for (int64_t k = 0; k < a.n; ++k)
                if (std::isfinite(double(a.p[k]))) scale = std::max(scale, std::fabs(double(a.p[k])));
            for (int64_t k = 0; k < a.n; ++k) {
                const double r = a.p[k], c = b.p[k];
                bool ok;
                if (std::isnan(r) || std::isnan(c)) ok = std::isnan(r) && std::isnan(c);
                else if (std::isinf(r) || std::isinf(c)) ok = r == c;
                else ok = std::fabs(c - r) <= Fns<real>::atol * scale + Fns<real>::rtol * std::fabs(r);
                if (!ok)
                    fail("%s %s: cpu %.17g vs ref %.17g at element %lld of %lld", s_.dtype == TSRNN_F32 ? "f32" : "f64",
                         out_name(i), c, r, (long long)k, (long long)a.n);
            }
        }
    }

    // y / grad_x: the sentinel outside every row; rows past a sequence's length zero; saved rows too.
    void check_rows(const Outputs &out, tsrnn_backend backend) const {
        auto check = [&](int idx, int64_t W, int64_t st, int64_t sb) {
            if (!out.present[size_t(idx)]) return;
            const Buf<real> &b = out.bufs[size_t(idx)];
            auto rows = rows_mask(b.n, W, st, sb, [&](int64_t) { return desc_.T; });
            for (int64_t i = 0; i < b.n; ++i)
                if (!rows[size_t(i)] && double(b.p[i]) != kSentinel)
                    fail("%s wrote %s[%lld] = %g, outside every row", backend_name(backend), out_name(size_t(idx)),
                         (long long)i, double(b.p[i]));
            for (int64_t bb = 0; bb < desc_.B; ++bb)
                for (int64_t t = length(bb); t < desc_.T; ++t)
                    for (int64_t k = 0; k < W; ++k)
                        if (b.p[t * st + bb * sb + k] != real(0))
                            fail("%s: %s row (t %lld, b %lld) past the length %lld is not zero", backend_name(backend),
                                 out_name(size_t(idx)), (long long)t, (long long)bb, (long long)length(bb));
        };
        check(OY, z_.R, desc_.y_stride_t, desc_.y_stride_b);
        check(OGx, desc_.D, desc_.x_stride_t, desc_.x_stride_b);
        check(OSaved, z_.S, desc_.B * z_.S, z_.S);
    }
};

// tsrnn_workspace_size with raw enum values.
void check_wild_query(const Spec &s) {
    const bool pass_ok = s.wild_pass == 0 || s.wild_pass == 1, dtype_ok = s.wild_dtype == 0 || s.wild_dtype == 1;
    const bool cell_ok = s.wild_cell == 0 || s.wild_cell == 1;
    const bool backend_ok = s.wild_backend >= 0 && s.wild_backend <= 2;
    size_t bytes = 12345;
    const tsrnn_status st =
        tsrnn_workspace_size(tsrnn_cell(s.wild_cell), tsrnn_pass(s.wild_pass), tsrnn_backend(s.wild_backend),
                             tsrnn_dtype(s.wild_dtype), &s.desc, s.wild_bytes_null ? nullptr : &bytes);
    Verdict v;
    if (s.wild_bytes_null) v.required |= bit(TSRNN_ERR_NULL);
    if (!pass_ok || !dtype_ok || !cell_ok || !backend_ok) v.required |= bit(TSRNN_ERR_ARGUMENT);
    if (v.required == 0) {
        Spec t = s;
        t.cell = tsrnn_cell(s.wild_cell);
        t.pass = tsrnn_pass(s.wild_pass);
        t.dtype = tsrnn_dtype(s.wild_dtype);
        const tsrnn_backend backend = tsrnn_backend(s.wild_backend);
        v = desc_verdict(t, backend, false);
        if (backend == TSRNN_BACKEND_CUDA) { // CUDA: UNSUPPORTED without CUDA in this build, or for f64
            v.allowed |= bit(TSRNN_ERR_UNSUPPORTED);
            if (v.required == 0) v.required = bit(TSRNN_ERR_UNSUPPORTED), v.allowed |= 1; // OK in a CUDA build
        }
    }
    const bool ok = st == TSRNN_OK ? (v.required == 0 || (v.allowed & 1)) : ((v.required | v.allowed) & bit(st)) != 0;
    if (!ok)
        fail("tsrnn_workspace_size(cell %d, pass %d, backend %d, dtype %d) returned %d (%s); requires 0x%x allows 0x%x",
             s.wild_cell, s.wild_pass, s.wild_backend, s.wild_dtype, st, tsrnn_status_string(st), v.required,
             v.allowed);
    if (std::strcmp(tsrnn_status_string(st), "unknown tsrnn status") == 0) fail("status %d has no text", st);
}

// tsrnn_workspace_size for both backends agrees with the oracle for the desc.
void check_queries(const Spec &s) {
    for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU}) {
        size_t bytes = 0;
        const tsrnn_status st = tsrnn_workspace_size(s.cell, s.pass, backend, s.dtype, &s.desc, &bytes);
        const Verdict v = desc_verdict(s, backend, false);
        if (!v.accepts(st))
            fail("tsrnn_workspace_size(%s) returned %d (%s); requires 0x%x allows 0x%x", backend_name(backend), st,
                 tsrnn_status_string(st), v.required, v.allowed);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const Spec s = decode(data, size);
    g_current = &s;
    static const bool verbose = std::getenv("TSRNN_FUZZ_VERBOSE") != nullptr;
    if (verbose) describe(s, stderr);
    if (s.wild) check_wild_query(s);
    check_queries(s);
    if (s.dtype == TSRNN_F32) Harness<float>(s).run();
    else Harness<double>(s).run();
    g_current = nullptr;
    return 0;
}
