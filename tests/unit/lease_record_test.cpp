// Lease records: reading and writing coordination.k8s.io/v1 Leases and their MicroTime stamps.
#include "pkg/election/lease_record.h"

#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dpcm::election {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// 2026-11-22T10:47:25Z.
WallTime Nov22() {
  return WallTime(std::chrono::sys_days(std::chrono::year(2026) / 11 / 22).time_since_epoch() +
                  10h + 47min + 25s);
}

json RealLease() {
  return json::parse(R"({
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {
      "name": "web",
      "namespace": "shop",
      "uid": "6d1c5c1e-4f0e-4b8a-9a57-1d2b3c4d5e6f",
      "resourceVersion": "123456",
      "creationTimestamp": "2026-11-22T10:00:00Z",
      "labels": {"dpcm.io/domain": "web"},
      "ownerReferences": [{"apiVersion": "dpcm.io/v1alpha1", "kind": "ProcessDomain",
                           "name": "web", "uid": "uid-web", "controller": true,
                           "blockOwnerDeletion": true}],
      "managedFields": [{"manager": "dpcm-operator", "operation": "Update",
                         "apiVersion": "coordination.k8s.io/v1",
                         "time": "2026-11-22T10:47:25Z", "fieldsType": "FieldsV1",
                         "fieldsV1": {"f:spec": {"f:holderIdentity": {}}}}]
    },
    "spec": {
      "holderIdentity": "web-1",
      "leaseDurationSeconds": 15,
      "acquireTime": "2026-11-22T10:40:00.000000Z",
      "renewTime": "2026-11-22T10:47:25.123456Z",
      "leaseTransitions": 4
    }
  })");
}

TEST_CASE("FormatMicroTime writes RFC 3339 with microseconds and ParseTime reads it back") {
  const WallTime t = Nov22() + 123456us;
  CHECK(FormatMicroTime(t) == "2026-11-22T10:47:25.123456Z");
  CHECK(ParseTime(FormatMicroTime(t)) == t);
  CHECK(FormatMicroTime(Nov22()) == "2026-11-22T10:47:25.000000Z");
  CHECK(FormatMicroTime(Nov22() + 7us) == "2026-11-22T10:47:25.000007Z");
  CHECK(FormatTime(t) == "2026-11-22T10:47:25Z");

  // Sub-microsecond parts are dropped, not rounded.
  const WallTime fine = t + std::chrono::duration_cast<WallTime::duration>(999ns);
  CHECK(FormatMicroTime(fine) == "2026-11-22T10:47:25.123456Z");

  // Round trips across a range of instants, including leap days and year ends.
  for (const WallTime at :
       {WallTime(std::chrono::sys_days(std::chrono::year(2024) / 2 / 29).time_since_epoch()),
        WallTime(std::chrono::sys_days(std::chrono::year(1999) / 12 / 31).time_since_epoch() + 23h +
                 59min + 59s + 999999us),
        WallTime(std::chrono::sys_days(std::chrono::year(2038) / 1 / 19).time_since_epoch() + 3h +
                 14min + 8s + 1us)}) {
    CAPTURE(FormatMicroTime(at));
    CHECK(ParseTime(FormatMicroTime(at)) == at);
    CHECK(ParseTime(FormatTime(at)) == std::chrono::floor<std::chrono::seconds>(at));
  }
}

TEST_CASE("ParseTime reads metav1.Time and MicroTime") {
  CHECK(ParseTime("2026-11-22T10:47:25Z") == Nov22());
  CHECK(ParseTime("2026-11-22T10:47:25.5Z") == Nov22() + 500ms);
  CHECK(ParseTime("2026-11-22T10:47:25.000001Z") == Nov22() + 1us);
  CHECK(ParseTime("2026-11-22T10:47:25.123456Z") == Nov22() + 123456us);
  // Nanosecond precision (as RFC3339Nano writes) is cut to microseconds.
  CHECK(ParseTime("2026-11-22T10:47:25.123456789Z") == Nov22() + 123456us);
  CHECK(ParseTime("1970-01-01T00:00:00Z") == WallTime());
}

