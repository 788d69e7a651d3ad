# patronus_add_plugin(<name> SOURCES ... [PROTO file.proto] [TEST] [LIBS ...])
#
# Builds build/plugins/libpatronus-<name>.so (or build/test-plugins/ with TEST): hidden
# visibility, -Wl,-z,defs, linked against the ABI headers and the SDK only. With PROTO, the C++
# code for the config message is generated and a serialized FileDescriptorSet is embedded as
# `patronus_embedded_schema` / `patronus_embedded_schema_size` for the descriptor.
function(patronus_add_plugin name)
  cmake_parse_arguments(P "TEST" "PROTO" "SOURCES;LIBS" ${ARGN})
  set(target patronus-plugin-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME patronus-${name}
    PREFIX lib
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(P_TEST)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PATRONUS_TEST_PLUGIN_OUTPUT_DIR})
  else()
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PATRONUS_PLUGIN_OUTPUT_DIR})
  endif()
  target_link_options(${target} PRIVATE -Wl,-z,defs)
  target_link_libraries(${target} PRIVATE patronus::sdk ${P_LIBS})
  if(P_PROTO)
    get_filename_component(proto_abs ${P_PROTO} ABSOLUTE)
    get_filename_component(proto_dir ${proto_abs} DIRECTORY)
    get_filename_component(proto_we ${proto_abs} NAME_WE)
    set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}-gen)
    file(MAKE_DIRECTORY ${gen_dir})
    set(desc ${gen_dir}/${proto_we}.desc)
    set(schema_c ${gen_dir}/${proto_we}_schema.c)
    add_custom_command(
      OUTPUT ${gen_dir}/${proto_we}.pb.cc ${gen_dir}/${proto_we}.pb.h ${desc}
      COMMAND protobuf::protoc --cpp_out=${gen_dir} --descriptor_set_out=${desc} --include_imports
              -I ${proto_dir} ${proto_abs}
      DEPENDS ${proto_abs} protobuf::protoc
      COMMENT "protoc ${P_PROTO} (${name})")
    add_custom_command(
      OUTPUT ${schema_c}
      COMMAND ${CMAKE_COMMAND} -DIN=${desc} -DOUT=${schema_c} -P ${PROJECT_SOURCE_DIR}/cmake/EmbedBytes.cmake
      DEPENDS ${desc} ${PROJECT_SOURCE_DIR}/cmake/EmbedBytes.cmake
      COMMENT "embed config schema (${name})")
    target_sources(${target} PRIVATE ${gen_dir}/${proto_we}.pb.cc ${schema_c})
    target_include_directories(${target} PRIVATE ${gen_dir})
    target_link_libraries(${target} PRIVATE protobuf::libprotobuf)
    # generated code is not ours to warn about
    set_source_files_properties(${gen_dir}/${proto_we}.pb.cc PROPERTIES COMPILE_OPTIONS "-w")
  endif()
endfunction()
