# The Debian package (cpack -G DEB, from the build directory; scripts/build-deb does it and
# checks the result): the binaries, the shipped plugins, the SDK, the dashboard, the systemd
# units, the Prometheus rules and an example config, under /usr. Depends: is computed by
# dpkg-shlibdeps from what the binaries link; what they run rather than link (wireguard-go,
# charon, FRR) is recommended or suggested, since a site may use none of them.
install(FILES deploy/systemd/patronusd@.service deploy/systemd/patronus-controller.service
  DESTINATION lib/systemd/system)
install(FILES deploy/systemd/patronus.sysusers DESTINATION lib/sysusers.d RENAME patronus.conf)
install(FILES deploy/prometheus/patronus-rules.yaml
  DESTINATION ${CMAKE_INSTALL_DATADIR}/patronus/prometheus)
install(FILES deploy/examples/site.yaml deploy/examples/controller.yaml
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/patronus/examples)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/patronus)
# The guides (the alert rules' runbook annotations point into operations.md there).
install(DIRECTORY docs/guides/ DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/patronus/guides
  FILES_MATCHING PATTERN "*.md")
# Debian's copyright file: the notice and the plugin exception from LICENSE, with the GPL itself
# referred to where every Debian system has it.
file(READ LICENSE patronus_license)
string(FIND "${patronus_license}" "                    GNU GENERAL PUBLIC LICENSE" gpl_at)
string(SUBSTRING "${patronus_license}" 0 ${gpl_at} patronus_notice)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/copyright
  "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
  "Upstream-Name: patronus\n\n"
  "Files: *\nCopyright: 2026 The Patronus authors\n"
  "License: GPL-2+ with Patronus Plugin Exception 1.0\n"
  " On Debian systems the GNU General Public License version 2 is in\n"
  " /usr/share/common-licenses/GPL-2. The notice and the exception follow.\n .\n")
string(REGEX REPLACE "\n\n" "\n.\n" patronus_notice "${patronus_notice}")
string(REGEX REPLACE "\n" "\n " patronus_notice "${patronus_notice}")
string(REGEX REPLACE "\n \.\n" "\n .\n" patronus_notice "${patronus_notice}")
file(APPEND ${CMAKE_CURRENT_BINARY_DIR}/copyright " ${patronus_notice}\n")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/patronus)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME patronus)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SD-WAN router with a plugin ABI, path steering and a controller")
# One string: separate arguments would be joined with ';' (a CMake list).
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "patronusd hosts transport (WireGuard, IPsec), probe (its own, BFD), scoring\n"
  "and policy plugins through a stable C ABI, probes every path of the site,\n"
  "steers each traffic class onto the best one and fails over in well under a\n"
  "second. patronus-controller configures a fleet of sites and serves the\n"
  "operator API and the dashboard.")
# The project's committers, as the repository names them (there is no list or site yet).
set(CPACK_PACKAGE_CONTACT "Patronus maintainers <maintainers@users.noreply.b-seed-e27223b8.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Stripped: debug information is 80 % of the tree (190 MB unstripped).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "wireguard-go | wireguard-tools, iproute2, nftables")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "strongswan-charon, frr, prometheus")
# The units are installed, not enabled: each site is an instance with its own config.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_SOURCE_DIR}/deploy/debian/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
