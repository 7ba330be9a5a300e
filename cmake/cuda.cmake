# The CUDA kernels (kernels/cuda) and the CUDA registration of the ops (shim/ops_cuda.cpp).
# Included by CMakeLists.txt right after the kernel library tsrnn_kernels is defined.
#
#   TSRNN_WITH_CUDA=AUTO (default)  ON when the installed torch is a CUDA build (torch.version.cuda is set; never
#                                   decided by torch.cuda.is_available(), so a GPU-less build machine works)
#   TSRNN_WITH_CUDA=ON / OFF        forced
#
# ON: kernels/cuda/*.cu (sm_90) go into tsrnn_kernels, shim/ops_cuda.cpp into the shim, and the GoogleTest binary
# tsrnn_cuda_tests (cuda vs ref) is built when tests are.
# Always, when nvcc exists (also with a CPU torch, as on the project machines and CI): the target
# tsrnn_cuda_compile_check, part of ALL, compiles every kernels/cuda/*.cu with nvcc for sm_90 (and, with GoogleTest,
# the CUDA test; with the shim, shim/ops_cuda.cpp against the installed torch's headers), so a CUDA compile error
# fails `make test` even where nothing CUDA can run.

set(TSRNN_WITH_CUDA "AUTO" CACHE STRING "Build the CUDA kernels and registration: AUTO (if torch has CUDA), ON, OFF")
set_property(CACHE TSRNN_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)

include(CheckLanguage)
check_language(CUDA) # CMAKE_CUDA_COMPILER: nvcc, or NOTFOUND

# ---- resolve AUTO -------------------------------------------------------------------------------------------
set(TSRNN_CUDA_ENABLED OFF)
if(TSRNN_WITH_CUDA STREQUAL "AUTO")
  if(DEFINED TSRNN_TORCH_CUDA) # cmake/torch.cmake asked already (the shim is built)
    set(_tsrnn_torch_cuda "${TSRNN_TORCH_CUDA}")
  else()
    find_package(Python3 QUIET COMPONENTS Interpreter)
    set(_tsrnn_torch_cuda "")
    if(Python3_Interpreter_FOUND)
      execute_process(
        COMMAND "${Python3_EXECUTABLE}" -c "import torch; print(torch.version.cuda or '')"
        OUTPUT_VARIABLE _tsrnn_torch_cuda OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _tsrnn_rc)
      if(NOT _tsrnn_rc EQUAL 0)
        set(_tsrnn_torch_cuda "")
      endif()
    endif()
  endif()
  if(_tsrnn_torch_cuda)
    if(CMAKE_CUDA_COMPILER)
      set(TSRNN_CUDA_ENABLED ON)
      message(STATUS "tsrnn: torch has CUDA ${_tsrnn_torch_cuda}: building the CUDA kernels (TSRNN_WITH_CUDA=AUTO)")
    else()
      message(WARNING "tsrnn: torch has CUDA ${_tsrnn_torch_cuda} but no nvcc was found: CUDA kernels not built")
    endif()
  else()
    message(STATUS "tsrnn: torch has no CUDA (or was not found): CUDA kernels not built (TSRNN_WITH_CUDA=AUTO)")
  endif()
elseif(TSRNN_WITH_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "tsrnn: TSRNN_WITH_CUDA=ON but no CUDA compiler (nvcc) was found; set CUDACXX")
  endif()
  set(TSRNN_CUDA_ENABLED ON)
  message(STATUS "tsrnn: building the CUDA kernels (TSRNN_WITH_CUDA=ON)")
endif()

