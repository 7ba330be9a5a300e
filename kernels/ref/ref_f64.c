/*
 * The fp64 reference: the bodies in ref_lstm.inc and ref_gru.inc, instantiated for double. Everything is computed in
 * double with double libm functions, using PyTorch's formulas. Compiled with -ffp-contract=off (see CMakeLists.txt).
 */
#include <math.h>
#include <string.h>

#include "ref_layout.h"

typedef double real;
#define REF_FN(name) name##_f64
#define REF_DTYPE TSRNN_F64

static real ref_tanh(real v) { return tanh(v); }
static real ref_sigmoid(real v) { return 1.0 / (1.0 + exp(-v)); }

#include "ref_lstm.inc"
#include "ref_gru.inc"
