# Third-party libraries: Debian's shared libraries, or static archives for the binaries
# that are shipped (issues 11 and 12: RSS).
#
# pkg/ links the dpcm_dep_* targets below, never Debian's imported targets directly. Each
# resolves per executable: one whose DPCM_STATIC property is ON (dpcm_static_executable)
# links static archives; every other target (tests, tools) links Debian's shared libraries
# as before. Both variants compile against the same installed headers with the same
# definitions, so pkg/'s objects are the same either way.
#
# Why static: RSS counts the pages of every mapped library that startup touches. The shared
# build maps libcrypto (3 MiB resident although TLS is used once), libstdc++, libssl,
# libcpp-httplib, libspdlog, libfmt, libyaml-cpp and libprometheus-cpp-core whole pages at
# a time; a static binary maps only what it links, and only once.
#
# Debian ships OpenSSL, zlib, yaml-cpp, libstdc++ and glibc as .a files but cpp-httplib,
# prometheus-cpp, spdlog and fmt only as shared libraries: those four are compiled here
# from Debian's own sources at the installed versions (hack/static-sources.sh fetches them).

find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(prometheus-cpp REQUIRED)
find_package(Threads REQUIRED)

option(DPCM_STATIC_LINK "Link dpcm-operator and dpcm-agent as static executables" ON)
if(DEFINED ENV{DPCM_CACHE})
  set(dpcm_cache "$ENV{DPCM_CACHE}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(dpcm_cache "$ENV{XDG_CACHE_HOME}/dpcm")
else()
  set(dpcm_cache "$ENV{HOME}/.cache/dpcm")
endif()
set(DPCM_STATIC_SOURCES "${dpcm_cache}/src/static" CACHE PATH
    "Unpacked Debian sources of cpp-httplib, prometheus-cpp, spdlog and fmtlib (hack/static-sources.sh)")

set(dpcm_static_archives ssl crypto z yaml-cpp)
set(dpcm_static_ok FALSE)
if(DPCM_STATIC_LINK)
  set(dpcm_static_ok TRUE)
  foreach(lib IN LISTS dpcm_static_archives)
    find_library(DPCM_STATIC_LIB_${lib} NAMES lib${lib}.a)
    if(NOT DPCM_STATIC_LIB_${lib})
      message(WARNING "DPCM_STATIC_LINK: lib${lib}.a not found (its Debian -dev package ships it)")
      set(dpcm_static_ok FALSE)
    endif()
  endforeach()
  foreach(src IN ITEMS cpp-httplib/split.py prometheus-cpp/core/src/registry.cc
                       spdlog/src/spdlog.cpp fmtlib/src/format.cc)
    if(NOT EXISTS "${DPCM_STATIC_SOURCES}/${src}")
      message(WARNING "DPCM_STATIC_LINK: ${DPCM_STATIC_SOURCES}/${src} not found; run "
                      "hack/static-sources.sh (or -DDPCM_STATIC_SOURCES=DIR)")
      set(dpcm_static_ok FALSE)
    endif()
  endforeach()
  if(NOT dpcm_static_ok)
    message(WARNING "DPCM_STATIC_LINK: dpcm-operator and dpcm-agent are linked against the "
                    "shared libraries (larger RSS)")
  endif()
endif()
set(DPCM_STATIC_LINK_ACTIVE ${dpcm_static_ok} CACHE INTERNAL "")

# The static variants. Third-party code is compiled without our warnings, in sections that
# the shipped binaries' --gc-sections drops when unused.
function(dpcm_third_party_library name)
  add_library(${name} STATIC ${ARGN})
  set_property(TARGET ${name} PROPERTY COMPILE_OPTIONS -w -ffunction-sections -fdata-sections)
endfunction()

if(DPCM_STATIC_LINK_ACTIVE)
  set(src "${DPCM_STATIC_SOURCES}")
  foreach(lib IN LISTS dpcm_static_archives)
    add_library(dpcm_static_${lib} STATIC IMPORTED)
    set_property(TARGET dpcm_static_${lib} PROPERTY IMPORTED_LOCATION "${DPCM_STATIC_LIB_${lib}}")
  endforeach()
  set_property(TARGET dpcm_static_ssl PROPERTY INTERFACE_LINK_LIBRARIES dpcm_static_crypto)
  set_property(TARGET dpcm_static_crypto PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)

  # cpp-httplib: Debian's header declares, its .so implements; split.py (as Debian's build
  # does) writes the implementation out of the single-file header. TLS and gzip as Debian
  # builds it; no brotli (nothing here speaks it: the API server offers gzip).
  set(httplib_out "${CMAKE_BINARY_DIR}/third_party/httplib/")
  if(NOT EXISTS "${httplib_out}httplib.cc")
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    execute_process(COMMAND "${Python3_EXECUTABLE}" "${src}/cpp-httplib/split.py" --out
                            "${httplib_out}" OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
  endif()
  dpcm_third_party_library(dpcm_static_httplib "${httplib_out}httplib.cc")
  target_include_directories(dpcm_static_httplib PRIVATE "${httplib_out}")
  target_compile_definitions(dpcm_static_httplib
    PRIVATE CPPHTTPLIB_OPENSSL_SUPPORT CPPHTTPLIB_ZLIB_SUPPORT
    INTERFACE ${HTTPLIB_CFLAGS_OTHER})
  target_link_libraries(dpcm_static_httplib PUBLIC dpcm_static_ssl dpcm_static_z Threads::Threads)

  dpcm_third_party_library(dpcm_static_fmt "${src}/fmtlib/src/format.cc" "${src}/fmtlib/src/os.cc")
  target_compile_definitions(dpcm_static_fmt INTERFACE FMT_SHARED)  # as fmt::fmt (ELF: no effect)

  file(GLOB spdlog_sources "${src}/spdlog/src/*.cpp")
  list(FILTER spdlog_sources EXCLUDE REGEX "/fmt\\.cpp$")  # the bundled fmt; Debian's is external
  dpcm_third_party_library(dpcm_static_spdlog ${spdlog_sources})
  target_compile_definitions(dpcm_static_spdlog
    PUBLIC SPDLOG_SHARED_LIB SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL)  # as spdlog::spdlog
  target_link_libraries(dpcm_static_spdlog PUBLIC dpcm_static_fmt Threads::Threads)

  file(GLOB prometheus_sources "${src}/prometheus-cpp/core/src/*.cc"
       "${src}/prometheus-cpp/core/src/detail/*.cc")
  dpcm_third_party_library(dpcm_static_prometheus ${prometheus_sources})
  target_include_directories(dpcm_static_prometheus PRIVATE "${src}/prometheus-cpp/core/src")
  target_link_libraries(dpcm_static_prometheus PUBLIC Threads::Threads)
endif()

# dpcm_dep_NAME: Debian's shared library, or for a DPCM_STATIC executable STATIC_TARGETS.
function(dpcm_dependency name)
  cmake_parse_arguments(ARG "" "" "SHARED;STATIC" ${ARGN})
  add_library(dpcm_dep_${name} INTERFACE)
  if(DPCM_STATIC_LINK_ACTIVE)
    # $<TARGET_PROPERTY:DPCM_STATIC> is read on the target being linked (the executable).
    target_link_libraries(dpcm_dep_${name} INTERFACE
      "$<IF:$<BOOL:$<TARGET_PROPERTY:DPCM_STATIC>>,${ARG_STATIC},${ARG_SHARED}>")
  else()
    target_link_libraries(dpcm_dep_${name} INTERFACE ${ARG_SHARED})
  endif()
endfunction()

dpcm_dependency(httplib SHARED PkgConfig::HTTPLIB STATIC dpcm_static_httplib)
dpcm_dependency(openssl SHARED OpenSSL::SSL STATIC dpcm_static_ssl)  # SSL links Crypto
dpcm_dependency(yaml SHARED yaml-cpp STATIC dpcm_static_yaml-cpp)
dpcm_dependency(spdlog SHARED spdlog::spdlog STATIC dpcm_static_spdlog)
dpcm_dependency(prometheus SHARED prometheus-cpp::core STATIC dpcm_static_prometheus)

# Makes `target` (a shipped executable) static when DPCM_STATIC_LINK is on and possible.
function(dpcm_static_executable target)
  if(DPCM_STATIC_LINK_ACTIVE)
    set_property(TARGET ${target} PROPERTY DPCM_STATIC ON)
    target_link_options(${target} PRIVATE -static -Wl,--gc-sections -Wl,-O1)
  endif()
endfunction()
