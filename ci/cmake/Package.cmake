# The installed CMake package `nsa_verify` (README, "Using NSA Verify from another CMake project"):
# the targets that the components put into the export set nsa_verifyTargets (nsa_verify::ref,
# nsa_verify::golden, nsa_verify::cuda where the kernels are built, the program nsa_verify::nsa),
# a config file that finds their dependencies and names the golden data directory, and a version
# file. Included by the top-level CMakeLists.txt after every component.
include(CMakePackageConfigHelpers)

set(NSA_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nsa_verify)

install(EXPORT nsa_verifyTargets NAMESPACE nsa_verify:: DESTINATION ${NSA_INSTALL_CMAKE_DIR}
        COMPONENT nsa_verify_development)

# Whether nsa_verify::cuda exists and CUDAToolkit is needed; NSA_INSTALL_GOLDEN_DIR becomes
# nsa_verify_GOLDEN_DIR, relative to the install prefix.
if(NSA_HAVE_CUDA)
  set(NSA_PACKAGE_HAS_CUDA TRUE)
else()
  set(NSA_PACKAGE_HAS_CUDA FALSE)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nsa_verifyConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/nsa_verifyConfig.cmake
                              INSTALL_DESTINATION ${NSA_INSTALL_CMAKE_DIR}
                              PATH_VARS NSA_INSTALL_GOLDEN_DIR)
# Before 1.0 a minor version may change the API: 0.1.x accepts requests for 0.1.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nsa_verifyConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nsa_verifyConfig.cmake
              ${PROJECT_BINARY_DIR}/nsa_verifyConfigVersion.cmake
        DESTINATION ${NSA_INSTALL_CMAKE_DIR} COMPONENT nsa_verify_development)
