# The installed torch, asked of Python (Python3_EXECUTABLE): the target tsrnn::torch (headers, the libraries the
# shim links, the C++ ABI flag) and TSRNN_TORCH_CUDA (torch.version.cuda, empty for a CPU build).
#
# Why not find_package(Torch): for a CUDA torch its Caffe2 config runs the legacy FindCUDA, which fails where nvcc
# is a wrapper outside the toolkit ("Your installed Caffe2 version uses CUDA but I cannot find the CUDA libraries",
# seen with torch 2.11.0+cu130 on a project machine), and adds -gencode flags of its own to every CUDA compile. The
# shim needs neither: it uses the stable-ABI headers and links libtorch's C shim, as torch.utils.cpp_extension does.

find_package(Python3 REQUIRED COMPONENTS Interpreter)
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c [=[
import os, torch
root = os.path.dirname(torch.__file__)
print(os.path.join(root, "include"))
print(os.path.join(root, "lib"))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.version.cuda or "none")
print(torch.__version__)
]=]
  OUTPUT_VARIABLE _tsrnn_torch_facts OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_VARIABLE _tsrnn_torch_error RESULT_VARIABLE _tsrnn_torch_rc)
if(NOT _tsrnn_torch_rc EQUAL 0)
  message(FATAL_ERROR "tsrnn: cannot import torch with ${Python3_EXECUTABLE}. If torch is installed, this build "
                      "runs in pip's isolated build environment, which hides it: install with "
                      "`pip install --no-build-isolation .` (the package builds against the torch you have). If it is "
                      "not: `pip install torch==2.13.0` first (make test and make demo do). Python said:\n"
                      "${_tsrnn_torch_error}")
endif()
string(REPLACE "\n" ";" _tsrnn_torch_facts "${_tsrnn_torch_facts}")
list(GET _tsrnn_torch_facts 0 TSRNN_TORCH_INCLUDE)
list(GET _tsrnn_torch_facts 1 TSRNN_TORCH_LIBDIR)
list(GET _tsrnn_torch_facts 2 _tsrnn_torch_abi)
list(GET _tsrnn_torch_facts 3 TSRNN_TORCH_CUDA)
list(GET _tsrnn_torch_facts 4 TSRNN_TORCH_VERSION)
if(TSRNN_TORCH_CUDA STREQUAL "none")
  set(TSRNN_TORCH_CUDA "")
endif()

add_library(tsrnn_torch INTERFACE)
add_library(tsrnn::torch ALIAS tsrnn_torch)
target_include_directories(tsrnn_torch SYSTEM INTERFACE "${TSRNN_TORCH_INCLUDE}"
                                                        "${TSRNN_TORCH_INCLUDE}/torch/csrc/api/include")
target_compile_definitions(tsrnn_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_tsrnn_torch_abi})
foreach(lib c10 torch_cpu torch)
  find_library(TSRNN_TORCH_LIB_${lib} NAMES ${lib} PATHS "${TSRNN_TORCH_LIBDIR}" NO_DEFAULT_PATH REQUIRED)
  target_link_libraries(tsrnn_torch INTERFACE "${TSRNN_TORCH_LIB_${lib}}")
endforeach()
message(STATUS "tsrnn: torch ${TSRNN_TORCH_VERSION} at ${TSRNN_TORCH_LIBDIR} (CUDA: ${TSRNN_TORCH_CUDA})")

# The CUDA registration's one CUDA-only symbol (aoti_torch_get_current_cuda_stream) lives in libtorch_cuda.
function(tsrnn_torch_cuda_libraries out)
  find_library(TSRNN_TORCH_LIB_torch_cuda NAMES torch_cuda PATHS "${TSRNN_TORCH_LIBDIR}" NO_DEFAULT_PATH REQUIRED)
  set(${out} "${TSRNN_TORCH_LIB_torch_cuda}" PARENT_SCOPE)
endfunction()
