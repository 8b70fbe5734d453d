// cache::Store: keys, label and custom indexes, Replace, and readers racing one writer.
#include "pkg/cache/store.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dpcm::cache {
namespace {

using Json = nlohmann::json;

ObjectPtr Object(const std::string& ns, const std::string& name, const Json& labels = {},
                 const std::string& rv = "1", const std::string& owner = "") {
  Json metadata = {{"name", name}, {"resourceVersion", rv}};
  if (!ns.empty()) metadata["namespace"] = ns;
  if (!labels.is_null()) metadata["labels"] = labels;
  Json object = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}};
  if (!owner.empty()) object["spec"]["owner"] = owner;
  return std::make_shared<const Json>(std::move(object));
}

std::set<std::string> Names(const std::vector<ObjectPtr>& objects) {
  std::set<std::string> names;
  for (const auto& object : objects) names.insert((*object)["metadata"]["name"].get<std::string>());
  return names;
}

TEST_CASE("KeyOf is ns/name, name for cluster-scoped objects, and empty without a name") {
  CHECK(KeyOf(*Object("ns", "a")) == "ns/a");
  CHECK(KeyOf(*Object("", "node-1")) == "node-1");
  CHECK(KeyOf(Json{{"metadata", {{"namespace", "ns"}}}}) == "");
  CHECK(KeyOf(Json{{"metadata", {{"name", 7}}}}) == "");
  CHECK(KeyOf(Json::object()) == "");
  CHECK(KeyOf(Json("not an object")) == "");
  CHECK(KeyOf(Json{{"metadata", "not a map"}}) == "");
}

TEST_CASE("Store::Upsert returns what it replaced and Get finds by key or ns/name") {
  Store store;
  const auto v1 = Object("ns", "a", nullptr, "1");
  const auto v2 = Object("ns", "a", nullptr, "2");
  CHECK(store.Upsert(v1) == nullptr);
  CHECK(*store.Upsert(v2) == *v1);
  CHECK(store.size() == 1);
  CHECK(*store.Get("ns/a") == *v2);
  CHECK(*store.Get("ns", "a") == *v2);
  CHECK(store.Get("other", "a") == nullptr);
  CHECK(store.Get("ns", "b") == nullptr);
  // A reader's snapshot survives the writer replacing the object.
  CHECK((*v1)["metadata"]["resourceVersion"] == "1");

  const auto node = Object("", "node-1");
  store.Upsert(node);
  CHECK(*store.Get("", "node-1") == *node);
  CHECK(*store.Get("node-1") == *node);
}

