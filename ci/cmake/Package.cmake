# The installed CMake package `nsa_verify` (README, "Using it from another CMake project"). The
# components install their libraries with nsa_install_library() into the export set
# nsa_verifyTargets; nsa_install_package(), called by the top-level CMakeLists.txt after every
# component, installs that set (nsa_verify::ref, nsa_verify::golden, nsa_verify::cuda where the
# kernels are built, the program nsa_verify::nsa), a config file that finds their dependencies and
# names the golden data directory, and a version file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(NSA_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nsa_verify)
# Where the committed golden set goes (nsa_verify_GOLDEN_DIR of the package).
set(NSA_INSTALL_GOLDEN_DIR ${CMAKE_INSTALL_DATADIR}/nsa_verify/golden)

# A component's library, exported as nsa_verify::<name>, with its public headers (the include/
# directory beside the calling CMakeLists.txt).
function(nsa_install_library target name)
  add_library(nsa_verify::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  install(TARGETS ${target} EXPORT nsa_verifyTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT nsa_verify_development
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT nsa_verify_development
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          COMPONENT nsa_verify_development)
endfunction()

function(nsa_install_package)
  install(EXPORT nsa_verifyTargets NAMESPACE nsa_verify:: DESTINATION ${NSA_INSTALL_CMAKE_DIR}
          COMPONENT nsa_verify_development)
  # Whether nsa_verify::cuda exists and CUDAToolkit is needed; NSA_INSTALL_GOLDEN_DIR becomes
  # nsa_verify_GOLDEN_DIR, relative to the install prefix.
  if(NSA_HAVE_CUDA)
    set(NSA_PACKAGE_HAS_CUDA TRUE)
  else()
    set(NSA_PACKAGE_HAS_CUDA FALSE)
  endif()
  configure_package_config_file(${PROJECT_SOURCE_DIR}/ci/cmake/nsa_verifyConfig.cmake.in
                                ${PROJECT_BINARY_DIR}/nsa_verifyConfig.cmake
                                INSTALL_DESTINATION ${NSA_INSTALL_CMAKE_DIR}
                                PATH_VARS NSA_INSTALL_GOLDEN_DIR)
  # Before 1.0 a minor version may change the API: 0.1.x accepts requests for 0.1.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/nsa_verifyConfigVersion.cmake
                                   VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/nsa_verifyConfig.cmake
                ${PROJECT_BINARY_DIR}/nsa_verifyConfigVersion.cmake
          DESTINATION ${NSA_INSTALL_CMAKE_DIR} COMPONENT nsa_verify_development)
endfunction()
