// What the ipsec transport tells charon about one path, and what it reads back: the path (from
// patronus_path_desc and its transport settings) as an IKEv2 connection (`load-conn`), its secret
// (`load-shared`), the SA state of a `list-sa` event as tunnel state, and charon's log lines as
// a diagnostic. No I/O here, so every message is unit-tested; the plugin moves them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/abi/plugin_abi.h"
#include "patronus/model/address.hpp"
#include "patronus/util/status.hpp"
#include "vici.hpp"

namespace patronus::ipsec {

// Userspace ESP (charon's kernel-libipsec: one TUN, ipsec0, policies inside charon) or
// route-based kernel ESP (an XFRM interface per endpoint, SAs and policies bound to it by if_id).
enum class Mode { kLibipsec, kXfrm };
const char* to_string(Mode m);
Result<Mode> parse_mode(std::string_view text);  // "libipsec" or "xfrm"

struct PathParams {
  std::uint64_t path_id = 0;
  std::string local_site, local_endpoint, remote_site, remote_endpoint;
  model::IpAddress local_addr, remote_addr;
  std::uint16_t remote_port = 500;
  std::string local_id, remote_id;  // IKE identities (default: the underlay addresses)
  std::vector<std::string> proposals, esp_proposals;
  std::vector<model::IpPrefix> local_ts, remote_ts;  // traffic selectors
  std::string interface_name;
  std::vector<std::pair<model::IpAddress, int>> interface_addresses;
  std::optional<model::IpAddress> remote_overlay;
  std::uint32_t dpd_s = 10, rekey_s = 14400, child_rekey_s = 3600;
  std::uint32_t reauth_s = 0;  // 0: no reauthentication (rekeying renews the keys)
  std::string psk_file;        // "" = derived from the endpoints' X25519 keys
  bool initiator = true;       // this end starts the IKE_SA (the other waits, then retries)
  Mode mode = Mode::kLibipsec;
  std::uint32_t if_id = 0;  // kXfrm: the interface's id (ipsecN -> N + 1)
};

// The path as the host describes it. Validates everything charon will be told: addresses,
// identities, proposals (check_proposal: refused algorithms named with the reason), traffic
// selectors, timers, the interface (libipsec: only ipsec0 exists). Errors name the field.
Result<PathParams> path_params(const patronus_path_desc& d, Mode mode);

// charon's names for the path: the connection, its CHILD_SA and its shared secret.
std::string conn_name(std::uint64_t path_id);

// `load-conn`'s argument: one section named conn_name(path_id).
vici::Message load_conn(const PathParams& p);
// `load-shared`'s argument for a PSK. Holds the secret: never log it (vici::describe).
vici::Message load_shared(const PathParams& p, const std::string& secret);

// A pre-shared key from an owner-only file: refused when the file is readable or writable by
// group or others, not a regular file, not ours, empty after trimming, shorter than 20 bytes or
// longer than 1024. The error never contains the key.
Result<std::string> read_psk_file(const std::string& path);

// One IKE_SA of a `list-sa` event (the event has one section per IKE_SA, named after its
// connection).
struct SaState {
  std::string conn;
  std::string ike_state;  // ESTABLISHED, CONNECTING, ...
  bool child_installed = false;
  std::int64_t installed_ago_s = -1;  // the installed CHILD_SA's install-time (seconds ago)
  std::string child_id;               // charon's uniqueid of that CHILD_SA (a rekey changes it)
  std::int64_t established_s = -1;    // the IKE_SA's age (seconds)
  std::int64_t ike_rekey_in_s = -1;   // seconds until the IKE_SA is rekeyed (-1: unknown)
  std::uint64_t bytes_in = 0, bytes_out = 0;
  std::string remote_host, remote_id, encr_alg, dh_group;
  std::uint16_t remote_port = 0;
};
// Every IKE_SA of our connections (named conn_name) in the event; others are skipped. Numbers that
// do not parse are refused (an error naming the field), never guessed.
Result<std::vector<SaState>> parse_list_sa(const vici::Message& event);

// A log line of charon's (control-log during initiate) as a tunnel diagnostic:
// AUTHENTICATION_FAILED / authentication failures -> AUTH_FAILED; NO_PROPOSAL_CHOSEN,
// TS_UNACCEPTABLE, no acceptable proposal -> NEGOTIATION_FAILED; else NONE.
std::uint32_t diagnose(std::string_view log_line);

}  // namespace patronus::ipsec