TEST_CASE("ParseTime gives nullopt for malformed time stamps") {
  for (const char* text : {"",
                           "garbage",
                           "2026-11-22",
                           "2026-11-22T10:47:25",
                           "2026-11-22T10:47:25.123",
                           "2026-11-22T10:47:25+01:00",
                           "2026-11-22T10:47:25.123+00:00",
                           "2026-11-22T10:47:25z",
                           "2026-11-22T10:47:25ZZ",
                           "2026-11-22T10:47:25Z ",
                           "2026-11-22T10:47:25.12a456Z",
                           "2026-11-22 10:47:25Z",
                           "2026/11/22T10:47:25Z",
                           "2026-11-22T10:47Z",
                           "2026-1-2T3:4:5Z",
                           "2026-13-22T10:47:25Z",
                           "2026-00-22T10:47:25Z",
                           "2026-11-32T10:47:25Z",
                           "2026-11-00T10:47:25Z",
                           "2026-02-29T10:47:25Z",
                           "2026-02-30T10:47:25Z",
                           "2026-+1-22T10:47:25Z",
                           " 2026-11-22T10:47:25Z",
                           "2026-11-22T24:47:25Z",
                           "2026-11-22T10:60:25Z",
                           "2026-11-22T10:47:61Z",
                           "Sun, 22 Nov 2026 10:47:25 GMT"}) {
    CAPTURE(text);
    CHECK(ParseTime(text) == std::nullopt);
  }
}

TEST_CASE("ParseLease reads the fields of a real Lease") {
  const LeaseRecord record = ParseLease(RealLease());
  CHECK(record.name == "web");
  CHECK(record.resource_version == "123456");
  CHECK(record.holder == "web-1");
  CHECK(record.lease_duration_seconds == 15);
  CHECK(record.transitions == 4);
  CHECK(record.acquire_time == Nov22() - 7min - 25s);
  CHECK(record.renew_time == Nov22() + 123456us);
}

TEST_CASE("ParseLease of a Lease being created or released leaves zero values") {
  const LeaseRecord empty =
      ParseLease(json{{"metadata", {{"name", "web"}, {"resourceVersion", "5"}}}});
  CHECK(empty.name == "web");
  CHECK(empty.resource_version == "5");
  CHECK(empty.holder.empty());
  CHECK(empty.lease_duration_seconds == 0);
  CHECK(empty.transitions == 0);
  CHECK_FALSE(empty.acquire_time.has_value());
  CHECK_FALSE(empty.renew_time.has_value());

  json released = RealLease();
  released["spec"]["holderIdentity"] = nullptr;
  released["spec"].erase("renewTime");
  const LeaseRecord r = ParseLease(released);
  CHECK(r.holder.empty());
  CHECK_FALSE(r.renew_time.has_value());
  CHECK(r.transitions == 4);
}

TEST_CASE("ParseLease never throws on garbage and keeps zero values for bad fields") {
  for (const json& lease : {json(nullptr), json("lease"), json(42), json::array({RealLease()}),
                            json::object(), json{{"metadata", "web"}, {"spec", "web-1"}},
                            json{{"metadata", json::array()}}, json{{"spec", json::array({1, 2})}},
                            json{{"metadata", {{"name", 5}, {"resourceVersion", 123}}},
                                 {"spec",
                                  {{"holderIdentity", json::array()},
                                   {"leaseDurationSeconds", "15"},
                                   {"leaseTransitions", 1.5},
                                   {"acquireTime", 1700000000},
                                   {"renewTime", "yesterday"}}}}}) {
    CAPTURE(lease.dump());
    LeaseRecord record;
    CHECK_NOTHROW(record = ParseLease(lease));
    CHECK(record.name.empty());
    CHECK(record.resource_version.empty());
    CHECK(record.holder.empty());
    CHECK(record.lease_duration_seconds == 0);
    CHECK(record.transitions == 0);
    CHECK_FALSE(record.acquire_time.has_value());
    CHECK_FALSE(record.renew_time.has_value());
    CHECK(record.ExpiredAt(Nov22()));
  }
}

