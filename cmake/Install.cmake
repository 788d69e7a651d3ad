# cmake --install: the binaries, the shipped plugins, and the SDK a vendor builds and tests a
# plugin with (docs/guides/plugin-authoring.md):
#   bin/patronus, bin/patronusd, bin/patronus-sim
#   lib/patronus/plugins/libpatronus-<name>.so      the shipped plugins
#   include/patronus/abi/plugin_abi.h                the C ABI (the one header a plugin needs)
#   include/patronus/sdk/*.hpp                       the header-only C++ SDK
#   include/patronus/trial/plugin_trial.hpp          + lib/libpatronus-trial.so: a plugin test
#   include/patronus/util/status.hpp                 (Status/Result, used by the trial API)
#   lib/cmake/Patronus/                              find_package(Patronus): Patronus::sdk,
#                                                    Patronus::trial, patronus_add_plugin()
#   lib/pkgconfig/patronus-sdk.pc                    the same for other build systems
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Not LIBDIR: the CLI and the daemons look for plugins at <prefix>/lib/patronus/plugins, beside
# bin/, whatever the distribution's multiarch directory is.
set(PATRONUS_INSTALL_PLUGIN_DIR lib/patronus/plugins)
set(PATRONUS_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Patronus)

install(TARGETS patronus patronusd patronus-controller RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET patronus-sim)
  install(TARGETS patronus-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
foreach(p IN LISTS PATRONUS_SHIPPED_PLUGINS)
  install(TARGETS patronus-plugin-${p} LIBRARY DESTINATION ${PATRONUS_INSTALL_PLUGIN_DIR})
endforeach()

install(FILES framework/include/patronus/abi/plugin_abi.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/patronus/abi)
install(DIRECTORY framework/include/patronus/sdk
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/patronus FILES_MATCHING PATTERN "*.hpp")
install(FILES framework/include/patronus/trial/plugin_trial.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/patronus/trial)
install(FILES framework/include/patronus/util/status.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/patronus/util)

set_target_properties(patronus_abi PROPERTIES EXPORT_NAME abi)
set_target_properties(patronus_sdk PROPERTIES EXPORT_NAME sdk)
set_target_properties(patronus_trial_shared PROPERTIES EXPORT_NAME trial)
install(TARGETS patronus_abi patronus_sdk patronus_trial_shared EXPORT PatronusTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT PatronusTargets NAMESPACE Patronus:: DESTINATION ${PATRONUS_INSTALL_CMAKE_DIR})

configure_package_config_file(cmake/PatronusConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/PatronusConfig.cmake
  INSTALL_DESTINATION ${PATRONUS_INSTALL_CMAKE_DIR}
  PATH_VARS PATRONUS_INSTALL_PLUGIN_DIR CMAKE_INSTALL_BINDIR)
# The ABI's rule is the package's: a host runs plugins of its major built against its minor or
# an older one (ADR 0001).
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/PatronusConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/PatronusConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/PatronusConfigVersion.cmake
  cmake/PatronusPlugin.cmake cmake/EmbedBytes.cmake
  DESTINATION ${PATRONUS_INSTALL_CMAKE_DIR})

configure_file(cmake/patronus-sdk.pc.in ${CMAKE_CURRENT_BINARY_DIR}/patronus-sdk.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/patronus-sdk.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