TEST_CASE("Store keeps objects packed: each read is an equal, private copy of every value") {
  Store store;
  Json pod = *Object("ns", "a", {{"app", "web"}});
  pod["status"] = {{"phase", "Running"},
                   {"podIP", "127.0.0.5"},
                   {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
                   {"containerStatuses", Json::array({{{"restartCount", 3}, {"ready", true}}})},
                   {"negative", -7},
                   {"large", 9007199254740993ULL},
                   {"fraction", 0.25},
                   {"empty", Json::object()},
                   {"none", nullptr},
                   {"text", std::string(300, 'x') + "\u00e9\n\"quoted\""}};
  store.Upsert(std::make_shared<const Json>(pod));
  const ObjectPtr first = store.Get("ns", "a");
  const ObjectPtr second = store.Get("ns", "a");
  REQUIRE(first != nullptr);
  CHECK(*first == pod);
  CHECK(first != second);  // a private copy: no reader shares another's tree
  CHECK((*first)["status"]["containerStatuses"][0]["restartCount"].is_number_integer());
  CHECK((*first)["status"]["negative"].get<int>() == -7);
  CHECK((*first)["status"]["large"].get<uint64_t>() == 9007199254740993ULL);
  CHECK((*first)["status"]["fraction"].get<double>() == 0.25);
  CHECK(Names(store.ByLabel("ns", "app", "web")) == std::set<std::string>{"a"});
  CHECK(*store.List().front() == pod);
}

TEST_CASE("Store::Upsert ignores an object without a name") {
  Store store;
  CHECK(store.Upsert(std::make_shared<const Json>(Json{{"metadata", Json::object()}})) == nullptr);
  CHECK(store.size() == 0);
}

TEST_CASE("Store::Remove returns the removed object and forgets it everywhere") {
  Store store;
  const auto a = Object("ns", "a", {{"app", "web"}});
  store.Upsert(a);
  CHECK(*store.Remove("ns/a") == *a);
  CHECK(store.Remove("ns/a") == nullptr);
  CHECK(store.Get("ns/a") == nullptr);
  CHECK(store.size() == 0);
  CHECK(store.List().empty());
  CHECK(store.ByLabel("ns", "app", "web").empty());
}

TEST_CASE("Store::ByLabel finds objects by label within one namespace") {
  Store store;
  store.Upsert(Object("ns", "web-0", {{"app", "web"}, {"tier", "front"}}));
  store.Upsert(Object("ns", "web-1", {{"app", "web"}}));
  store.Upsert(Object("ns", "db-0", {{"app", "db"}}));
  store.Upsert(Object("other", "web-0", {{"app", "web"}}));
  store.Upsert(Object("ns", "bare"));

  CHECK(Names(store.ByLabel("ns", "app", "web")) == std::set<std::string>{"web-0", "web-1"});
  CHECK(Names(store.ByLabel("ns", "tier", "front")) == std::set<std::string>{"web-0"});
  CHECK(Names(store.ByLabel("other", "app", "web")) == std::set<std::string>{"web-0"});
  CHECK(store.ByLabel("ns", "app", "cache").empty());
  CHECK(store.ByLabel("ns", "missing", "web").empty());
  CHECK(store.ByLabel("third", "app", "web").empty());
  CHECK(store.List().size() == 5);
}

TEST_CASE("Store::ByLabel follows a label change") {
  Store store;
  store.Upsert(Object("ns", "p", {{"role", "standby"}}, "1"));
  REQUIRE(Names(store.ByLabel("ns", "role", "standby")) == std::set<std::string>{"p"});
  store.Upsert(Object("ns", "p", {{"role", "active"}}, "2"));
  CHECK(store.ByLabel("ns", "role", "standby").empty());
  CHECK(Names(store.ByLabel("ns", "role", "active")) == std::set<std::string>{"p"});
  store.Upsert(Object("ns", "p", nullptr, "3"));  // label removed
  CHECK(store.ByLabel("ns", "role", "active").empty());
}

TEST_CASE("Store keeps finding an object by label after each new version of it") {
  // The indexes hold views of the key inside the stored block: each version is a new block.
  Store store;
  for (int version = 1; version <= 20; ++version) {
    store.Upsert(Object("ns", "p", {{"role", "dc"}}, std::to_string(version)));
    store.Upsert(Object("ns", "q-" + std::to_string(version), {{"role", "dc"}}));
    const auto found = store.ByLabel("ns", "role", "dc");
    REQUIRE(found.size() == static_cast<size_t>(version) + 1);
    CHECK((*store.Get("ns/p"))["metadata"]["resourceVersion"] == std::to_string(version));
  }
  for (int version = 1; version <= 20; ++version) store.Remove("ns/q-" + std::to_string(version));
  CHECK(Names(store.ByLabel("ns", "role", "dc")) == std::set<std::string>{"p"});
  store.Remove("ns/p");
  CHECK(store.ByLabel("ns", "role", "dc").empty());
  CHECK(store.size() == 0);
}

TEST_CASE("Store indexes only the labels it is given, and none when given none") {
  Store store(std::set<std::string>{"app"});
  store.Upsert(Object("ns", "web-0", {{"app", "web"}, {"tier", "front"}}));
  CHECK(Names(store.ByLabel("ns", "app", "web")) == std::set<std::string>{"web-0"});
  CHECK(store.ByLabel("ns", "tier", "front").empty());  // not indexed

  Store none(std::set<std::string>{});
  none.Upsert(Object("ns", "web-0", {{"app", "web"}}));
  CHECK(none.ByLabel("ns", "app", "web").empty());
  CHECK(none.Get("ns", "web-0") != nullptr);
}

TEST_CASE("Store::ByLabel works for cluster-scoped objects") {
  Store store;
  store.Upsert(Object("", "node-1", {{"zone", "a"}}));
  store.Upsert(Object("ns", "pod", {{"zone", "a"}}));
  CHECK(Names(store.ByLabel("", "zone", "a")) == std::set<std::string>{"node-1"});
}

TEST_CASE("Store::AddIndex indexes by a custom function") {
  Store store;
  store.AddIndex("owner", [](const Json& object) -> std::vector<std::string> {
    if (!object.contains("spec") || !object["spec"].contains("owner")) return {};
    return {object["spec"]["owner"].get<std::string>()};
  });
  store.Upsert(Object("ns", "a", nullptr, "1", "domain-1"));
  store.Upsert(Object("ns", "b", nullptr, "1", "domain-1"));
  store.Upsert(Object("ns", "c", nullptr, "1", "domain-2"));
  store.Upsert(Object("ns", "d"));
  CHECK(Names(store.ByIndex("owner", "domain-1")) == std::set<std::string>{"a", "b"});
  CHECK(Names(store.ByIndex("owner", "domain-2")) == std::set<std::string>{"c"});
  store.Upsert(Object("ns", "b", nullptr, "2", "domain-2"));
  CHECK(Names(store.ByIndex("owner", "domain-1")) == std::set<std::string>{"a"});
  CHECK(Names(store.ByIndex("owner", "domain-2")) == std::set<std::string>{"b", "c"});
  store.Remove("ns/c");
  CHECK(Names(store.ByIndex("owner", "domain-2")) == std::set<std::string>{"b"});
  CHECK(store.ByIndex("no-such-index", "domain-1").empty());
}

TEST_CASE("Store::Replace returns the previous content and rebuilds the indexes") {
  Store store;
  const auto a = Object("ns", "a", {{"app", "old"}});
  const auto b = Object("ns", "b", {{"app", "old"}});
  store.Upsert(a);
  store.Upsert(b);
  const auto b2 = Object("ns", "b", {{"app", "new"}}, "2");
  const auto c = Object("ns", "c", {{"app", "new"}});
  const auto previous = store.Replace({b2, c});
  REQUIRE(previous.size() == 2);
  CHECK(*previous.at("ns/a") == *a);
  CHECK(*previous.at("ns/b") == *b);
  CHECK(store.size() == 2);
  CHECK(store.Get("ns/a") == nullptr);
  CHECK(*store.Get("ns/b") == *b2);
  CHECK(store.ByLabel("ns", "app", "old").empty());
  CHECK(Names(store.ByLabel("ns", "app", "new")) == std::set<std::string>{"b", "c"});

  CHECK(store.Replace({}).size() == 2);
  CHECK(store.size() == 0);
  CHECK(store.ByLabel("ns", "app", "new").empty());
}

TEST_CASE("Store::ReplaceNamespace replaces one namespace and leaves the others alone") {
  Store store;
  store.Upsert(Object("a", "x", {{"app", "web"}}));
  store.Upsert(Object("a", "y", {{"app", "web"}}));
  store.Upsert(Object("b", "x", {{"app", "web"}}));
  store.Upsert(Object("ab", "z", {{"app", "web"}}));  // a prefix of "a/"? no: "ab/"

  // A relist of namespace a: y is gone, w is new, x changed.
  const auto previous = store.ReplaceNamespace(
      "a", {Object("a", "x", {{"app", "db"}}, "2"), Object("a", "w", {{"app", "web"}})});
  CHECK(previous.size() == 2);
  CHECK(previous.count("a/x") == 1);
  CHECK(previous.count("a/y") == 1);
  CHECK(store.size() == 4);
  CHECK(store.Get("a", "y") == nullptr);
  CHECK((*store.Get("a", "x"))["metadata"]["resourceVersion"] == "2");
  CHECK(store.Get("b", "x") != nullptr);
  CHECK(store.Get("ab", "z") != nullptr);
  CHECK(Names(store.ByLabel("a", "app", "web")) == std::set<std::string>{"w"});
  CHECK(Names(store.ByLabel("a", "app", "db")) == std::set<std::string>{"x"});
  CHECK(Names(store.ByLabel("b", "app", "web")) == std::set<std::string>{"x"});

  SUBCASE("an empty namespace replaces everything") {
    const auto all = store.ReplaceNamespace("", {Object("c", "v")});
    CHECK(all.size() == 4);
    CHECK(store.size() == 1);
    CHECK(store.ByLabel("b", "app", "web").empty());
  }
  SUBCASE("an empty relist empties only that namespace") {
    CHECK(store.ReplaceNamespace("b", {}).size() == 1);
    CHECK(store.size() == 3);
  }
}

TEST_CASE("Store readers run concurrently with one writer and always see consistent objects") {
  Store store;
  constexpr int kObjects = 200;
  constexpr int kWrites = 4000;
  std::atomic<bool> done{false};
  std::atomic<int> inconsistent{0};
  std::atomic<long> reads{0};

  auto reader = [&] {
    while (!done.load()) {
      // Every object found under a label must carry that label.
      for (const char* group : {"even", "odd"}) {
        for (const auto& object : store.ByLabel("ns", "group", group)) {
          if ((*object)["metadata"]["labels"].value("group", "") != group) ++inconsistent;
        }
      }
      if (const auto object = store.Get("ns", "obj-7"); object != nullptr) {
        if (KeyOf(*object) != "ns/obj-7") ++inconsistent;
      }
      if (store.List().size() > static_cast<size_t>(kObjects)) ++inconsistent;
      ++reads;
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back(reader);

  for (int i = 0; i < kWrites; ++i) {
    const int n = i % kObjects;
    // Each rewrite flips the object's group, so the label index churns.
    const std::string group = ((n + i / kObjects) % 2 == 0) ? "even" : "odd";
    store.Upsert(Object("ns", "obj-" + std::to_string(n), {{"group", group}}, std::to_string(i)));
    if (i % 97 == 0) store.Remove("ns/obj-" + std::to_string((n + 1) % kObjects));
  }
  // Put back anything removed, so the final size is known.
  for (int n = 0; n < kObjects; ++n) {
    if (store.Get("ns", "obj-" + std::to_string(n)) == nullptr) {
      store.Upsert(Object("ns", "obj-" + std::to_string(n), {{"group", "even"}}));
    }
  }
  done = true;
  for (auto& thread : readers) thread.join();

  CHECK(inconsistent.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(store.size() == static_cast<size_t>(kObjects));
  CHECK(store.ByLabel("ns", "group", "even").size() + store.ByLabel("ns", "group", "odd").size() ==
        static_cast<size_t>(kObjects));
}

}  // namespace
}  // namespace dpcm::cache
