/*
 * The fp32 reference: the bodies in ref_lstm.inc and ref_gru.inc, instantiated for float. Everything is computed in
 * float with float libm functions, using PyTorch's formulas. Compiled with -ffp-contract=off (see CMakeLists.txt).
 */
#include <math.h>
#include <string.h>

#include "ref_layout.h"

typedef float real;
#define REF_FN(name) name##_f32
#define REF_DTYPE TSRNN_F32

static real ref_tanh(real v) { return tanhf(v); }
static real ref_sigmoid(real v) { return 1.0f / (1.0f + expf(-v)); }

#include "ref_lstm.inc"
#include "ref_gru.inc"
