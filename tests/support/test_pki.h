// Fixed PEM material for tests that only need well-formed certificates and keys.
#pragma once

#include <string_view>

namespace dpcm::testing {

// A self-signed P-256 certificate (CN=dpcm-unit-test, valid until 2126) and its key.
// Nothing trusts it; it exists so that PEM parsing has something real to parse.
inline constexpr std::string_view kTestCertPem = R"(
-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUbhgHMNvEOYL1Q8rYvJeMbBn0CoYwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZHBjbS11bml0LXRlc3QwIBcNMjYxMTIyMTAyNjIyWhgPMjEy
NjEwMjkxMDI2MjJaMBkxFzAVBgNVBAMMDmRwY20tdW5pdC10ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAERBgHog2Exk43RmK+mg5ZdAPPMQTaOfrj9VQ2zXno
P8xyu1waSiQ2OAiOvdt+t8NRjAwRKQYL0B0TX9IBTN7hV6NTMFEwHQYDVR0OBBYE
FOlQzIE2PewbIyltKnSQ4TRF3dv4MB8GA1UdIwQYMBaAFOlQzIE2PewbIyltKnSQ
4TRF3dv4MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgbxRx7ZV2
fiCUedBFXh/WTULqtQW0c/uAERKtuUzeGQUCIQCODV5OQNbAVbMYd6SnWHNK3/It
Q8pkeX2lQZKX4tq+6w==
-----END CERTIFICATE-----
)";

inline constexpr std::string_view kTestKeyPem = R"(
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgro/C8Fh/gqT7rDLk
O84kLSWo7OvPBi7NnhpzZ11Z2XWhRANCAAREGAeiDYTGTjdGYr6aDll0A88xBNo5
+uP1VDbNeeg/zHK7XBpKJDY4CI692363w1GMDBEpBgvQHRNf0gFM3uFX
-----END PRIVATE KEY-----
)";

}  // namespace dpcm::testing
