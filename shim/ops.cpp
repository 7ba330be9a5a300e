// The op schemas of the tsrnn namespace, written once. Implementations register per device:
// shim/ops_cpu.cpp (CPU), shim/ops_cuda.cpp (CUDA, built only against a CUDA torch).
//
// One op = one layer, one direction, one cell. Sequence tensors are (T, B, *) or (B, T, *) when batch_first;
// hidden states (1, B, R) and cell states (1, B, H) (inputs may also be (B, R) / (B, H); a state's gradient has
// its shape); w_ih (G*H, D), w_hh (G*H, R), biases (G*H); lengths int64 CPU (B,); saved (T, B, S), always
// time-major. R = P for an LSTM with a projection w_hr (P, H), nn.LSTM's proj_size; else H.
// w_hr and need_saved come last with defaults, so calls written before they existed stay valid; grad_w_hr is
// (0, H) without a projection. need_saved=False (inference: no backward will follow) skips the saved
// activations: saved is then an empty (0, B, S) tensor and the kernels write none. See kernels/include/tsrnn.h for the meaning of every value.
#include <torch/csrc/stable/library.h>

STABLE_TORCH_LIBRARY(tsrnn, m) {
    m.def("lstm(Tensor x, Tensor? h0, Tensor? c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
          "Tensor? lengths, bool batch_first, bool reverse, Tensor? w_hr=None, "
          "bool need_saved=True) -> (Tensor y, Tensor h_n, Tensor c_n, Tensor saved)");
    m.def("lstm_backward(Tensor x, Tensor? h0, Tensor? c0, Tensor w_ih, Tensor w_hh, Tensor saved, "
          "Tensor? lengths, Tensor? grad_y, Tensor? grad_h_n, Tensor? grad_c_n, bool batch_first, bool reverse, "
          "Tensor? w_hr=None) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_c0, Tensor grad_w_ih, Tensor grad_w_hh, "
          "Tensor grad_b_ih, Tensor grad_b_hh, Tensor grad_w_hr)");
    m.def("gru(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor? lengths, "
          "bool batch_first, bool reverse, bool reset_after, bool need_saved=True) "
          "-> (Tensor y, Tensor h_n, Tensor saved)");
    m.def("gru_backward(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, Tensor saved, Tensor? lengths, "
          "Tensor? grad_y, Tensor? grad_h_n, bool batch_first, bool reverse, bool reset_after) "
          "-> (Tensor grad_x, Tensor grad_h0, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
          "Tensor grad_b_hh)");
}
