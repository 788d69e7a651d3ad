// What a steering decision changes in forwarding. The site runtime drives one Dataplane:
// a recorder in unit tests (below), Linux policy routing on a router (the WireGuard issue), packet
// forwarding along the chosen path in ns-3 (the simulator issue).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "patronus/env/env.hpp"
#include "patronus/model/ids.hpp"
#include "patronus/model/types.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/util/status.hpp"

namespace patronus::steering {

class Dataplane {
 public:
  virtual ~Dataplane() = default;
  // Traffic of class `cls` to site `site` now goes over `path` (invalid PathId: no usable path;
  // the backend decides what that means, e.g. an unreachable route).
  virtual Status set_class_path(const std::string& site, const std::string& cls,
                                model::PathId path) = 0;
  // A flow of a balanced class is pinned to a path; an invalid PathId unpins it.
  virtual Status set_flow_path(const model::FlowKey& flow, model::PathId path) = 0;
  // A remote site joined a running site (a new plan): its prefixes are to be held unreachable
  // for every class until set_class_path decides. A backend that keeps no per-site state
  // accepts it as is.
  virtual Status add_site(const std::string& site, const std::vector<model::IpPrefix>& prefixes) {
    (void)site, (void)prefixes;
    return Status::ok();
  }
  // A remote site left the plan (its paths went first): its prefixes leave every class's
  // forwarding. A backend that keeps no per-site state accepts it as is.
  virtual Status remove_site(const std::string& site) {
    (void)site;
    return Status::ok();
  }
  // A running site's classes and rules were replaced (SiteRuntime::set_classes): a backend that
  // classifies packets itself takes the new rules; the runtime then decides every class's path
  // in the same call. A backend that keeps no per-class state accepts it as is.
  virtual Status set_classes(const ClassSet& next) {
    (void)next;
    return Status::ok();
  }
  // The site stops: forwarding state the backend installed is removed (a backend that installs
  // none has nothing to do). Its destructor must do the same for a host that never calls it.
  virtual Status stop() { return Status::ok(); }
  // The start's grace is over: forwarding state kept from a previous run (a hitless restart)
  // that no decision replaced since is dropped.
  virtual Status settle() { return Status::ok(); }
};

// A dataplane owned elsewhere, handed to a host that owns the one it drives (a test's recorder,
// the simulator's forwarding tables): every call goes to `to`; stop() is the owner's business.
class DataplaneRef final : public Dataplane {
 public:
  explicit DataplaneRef(Dataplane& to) : to_(to) {}
  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override {
    return to_.set_class_path(site, cls, path);
  }
  Status set_flow_path(const model::FlowKey& flow, model::PathId path) override {
    return to_.set_flow_path(flow, path);
  }
  Status add_site(const std::string& site, const std::vector<model::IpPrefix>& prefixes) override {
    return to_.add_site(site, prefixes);
  }
  Status set_classes(const ClassSet& next) override { return to_.set_classes(next); }
  Status remove_site(const std::string& site) override { return to_.remove_site(site); }

 private:
  Dataplane& to_;
};

// Records every change with the time it was made (tests read what a decision changed).
class RecordingDataplane final : public Dataplane {
 public:
  struct Change {
    std::int64_t at_ns = 0;
    std::string site, cls;  // class changes
    bool is_flow = false;
    model::FlowKey flow;  // flow changes
    model::PathId path;
  };
  explicit RecordingDataplane(const env::Env* env = nullptr) : env_(env) {}
  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override {
    changes_.push_back({env_ ? env_->now_ns() : 0, site, cls, false, {}, path});
    return Status::ok();
  }
  Status set_flow_path(const model::FlowKey& flow, model::PathId path) override {
    changes_.push_back({env_ ? env_->now_ns() : 0, "", "", true, flow, path});
    return Status::ok();
  }
  const std::vector<Change>& changes() const { return changes_; }

 private:
  const env::Env* env_;
  std::vector<Change> changes_;
};

}  // namespace patronus::steering
