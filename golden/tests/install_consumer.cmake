# The installed package from a consumer's side: installs this build into a fresh prefix, configures
# golden/examples/cmake_consumer against it with find_package(nsa_verify CONFIG REQUIRED) (same
# generator, compiler, flags and build type as this build), builds and runs it; then runs the
# installed `nsa` on the installed golden data.
# Usage: cmake -DBUILD_DIR=<build> -DCONFIG=<build type> -DWORK=<dir> -DCONSUMER=<source dir>
#              -DGENERATOR=<gen> -DCC=<compiler> -DCXX=<compiler> -DC_FLAGS=<flags>
#              -DCXX_FLAGS=<flags> -DLINK_FLAGS=<flags>
#              -DBIN_SUBDIR=<bin> -DGOLDEN_SUBDIR=<share/nsa_verify/golden> [-DCUDA_ROOT=<toolkit>]
#              -P install_consumer.cmake
file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)

# run(<step> <command...>): runs it, prints its output, stops the test when it fails.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message(STATUS "${step}: exit ${rc}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (exit ${rc}): ${ARGN}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# expect(<text>): the last step's output must contain it.
function(expect text)
  string(FIND "${last_output}" "${text}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "expected '${text}' in the output above")
  endif()
endfunction()

set(config_args "")
set(build_type_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
  set(build_type_args -DCMAKE_BUILD_TYPE=${CONFIG})
endif()
set(cuda_hint "")
if(CUDA_ROOT)
  set(cuda_hint -DCUDAToolkit_ROOT=${CUDA_ROOT})
endif()

run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} ${config_args} --prefix ${prefix})
set(golden_dir ${prefix}/${GOLDEN_SUBDIR})
file(GLOB golden_files ${golden_dir}/*.h5)
list(LENGTH golden_files n)
if(n LESS 4 OR NOT EXISTS ${golden_dir}/SCHEMA.md)
  message(FATAL_ERROR "installed golden data: ${n} .h5 files in ${golden_dir}, want the 4 "
                      "committed suites and SCHEMA.md")
endif()

# The package registry is off so that only the fresh prefix can satisfy find_package.
run("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER} -B ${WORK}/build -G ${GENERATOR}
    ${build_type_args} -DCMAKE_C_COMPILER=${CC} -DCMAKE_CXX_COMPILER=${CXX}
    "-DCMAKE_C_FLAGS=${C_FLAGS}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}" -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${cuda_hint})
expect("nsa_verify 0.")
expect("in ${prefix}/")
expect("golden data in ${golden_dir}")
run("build consumer" ${CMAKE_COMMAND} --build ${WORK}/build ${config_args})
run("run consumer" ${WORK}/build/nsa_consumer)
expect("golden file ${golden_dir}/smoke.h5")
expect("correct candidate (reference, f64): PASS (must pass)")
expect("wrong candidate (window of the other window_keys convention): FAIL (must fail)")
expect("nsa_consumer: every verdict as expected")

# The installed program runs from the prefix (its RPATH finds cuBLAS where it was linked).
run("installed nsa" ${prefix}/${BIN_SUBDIR}/nsa golden inspect ${golden_dir}/smoke.h5)
expect("suite smoke,")