TEST_CASE("ApplyLease writes spec and resourceVersion and keeps every other field") {
  json lease = RealLease();
  LeaseRecord record = ParseLease(lease);
  record.holder = "web-2";
  record.transitions = 5;
  record.acquire_time = Nov22() + 1s;
  record.renew_time = Nov22() + 1s + 250us;
  record.lease_duration_seconds = 20;
  record.resource_version = "123457";
  ApplyLease(record, lease);

  CHECK(lease["spec"]["holderIdentity"] == "web-2");
  CHECK(lease["spec"]["leaseTransitions"] == 5);
  CHECK(lease["spec"]["leaseDurationSeconds"] == 20);
  CHECK(lease["spec"]["acquireTime"] == "2026-11-22T10:47:26.000000Z");
  CHECK(lease["spec"]["renewTime"] == "2026-11-22T10:47:26.000250Z");
  CHECK(lease["metadata"]["resourceVersion"] == "123457");

  json want_untouched = RealLease();
  for (const char* key : {"namespace", "uid", "creationTimestamp", "labels", "ownerReferences",
                          "managedFields", "name"}) {
    CAPTURE(key);
    CHECK(lease["metadata"][key] == want_untouched["metadata"][key]);
  }
  CHECK(lease["apiVersion"] == "coordination.k8s.io/v1");
  CHECK(lease["kind"] == "Lease");

  const LeaseRecord back = ParseLease(lease);
  CHECK(back.holder == record.holder);
  CHECK(back.transitions == record.transitions);
  CHECK(back.lease_duration_seconds == record.lease_duration_seconds);
  CHECK(back.acquire_time == record.acquire_time);
  CHECK(back.renew_time == record.renew_time);
  CHECK(back.resource_version == record.resource_version);
}

TEST_CASE("ApplyLease builds a new Lease from a record without a resourceVersion") {
  LeaseRecord record;
  record.name = "web";
  record.holder = "web-0";
  record.lease_duration_seconds = 15;
  record.acquire_time = Nov22();
  record.renew_time = Nov22();
  record.transitions = 1;
  json lease = {{"metadata", {{"namespace", "shop"}, {"labels", {{"dpcm.io/domain", "web"}}}}}};
  ApplyLease(record, lease);
  CHECK(lease["apiVersion"] == "coordination.k8s.io/v1");
  CHECK(lease["kind"] == "Lease");
  CHECK(lease["metadata"]["name"] == "web");
  CHECK(lease["metadata"]["namespace"] == "shop");
  CHECK(lease["metadata"]["labels"] == json{{"dpcm.io/domain", "web"}});
  CHECK_FALSE(lease["metadata"].contains("resourceVersion"));
  CHECK(lease["spec"] == json{{"holderIdentity", "web-0"},
                              {"leaseDurationSeconds", 15},
                              {"leaseTransitions", 1},
                              {"acquireTime", "2026-11-22T10:47:25.000000Z"},
                              {"renewTime", "2026-11-22T10:47:25.000000Z"}});
}

TEST_CASE("ExpiredAt: a Lease is valid through renewTime + leaseDurationSeconds") {
  LeaseRecord record;
  record.lease_duration_seconds = 15;
  CHECK(record.ExpiredAt(Nov22()));  // never renewed
  record.renew_time = Nov22();
  CHECK_FALSE(record.ExpiredAt(Nov22() - 1h));
  CHECK_FALSE(record.ExpiredAt(Nov22()));
  CHECK_FALSE(record.ExpiredAt(Nov22() + 14s));
  CHECK_FALSE(record.ExpiredAt(Nov22() + 15s));
  CHECK(record.ExpiredAt(Nov22() + 15s + 1us));
  CHECK(record.ExpiredAt(Nov22() + 1h));
  record.lease_duration_seconds = 0;
  CHECK(record.ExpiredAt(Nov22() + 1us));
}

}  // namespace
}  // namespace dpcm::election
