# The nsa golden / verify command lines: bad arguments exit with 2 and name the argument; damaged
# or mismatching files exit with 1 (`golden check`: 2, nothing judged; 1 is a failed candidate);
# the normal paths exit with 0.
# Usage: cmake -DNSA=<nsa> -DWORK=<dir> -P cli_checks.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(WRITE ${WORK}/good.json "{\"profile\": \"canonical\", \"t_k\": 70, \"h_q\": 2, \"top_n\": 3, \"window\": 16}")
file(WRITE ${WORK}/bad.json "{\"t_k\": \"seventy\"}")
file(WRITE ${WORK}/invalid.json "{\"h_q\": 3, \"h_kv\": 2}")
set(failures 0)

include(${CMAKE_CURRENT_LIST_DIR}/cli_expect.cmake)

# The program lists the commands of every component (golden/cli/nsa_main.cpp assembles them).
foreach(command IN ITEMS golden verify bench fuzz)
  expect(0 "  ${command} " --help)
endforeach()
expect(2 "unknown command 'nope'" nope)

set(out ${WORK}/x.h5)
expect(2 "usage" golden)
expect(2 "unknown subcommand 'make'" golden make)
expect(2 "unknown suite 'nope'" golden generate --suite nope --out ${out})
expect(2 "--out FILE.h5 is required" golden generate --suite smoke)
expect(2 "exactly one of --suite" golden generate --suite smoke --config ${WORK}/good.json --out ${out})
expect(2 "exactly one of --suite" golden generate --out ${out})
expect(2 "--precision = 'f32': expected f128|bin50|f64" golden generate --suite smoke --precision f32 --out ${out})
expect(2 "--seed = 'abc'" golden generate --suite smoke --seed abc --out ${out})
expect(2 "--seed = '-1'" golden generate --suite smoke --seed -1 --out ${out})
expect(2 "--threads = '0.5'" golden generate --suite smoke --threads 0.5 --out ${out})
expect(2 "--profile applies to --config only" golden generate --suite smoke --profile fla --out ${out})
expect(2 "unknown option --bogus" golden generate --suite smoke --bogus 1 --out ${out})
expect(2 "--out needs a value" golden generate --suite smoke --out)
expect(2 "--suite given twice" golden generate --suite smoke --suite fla --out ${out})
expect(2 "cannot open the file" golden generate --config ${WORK}/absent.json --out ${out})
expect(2 "field 't_k'" golden generate --config ${WORK}/bad.json --out ${out})
expect(2 "h_q" golden generate --config ${WORK}/invalid.json --out ${out})
expect(2 "unknown profile" golden generate --config ${WORK}/good.json --profile flash --out ${out})
expect(2 "expected two files" golden check ${out})
expect(2 "--alpha = '-1'" golden check --alpha -1 a.h5 b.h5)
expect(2 "expected one file" golden inspect)
expect(2 "unknown suite 'nope'" verify --suite nope)
expect(2 "unexpected argument 'extra'" verify extra)
expect(2 "--case: no case 'nope' in suite smoke" verify --case nope)
# A canonical case that carries no backward (a long length sweep): the forward is verified and
# the backward is reported as not part of the case, not failed.
expect(0 "backward: not part of this case" verify --suite canonical --case 000_lengths_pow2_boundaries_suffix3_fp32)
expect(1 "absent.h5" golden inspect ${WORK}/absent.h5)
expect(1 "not an HDF5 file" golden inspect ${WORK}/good.json)

expect(0 "generated 1 cases" golden generate --config ${WORK}/good.json --precision f64 --out ${WORK}/g1.h5)
expect(0 "generated 1 cases" golden generate --config ${WORK}/good.json --precision f64 --seed 2 --out ${WORK}/g2.h5)
expect(0 "generated 1 cases" golden generate --config ${WORK}/good.json --profile nsa_triton --precision f64 --out ${WORK}/g3.h5)
expect(0 "window_keys=w_plus_one" golden inspect ${WORK}/g3.h5)
expect(0 "suite config, 1 cases" golden inspect ${WORK}/g1.h5)
# A decode row reading a given compressed cache (cmp_given): generated, inspected, judged.
file(WRITE ${WORK}/cache.json "{\"t_k\": 70, \"t_q\": 1, \"h_q\": 2, \"top_n\": 3, \"window\": 16, \"cmp_given\": true}")
expect(0 "generated 1 cases" golden generate --config ${WORK}/cache.json --precision f64 --out ${WORK}/g4.h5)
expect(0 "cmp_given=1" golden inspect ${WORK}/g4.h5)
expect(0 "1 cases passed, 0 failed" golden check ${WORK}/g4.h5 ${WORK}/g4.h5)
expect(0 "1 cases passed, 0 failed" golden check ${WORK}/g1.h5 ${WORK}/g1.h5)
# The file holds the forward (o, lse and o of each branch, indices: 8 tensors) and the gradients
# (dq; dK, dV, dg of each branch: 10 under the canonical profile's mean phi, no shared K/V).
expect(0 "18 tensors checked, 10 of them gradients" golden check ${WORK}/g1.h5 ${WORK}/g1.h5)
expect(0 "same content" golden diff ${WORK}/g1.h5 ${WORK}/g1.h5)
expect(2 "nothing was judged" golden check ${WORK}/absent.h5 ${WORK}/g1.h5)
expect(2 "nothing was judged" golden check ${WORK}/g1.h5 ${WORK}/absent.h5)
expect(2 "not an HDF5 file" golden check ${WORK}/g1.h5 ${WORK}/good.json)
# Outputs of other inputs (seed 2) must fail against seed 1's truth.
expect(1 "0 cases passed, 1 failed" golden check ${WORK}/g1.h5 ${WORK}/g2.h5)
expect(1 "differences" golden diff ${WORK}/g1.h5 ${WORK}/g2.h5)
