# The layers of airlock, one static library per folder of src/, and what
# each may use. Included by the top CMakeLists.txt.
#
# Headers are included as "module/header.h". No target gets src/ itself on
# its include path: a layer sees
#   - include/ (airlock.h, the engine's one public header), always;
#   - all of its own folder (PRIVATE);
#   - the headers its dependencies export (their PUBLIC_HEADERS), and only
#     those of the dependencies declared below.
# Each view is a folder of symbolic links in the build tree
# (build/layers/{all,pub}/<module>/<module>/...), so a forbidden include
# does not compile: "No such file or directory". tests/layers checks that
# it stays so (and that no include climbs out with "../").
#
#   util                        errors, hashing, durable writes, UTF-8
#   tensor                      types, quant formats, kernels, thread pool
#   gguf -> tensor util
#   tokenizer -> gguf util
#   template -> util
#   model -> gguf tensor tokenizer template util
#   sampling -> tokenizer util
#   = the engine (airlock_engine): include/airlock.h and nothing else
#
#   audit, policy, sandbox -> util          (the guards)
#   store -> audit util                     (no engine)
#   scan -> store, engine; gguf tensor      (reads tensor data of imports)
#   registry -> store util
#   server -> engine, audit policy store util;
#             sampling/grammar.h, its own (see below)
#   cli (the airlock executable) -> engine and every service layer above

set(AL_VIEWS ${CMAKE_BINARY_DIR}/layers)

# Everything every layer needs: include/, the libraries, the version.
add_library(al_base INTERFACE)
target_include_directories(al_base INTERFACE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(al_base INTERFACE PkgConfig::DEPS Threads::Threads m)
target_compile_definitions(al_base INTERFACE AL_VERSION="${PROJECT_VERSION}")

# ISA-specific files (*_avx2.c, *_avx512.c) get their flags here and
# nowhere else. *_avx512.c: AVX-512 F/BW/VL + VNNI (used only after
# al_cpu_has_avx512_vnni()).
file(GLOB_RECURSE AL_AVX2_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/*_avx2.c)
if(AL_AVX2_SOURCES)
  set_source_files_properties(${AL_AVX2_SOURCES} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
endif()
set(AL_AVX512_FLAGS "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni")
file(GLOB_RECURSE AL_AVX512_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/*_avx512.c)
if(AL_AVX512_SOURCES)
  set_source_files_properties(${AL_AVX512_SOURCES} PROPERTIES COMPILE_OPTIONS "${AL_AVX512_FLAGS}")
endif()

# al_layer(NAME [PUBLIC_HEADERS h.h ... | *] [PUBLIC deps...] [PRIVATE deps...])
# Makes the static library al_NAME from src/NAME/*.c. PUBLIC_HEADERS are
# the headers its users may include ("*": every header of the folder, new
# ones too, but the *_int.h ones); the others are its own. PUBLIC deps are those whose headers
# NAME's exported headers include; PRIVATE deps are used by its .c files
# only (their headers do not reach NAME's users).
set(AL_LAYERS "")
function(al_layer name)
  cmake_parse_arguments(L "" "" "PUBLIC_HEADERS;PUBLIC;PRIVATE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.c)
  add_library(al_${name} STATIC ${srcs})

  set(all ${AL_VIEWS}/all/${name})
  file(MAKE_DIRECTORY ${all})
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${name} ${all}/${name} SYMBOLIC)
  set(pub ${AL_VIEWS}/pub/${name})
  file(REMOVE_RECURSE ${pub})
  file(MAKE_DIRECTORY ${pub}/${name})
  if(L_PUBLIC_HEADERS STREQUAL "*")
    file(GLOB L_PUBLIC_HEADERS CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/src/${name}
         ${CMAKE_SOURCE_DIR}/src/${name}/*.h)
    list(FILTER L_PUBLIC_HEADERS EXCLUDE REGEX "_int\\.h$")
  endif()
  foreach(h ${L_PUBLIC_HEADERS})
    if(NOT EXISTS ${CMAKE_SOURCE_DIR}/src/${name}/${h})
      message(FATAL_ERROR "al_layer(${name}): no header src/${name}/${h}")
    endif()
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${name}/${h} ${pub}/${name}/${h} SYMBOLIC)
  endforeach()

  target_include_directories(al_${name} PRIVATE ${all} INTERFACE ${pub})
  target_link_libraries(al_${name} PUBLIC al_base ${L_PUBLIC} PRIVATE ${L_PRIVATE})
  set(AL_LAYERS ${AL_LAYERS} al_${name} PARENT_SCOPE)
endfunction()

# ------------------------------------------------------------------ engine
al_layer(util PUBLIC_HEADERS *)
al_layer(tensor PUBLIC_HEADERS *)
al_layer(gguf PUBLIC_HEADERS * PRIVATE al_tensor al_util)
al_layer(tokenizer PUBLIC_HEADERS vocab.h PUBLIC al_gguf PRIVATE al_util)
al_layer(template PRIVATE al_util)
al_layer(model PRIVATE al_gguf al_tensor al_tokenizer al_template al_util)
al_layer(sampling PUBLIC_HEADERS grammar.h PRIVATE al_tokenizer al_util)

# The engine as the layers above it see it: include/airlock.h, and the
# libraries to link, none of their headers.
add_library(airlock_engine INTERFACE)
target_link_libraries(airlock_engine INTERFACE al_base
  $<LINK_ONLY:al_model> $<LINK_ONLY:al_sampling> $<LINK_ONLY:al_template> $<LINK_ONLY:al_tokenizer>
  $<LINK_ONLY:al_gguf> $<LINK_ONLY:al_tensor> $<LINK_ONLY:al_util>)

# ---------------------------------------------------------------- services
al_layer(audit PUBLIC_HEADERS * PRIVATE al_util)
al_layer(policy PUBLIC_HEADERS * PRIVATE al_util)
al_layer(sandbox PUBLIC_HEADERS * PRIVATE al_util)
al_layer(store PUBLIC_HEADERS * PUBLIC al_util PRIVATE al_audit)
# The import scanner reads tensor data and GGUF metadata of the files it
# checks: the one service layer that uses engine internals (gguf, tensor).
al_layer(scan PUBLIC_HEADERS * PUBLIC al_store PRIVATE al_gguf al_tensor airlock_engine)
al_layer(registry PUBLIC_HEADERS * PUBLIC al_store PRIVATE al_util)
# server.h exports the scheduler's configuration types (sched.h). The
# server's one exception to "the engine only through airlock.h" is
# sampling/grammar.h, private to it: it compiles grammars (GBNF, JSON
# Schema, tool_choice) from requests.
al_layer(server PUBLIC_HEADERS server.h sched.h PUBLIC al_audit al_policy
                PRIVATE al_sampling al_store al_util airlock_engine)

# ------------------------------------------------------------------- cli
file(GLOB AL_CLI_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/cli/*.c)
add_executable(airlock ${AL_CLI_SOURCES})
file(MAKE_DIRECTORY ${AL_VIEWS}/all/cli)
file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/cli ${AL_VIEWS}/all/cli/cli SYMBOLIC)
target_include_directories(airlock PRIVATE ${AL_VIEWS}/all/cli)
target_link_libraries(airlock PRIVATE airlock_engine al_server al_registry al_scan al_store al_audit
                                      al_policy al_sandbox al_util)

# Tests and benchmarks that check internals: every layer, and src/ on the
# include path (any header). Nothing under src/ may link this.
add_library(airlock_lib INTERFACE)
target_include_directories(airlock_lib INTERFACE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(airlock_lib INTERFACE ${AL_LAYERS})
