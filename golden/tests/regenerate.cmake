# Regenerates one committed golden suite and requires the same content as golden/data/SUITE.h5
# (every dataset's bytes and every attribute; file bytes may differ with the HDF5 version).
# Usage: cmake -DNSA=<nsa> -DSUITE=<name> -DDATA_DIR=<dir> -DOUT_DIR=<dir> -P regenerate.cmake
file(MAKE_DIRECTORY ${OUT_DIR})
set(fresh ${OUT_DIR}/${SUITE}.h5)
execute_process(COMMAND ${NSA} golden generate --suite ${SUITE} --out ${fresh}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
message(STATUS "${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "generating suite ${SUITE} failed (${rc})")
endif()
execute_process(COMMAND ${NSA} golden diff ${DATA_DIR}/${SUITE}.h5 ${fresh}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR
          "golden/data/${SUITE}.h5 is not what the current code generates:\n${out}${err}\n"
          "If the change of semantics is intended, regenerate it with\n"
          "  nsa golden generate --suite ${SUITE} --out golden/data/${SUITE}.h5\n"
          "and commit the new file with the change.")
endif()
message(STATUS "${out}")
