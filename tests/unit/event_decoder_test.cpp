// WatchEventDecoder: newline-delimited watch events across arbitrary chunk boundaries.
#include "pkg/watch/event_decoder.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/support/scripted_api_server.h"

namespace dpcm::watch {
namespace {

using testing::ConfigMapObject;
using testing::EventLine;

std::string NameOf(const DecodedLine& line) {
  return line->object["metadata"]["name"].get<std::string>();
}

TEST_CASE("an event split across three chunks is decoded once complete") {
  const std::string line = EventLine("ADDED", ConfigMapObject("a", "10")) + "\n";
  const size_t third = line.size() / 3;
  WatchEventDecoder decoder;
  CHECK(decoder.Feed(line.substr(0, third)).empty());
  CHECK(decoder.pending_bytes() == third);
  CHECK(decoder.Feed(line.substr(third, third)).empty());
  const auto events = decoder.Feed(line.substr(2 * third));
  REQUIRE(events.size() == 1);
  REQUIRE(events[0].ok());
  CHECK(events[0]->type == EventType::kAdded);
  CHECK(NameOf(events[0]) == "a");
  CHECK(events[0]->object["metadata"]["resourceVersion"] == "10");
  CHECK(decoder.pending_bytes() == 0);
}

TEST_CASE("several events in one chunk come out in order") {
  const std::string chunk = EventLine("ADDED", ConfigMapObject("a", "1")) + "\n" +
                            EventLine("MODIFIED", ConfigMapObject("b", "2")) + "\n" +
                            EventLine("DELETED", ConfigMapObject("c", "3")) + "\n" +
                            EventLine("ADDED", ConfigMapObject("d", "4"));  // incomplete
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(chunk);
  REQUIRE(events.size() == 3);
  CHECK(events[0]->type == EventType::kAdded);
  CHECK(NameOf(events[0]) == "a");
  CHECK(events[1]->type == EventType::kModified);
  CHECK(NameOf(events[1]) == "b");
  CHECK(events[2]->type == EventType::kDeleted);
  CHECK(NameOf(events[2]) == "c");
  CHECK(decoder.pending_bytes() > 0);
  const auto rest = decoder.Feed("\n");
  REQUIRE(rest.size() == 1);
  CHECK(NameOf(rest[0]) == "d");
}

TEST_CASE("a chunk ending exactly at a newline leaves nothing pending") {
  WatchEventDecoder decoder;
  const auto first = decoder.Feed(EventLine("ADDED", ConfigMapObject("a", "1")) + "\n");
  REQUIRE(first.size() == 1);
  CHECK(decoder.pending_bytes() == 0);
  // The next chunk starts a fresh line rather than continuing the last one.
  const auto second = decoder.Feed(EventLine("MODIFIED", ConfigMapObject("a", "2")) + "\n");
  REQUIRE(second.size() == 1);
  REQUIRE(second[0].ok());
  CHECK(second[0]->type == EventType::kModified);
}

TEST_CASE("a malformed line yields an error for that line only") {
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(EventLine("ADDED", ConfigMapObject("a", "1")) + "\n" +
                                   "{\"type\":\"ADDED\",\"object\":{\"metadata\"\n" +
                                   EventLine("ADDED", ConfigMapObject("b", "2")) + "\n");
  REQUIRE(events.size() == 3);
  REQUIRE(events[0].ok());
  CHECK(NameOf(events[0]) == "a");
  REQUIRE_FALSE(events[1].ok());
  CHECK(events[1].status().code() == StatusCode::kDecode);
  REQUIRE(events[2].ok());
  CHECK(NameOf(events[2]) == "b");
}

TEST_CASE("lines that are JSON but not events are errors") {
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(
      "[1,2,3]\n"
      "{\"type\":\"ADDED\"}\n"
      "{\"object\":{}}\n"
      "{\"type\":7,\"object\":{}}\n"
      "{\"type\":\"ADDED\",\"object\":\"a string\"}\n");
  REQUIRE(events.size() == 5);
  for (const auto& event : events) {
    CHECK_FALSE(event.ok());
    CHECK(event.status().code() == StatusCode::kDecode);
  }
}

TEST_CASE("an ERROR event carries the server's Status, e.g. 410 Expired") {
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(testing::GoneLine() + "\n");
  REQUIRE(events.size() == 1);
  REQUIRE(events[0].ok());
  CHECK(events[0]->type == EventType::kError);
  CHECK(events[0]->object["kind"] == "Status");
  CHECK(events[0]->object["code"] == 410);
  CHECK(events[0]->object["reason"] == "Expired");
}

TEST_CASE("BOOKMARK events decode with their resourceVersion") {
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(testing::BookmarkLine("12345") + "\n");
  REQUIRE(events.size() == 1);
  REQUIRE(events[0].ok());
  CHECK(events[0]->type == EventType::kBookmark);
  CHECK(events[0]->object["metadata"]["resourceVersion"] == "12345");
}

TEST_CASE("an unknown event type is an error naming it") {
  WatchEventDecoder decoder;
  const auto events = decoder.Feed(EventLine("EXPLODED", ConfigMapObject("a", "1")) + "\n");
  REQUIRE(events.size() == 1);
  REQUIRE_FALSE(events[0].ok());
  CHECK(events[0].status().message().find("EXPLODED") != std::string::npos);
}

TEST_CASE("a line longer than max_line_bytes is dropped and the next line still decodes") {
  WatchEventDecoder decoder(256);
  const std::string huge = EventLine("ADDED", ConfigMapObject(std::string(1000, 'x'), "1"));
  const std::string next = EventLine("ADDED", ConfigMapObject("small", "2"));
  SUBCASE("in one chunk") {
    const auto events = decoder.Feed(huge + "\n" + next + "\n");
    REQUIRE(events.size() == 2);
    CHECK_FALSE(events[0].ok());
    CHECK(events[0].status().message().find("256") != std::string::npos);
    REQUIRE(events[1].ok());
    CHECK(NameOf(events[1]) == "small");
  }
  SUBCASE("across many small chunks, without holding the long line in memory") {
    std::vector<DecodedLine> events;
    const std::string stream = huge + "\n" + next + "\n";
    size_t max_pending = 0;
    for (size_t i = 0; i < stream.size(); i += 50) {
      for (auto& event : decoder.Feed(std::string_view(stream).substr(i, 50))) {
        events.push_back(std::move(event));
      }
      max_pending = std::max(max_pending, decoder.pending_bytes());
    }
    CHECK(max_pending <= 256);
    REQUIRE(events.size() == 2);  // one error for the long line, not one per chunk
    CHECK_FALSE(events[0].ok());
    REQUIRE(events[1].ok());
    CHECK(NameOf(events[1]) == "small");
  }
}

TEST_CASE("blank lines are ignored and CRLF line ends are tolerated") {
  WatchEventDecoder decoder;
  const auto events =
      decoder.Feed("\n\r\n   \n" + EventLine("ADDED", ConfigMapObject("a", "1")) + "\r\n\n" +
                   EventLine("DELETED", ConfigMapObject("a", "2")) + "\r\n");
  REQUIRE(events.size() == 2);
  REQUIRE(events[0].ok());
  CHECK(events[0]->type == EventType::kAdded);
  REQUIRE(events[1].ok());
  CHECK(events[1]->type == EventType::kDeleted);
}

}  // namespace
}  // namespace dpcm::watch
