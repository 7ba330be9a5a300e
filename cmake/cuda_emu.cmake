# The CUDA kernels and their GoogleTest suite (kernels/cuda/*.cu, tests/kernels/cuda_vs_ref_test.cu) compiled as C++
# against a host emulation of the CUDA runtime (tests/cuda_emu/cuda_runtime.h), so the kernels' logic is tested
# against the reference on machines without a GPU, CI included: target tsrnn_cuda_emu_tests, ctest label cuda_emu.
# It says nothing of speed or of the memory model; the GPU check (scripts/gpu_check.sh) runs the real thing.
# Included by CMakeLists.txt's test section; x86-64 only (the emulation's fibers switch in x86-64 assembly).

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64)$")
  set(emu ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda_emu)
  add_executable(tsrnn_cuda_emu_tests
    ${emu}/cuda_emu.cpp ${emu}/emu_api.c ${emu}/emu_cuda_api.cpp ${emu}/emu_cuda_fwd.cpp ${emu}/emu_cuda_bwd.cpp
    ${emu}/emu_cuda_step.cpp ${emu}/emu_cuda_vs_ref_test.cpp)
  # the emulated <cuda_runtime.h> first; the kernels' private headers as the .cu files see them
  target_include_directories(tsrnn_cuda_emu_tests BEFORE PRIVATE ${emu})
  target_include_directories(tsrnn_cuda_emu_tests PRIVATE kernels/include kernels/common kernels/cuda tests/kernels)
  target_compile_options(tsrnn_cuda_emu_tests PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wno-unknown-pragmas>)
  # emu_api.c defines every symbol of the library's api.c (with the CUDA sizes), so that member is not linked
  target_link_libraries(tsrnn_cuda_emu_tests PRIVATE tsrnn_kernels GTest::gtest GTest::gtest_main)
  gtest_discover_tests(tsrnn_cuda_emu_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS cuda_emu)
endif()
