# Every dependency comes from a Debian 12 package (scripts/install-deps.sh).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(GTest REQUIRED)
find_package(rapidcheck REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
if(NOT PEERTUN_ONLY_PURE)
  find_package(CLI11 REQUIRED)
  find_package(tomlplusplus REQUIRED)
  find_package(benchmark REQUIRED)
  # The QUIC data plane (src/quic): ngtcp2 0.12.1 with its GnuTLS crypto helper.
  pkg_check_modules(NGTCP2 REQUIRED IMPORTED_TARGET GLOBAL libngtcp2 libngtcp2_crypto_gnutls)
  # The FUSE side of the folder share (src/share/fuse only).
  pkg_check_modules(FUSE3 REQUIRED IMPORTED_TARGET GLOBAL fuse3)
endif()
