# Instrumented builds for the reliability checks (Makefile: sanitize-tests, fuzz-smoke, fuzz). Included by
# CMakeLists.txt right after the kernel library tsrnn_kernels is defined. Off unless asked for:
#
#   TSRNN_SANITIZE=address,undefined   every C and C++ file (kernels and tests) compiled and linked with
#                                      -fsanitize=<list> -fno-sanitize-recover=all (UB aborts, so a test fails),
#                                      -g and TSRNN_SANITIZE_OPT (-O1; the Makefile's ASan build uses -O0):
#                                      configure with CMAKE_BUILD_TYPE=Debug so that no -O3 follows. kernels/cpu's
#                                      own -O3 is overridden too: with ASan + UBSan its six variants take several
#                                      times longer to compile at -O3 (minutes on 2 cores).
#   TSRNN_FUZZ=ON                      with clang and TSRNN_SANITIZE=fuzzer-no-link,address,undefined: the
#                                      libFuzzer target tsrnn_fuzz_api (tests/fuzz/fuzz_api.cpp).
#
# kernels/cpu is written for gcc. Under clang (the fuzz build): clang ignores the `#pragma GCC target` that
# cpu_*_avx2.c / _avx512.c use to enable their instruction sets, so those files get the matching -m flags here (they
# only run where cpuid reports the ISA), and every kernels/cpu file gets tests/fuzz/clang_compat.h force-included.

set(TSRNN_SANITIZE "" CACHE STRING "Comma-separated -fsanitize= list for an instrumented build (empty: none)")
set(TSRNN_SANITIZE_OPT "-O1" CACHE STRING "Optimization level of an instrumented build, kernels/cpu included")
option(TSRNN_FUZZ "Build the libFuzzer target tsrnn_fuzz_api (clang; see cmake/sanitize.cmake)" OFF)

if(TSRNN_SANITIZE)
  set(_tsrnn_san "${TSRNN_SANITIZE_OPT} -g -fno-omit-frame-pointer -fsanitize=${TSRNN_SANITIZE} -fno-sanitize-recover=all")
  string(APPEND CMAKE_C_FLAGS " ${_tsrnn_san}")
  string(APPEND CMAKE_CXX_FLAGS " ${_tsrnn_san}")
  string(APPEND CMAKE_EXE_LINKER_FLAGS " -fsanitize=${TSRNN_SANITIZE}")
  set_property(SOURCE ${TSRNN_CPU_SOURCES} APPEND PROPERTY COMPILE_OPTIONS ${TSRNN_SANITIZE_OPT})
  message(STATUS "tsrnn: instrumented build: -fsanitize=${TSRNN_SANITIZE} -fno-sanitize-recover=all ${TSRNN_SANITIZE_OPT}")
endif()

if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  # and the GCC builtins it lacks (tests/fuzz/clang_compat.h)
  set_property(SOURCE ${TSRNN_CPU_SOURCES} APPEND PROPERTY COMPILE_OPTIONS
               -include ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/clang_compat.h)
  foreach(_tsrnn_src ${TSRNN_CPU_SOURCES})
    if(_tsrnn_src MATCHES "_avx512\\.c$")
      set_property(SOURCE ${_tsrnn_src} APPEND PROPERTY COMPILE_OPTIONS -mavx512f -mavx2 -mfma -Wno-unknown-pragmas)
    elseif(_tsrnn_src MATCHES "_avx2\\.c$")
      set_property(SOURCE ${_tsrnn_src} APPEND PROPERTY COMPILE_OPTIONS -mavx2 -mfma -Wno-unknown-pragmas)
    endif()
  endforeach()
endif()

if(TSRNN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "tsrnn: TSRNN_FUZZ=ON needs clang (libFuzzer): configure with CMAKE_C_COMPILER=clang "
                        "CMAKE_CXX_COMPILER=clang++")
  endif()
  add_executable(tsrnn_fuzz_api ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/fuzz_api.cpp)
  target_compile_options(tsrnn_fuzz_api PRIVATE -Wall -Wextra -fsanitize=fuzzer)
  target_link_options(tsrnn_fuzz_api PRIVATE -fsanitize=fuzzer)
  target_link_libraries(tsrnn_fuzz_api PRIVATE tsrnn_kernels)
endif()
