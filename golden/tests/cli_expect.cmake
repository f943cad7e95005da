# expect(<exit code> <text the output must contain> <args...>): runs ${NSA} with the arguments and
# reports (SEND_ERROR) an exit code or an output that differ. Included by the CLI check scripts.
function(expect code text)
  execute_process(COMMAND ${NSA} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  string(FIND "${out}${err}" "${text}" pos)
  if(NOT rc STREQUAL "${code}" OR pos EQUAL -1)
    message(SEND_ERROR "nsa ${ARGN}: exit ${rc} (want ${code}), output must contain '${text}':\n${out}${err}")
  else()
    message(STATUS "ok: nsa ${ARGN} -> ${rc}")
  endif()
endfunction()

# expect_absent(<text> <args...>): the output must not contain the text (any exit code).
function(expect_absent text)
  execute_process(COMMAND ${NSA} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  string(FIND "${out}${err}" "${text}" pos)
  if(NOT pos EQUAL -1)
    message(SEND_ERROR "nsa ${ARGN}: output must not contain '${text}':\n${out}${err}")
  else()
    message(STATUS "ok: nsa ${ARGN} (no '${text}')")
  endif()
endfunction()
