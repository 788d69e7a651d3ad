# patronus_add_plugin(<name> SOURCES ... [PROTO dir/file.proto] [PROTO_ROOT dir] [LIBS ...]
#                     [MIN_ABI_MINOR n])
#
# Builds the plugin lib<OUTPUT>patronus-<name>.so as a MODULE: hidden visibility, -Wl,-z,defs
# (every symbol resolved at link time), linked against the ABI header and the SDK only (plus
# LIBS). The same function serves the project's own plugins and, installed with the SDK
# (find_package(Patronus)), a vendor's out-of-tree build.
#
# PROTO: the plugin's configuration message. Its path relative to PROTO_ROOT (default: the
# current source directory) is the name libprotobuf registers it under, in one pool shared by
# every library in the process; give it a path of your own (acme/scorer/v1/config.proto), never a
# bare name. The C++ code is generated (include it as "acme/scorer/v1/config.pb.h") and the
# serialized FileDescriptorSet is embedded in the section .patronus.schema, where the host reads
# it before loading the file and refuses a plugin whose files or message names are taken.
#
# MIN_ABI_MINOR: the oldest host ABI minor (1.n) the plugin runs on; default: the minor of the
# installed header. See PATRONUS_SDK_MIN_ABI_MINOR in patronus/sdk/plugin.hpp.
#
# In the project, TEST puts the library into build/test-plugins/ instead of build/plugins/.
set(PATRONUS_PLUGIN_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})

function(patronus_add_plugin name)
  cmake_parse_arguments(P "TEST" "PROTO;PROTO_ROOT;MIN_ABI_MINOR" "SOURCES;LIBS" ${ARGN})
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "patronus_add_plugin(${name}): unknown arguments ${P_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT name MATCHES "^[a-z0-9-]+$")
    message(FATAL_ERROR "patronus_add_plugin(${name}): a plugin name is [a-z0-9-]")
  endif()
  set(target patronus-plugin-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME patronus-${name}
    PREFIX lib
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(P_TEST AND DEFINED PATRONUS_TEST_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PATRONUS_TEST_PLUGIN_OUTPUT_DIR})
  elseif(DEFINED PATRONUS_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PATRONUS_PLUGIN_OUTPUT_DIR})
  endif()
  target_link_options(${target} PRIVATE -Wl,-z,defs)
  if(DEFINED P_MIN_ABI_MINOR)
    if(NOT P_MIN_ABI_MINOR MATCHES "^[0-9]+$")
      message(FATAL_ERROR "patronus_add_plugin(${name}): MIN_ABI_MINOR is a number (the n of 1.n)")
    endif()
    target_compile_definitions(${target} PRIVATE PATRONUS_SDK_MIN_ABI_MINOR=${P_MIN_ABI_MINOR})
  endif()
  target_link_libraries(${target} PRIVATE Patronus::sdk ${P_LIBS})
  if(P_PROTO)
    if(NOT P_PROTO_ROOT)
      set(P_PROTO_ROOT ${CMAKE_CURRENT_SOURCE_DIR})
    endif()
    get_filename_component(root_abs ${P_PROTO_ROOT} ABSOLUTE)
    get_filename_component(proto_abs ${P_PROTO} ABSOLUTE)
    file(RELATIVE_PATH proto_rel ${root_abs} ${proto_abs})
    if(proto_rel MATCHES "^\\.\\./")
      message(FATAL_ERROR "patronus_add_plugin(${name}): ${P_PROTO} is outside PROTO_ROOT ${root_abs}")
    endif()
    if(NOT proto_rel MATCHES "/")
      message(WARNING "patronus_add_plugin(${name}): ${proto_rel} is registered under a bare name; "
        "any other library with a file of that name collides with it and the host refuses the "
        "second one. Put it under a path of your own (<vendor>/<plugin>/v1/${proto_rel}).")
    endif()
    string(REGEX REPLACE "\\.proto$" "" proto_stem ${proto_rel})
    get_filename_component(proto_we ${proto_abs} NAME_WE)
    set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}-gen)
    file(MAKE_DIRECTORY ${gen_dir})
    set(desc ${gen_dir}/${proto_we}.desc)
    set(schema_c ${gen_dir}/${proto_we}_schema.c)
    add_custom_command(
      OUTPUT ${gen_dir}/${proto_stem}.pb.cc ${gen_dir}/${proto_stem}.pb.h ${desc}
      COMMAND protobuf::protoc --cpp_out=${gen_dir} --descriptor_set_out=${desc} --include_imports
              -I ${root_abs} ${proto_abs}
      DEPENDS ${proto_abs} protobuf::protoc
      COMMENT "protoc ${proto_rel} (${name})")
    add_custom_command(
      OUTPUT ${schema_c}
      COMMAND ${CMAKE_COMMAND} -DIN=${desc} -DOUT=${schema_c} -P ${PATRONUS_PLUGIN_CMAKE_DIR}/EmbedBytes.cmake
      DEPENDS ${desc} ${PATRONUS_PLUGIN_CMAKE_DIR}/EmbedBytes.cmake
      COMMENT "embed config schema (${name})")
    target_sources(${target} PRIVATE ${gen_dir}/${proto_stem}.pb.cc ${schema_c})
    # The schema file is C that also compiles as C++: a project that enabled only CXX (where
    # CMake would silently skip a .c source) builds it as C++.
    get_property(languages GLOBAL PROPERTY ENABLED_LANGUAGES)
    if(NOT "C" IN_LIST languages)
      set_source_files_properties(${schema_c} PROPERTIES LANGUAGE CXX)
    endif()
    target_include_directories(${target} PRIVATE ${gen_dir})
    target_link_libraries(${target} PRIVATE protobuf::libprotobuf)
    # generated code is not ours to warn about
    set_source_files_properties(${gen_dir}/${proto_stem}.pb.cc PROPERTIES COMPILE_OPTIONS "-w")
  endif()
endfunction()