# ---- nvcc targets -------------------------------------------------------------------------------------------
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  file(GLOB TSRNN_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/kernels/cuda/*.cu)

  # The kernel objects (sm_90, C++17: CMake 3.25 knows no CUDA20; accurate math: no --use_fast_math).
  function(tsrnn_cuda_object_library name)
    add_library(${name} OBJECT ${ARGN})
    target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/kernels/include
                                               ${CMAKE_CURRENT_SOURCE_DIR}/kernels/common)
    set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES 90 CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                             POSITION_INDEPENDENT_CODE ON)
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  endfunction()

  if(TSRNN_CUDA_ENABLED)
    tsrnn_cuda_object_library(tsrnn_cuda_objects ${TSRNN_CUDA_SOURCES})
    target_sources(tsrnn_kernels PRIVATE $<TARGET_OBJECTS:tsrnn_cuda_objects>)
    target_compile_definitions(tsrnn_kernels PRIVATE TSRNN_WITH_CUDA=1) # api.c: the CUDA workspace sizes
    target_link_libraries(tsrnn_kernels PUBLIC CUDA::cudart)
    # tsrnn_kernels was made before CUDA was enabled: give it the CUDA properties its objects were built with
    set_target_properties(tsrnn_kernels PROPERTIES CUDA_ARCHITECTURES 90 CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
    add_custom_target(tsrnn_cuda_compile_check ALL DEPENDS tsrnn_cuda_objects)
  else()
    tsrnn_cuda_object_library(tsrnn_cuda_compile_check ${TSRNN_CUDA_SOURCES})
  endif()
endif()

# ---- the shim and the tests: defined further down CMakeLists.txt, so finished at the end of the directory ----
function(tsrnn_cuda_finish)
  set(src ${CMAKE_CURRENT_SOURCE_DIR})
  if(TARGET tsrnn_shim)
    if(TSRNN_CUDA_ENABLED)
      target_sources(tsrnn_shim PRIVATE ${src}/shim/ops_cuda.cpp)
      tsrnn_torch_cuda_libraries(_tsrnn_torch_cuda_libs)
      target_link_libraries(tsrnn_shim PRIVATE ${_tsrnn_torch_cuda_libs})
    elseif(CMAKE_CUDA_COMPILER)
      # CPU torch: the CUDA registration is compiled (its CUDA-only torch symbol is declared by the file itself)
      # but not linked, so its compile errors show up here too.
      add_library(tsrnn_shim_cuda_compile_check OBJECT ${src}/shim/ops_cuda.cpp)
      target_include_directories(tsrnn_shim_cuda_compile_check PRIVATE ${src}/kernels/include)
      target_link_libraries(tsrnn_shim_cuda_compile_check PRIVATE tsrnn::torch)
      target_compile_definitions(tsrnn_shim_cuda_compile_check PRIVATE TORCH_TARGET_VERSION=0x020a000000000000)
      target_compile_options(tsrnn_shim_cuda_compile_check PRIVATE -Wall -Wextra)
      add_dependencies(tsrnn_cuda_compile_check tsrnn_shim_cuda_compile_check)
    endif()
  endif()

  if(TSRNN_BUILD_TESTS AND TARGET GTest::gtest AND CMAKE_CUDA_COMPILER)
    set(test_src ${src}/tests/kernels/cuda_vs_ref_test.cu)
    if(TSRNN_CUDA_ENABLED)
      add_executable(tsrnn_cuda_tests ${test_src})
      target_include_directories(tsrnn_cuda_tests PRIVATE ${src}/kernels/common ${src}/kernels/cuda ${src}/tests/kernels)
      set_target_properties(tsrnn_cuda_tests PROPERTIES CUDA_ARCHITECTURES 90 CUDA_STANDARD 17
                                                        CUDA_STANDARD_REQUIRED ON)
      target_link_libraries(tsrnn_cuda_tests PRIVATE tsrnn_kernels CUDA::cudart GTest::gtest GTest::gtest_main)
      gtest_discover_tests(tsrnn_cuda_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS cuda)
    else()
      add_library(tsrnn_cuda_test_compile_check OBJECT ${test_src})
      target_include_directories(tsrnn_cuda_test_compile_check PRIVATE ${src}/kernels/include ${src}/kernels/common
                                                                       ${src}/kernels/cuda ${src}/tests/kernels)
      set_target_properties(tsrnn_cuda_test_compile_check PROPERTIES CUDA_ARCHITECTURES 90 CUDA_STANDARD 17
                                                                      CUDA_STANDARD_REQUIRED ON)
      target_link_libraries(tsrnn_cuda_test_compile_check PRIVATE GTest::gtest)
      add_dependencies(tsrnn_cuda_compile_check tsrnn_cuda_test_compile_check)
    endif()
  endif()
endfunction()
cmake_language(DEFER CALL tsrnn_cuda_finish)
