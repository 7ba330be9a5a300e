/* kernels/common/api.c with the CUDA workspace sizes, which the emulated kernels here provide. */
#define TSRNN_WITH_CUDA 1
#include "../../kernels/common/api.c"
