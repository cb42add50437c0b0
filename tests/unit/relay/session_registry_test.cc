#include "relay/session_registry.h"

#include <gtest/gtest.h>

#include <deque>

#include "wire/crockford.h"

namespace peertun::relay {
namespace {

using namespace std::chrono_literals;

class SessionRegistryTest : public ::testing::Test {
 protected:
  // Hands out the queued values first, then counts up: lets a test force collisions.
  std::deque<std::uint32_t> forced;
  std::uint32_t counter = 100;
  SessionRegistry registry{10min, [this] {
                             if (!forced.empty()) {
                               auto v = forced.front();
                               forced.pop_front();
                               return v;
                             }
                             return counter++;
                           }};
  Clock::time_point t0 = Clock::time_point{} + 1h;
};

TEST_F(SessionRegistryTest, CreateThenJoinPairsTheConnections) {
  auto created = registry.create(1, t0);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->nameplate.size(), 4u);
  EXPECT_EQ(created->session_id.size(), 32u);
  EXPECT_FALSE(registry.peer_of(1));
  auto joined = registry.join(created->nameplate, 2, t0 + 1s);
  ASSERT_TRUE(joined);
  EXPECT_EQ(joined->owner, 1u);
  EXPECT_EQ(joined->session_id, created->session_id);
  EXPECT_EQ(registry.peer_of(1), 2u);
  EXPECT_EQ(registry.peer_of(2), 1u);
  EXPECT_EQ(registry.joined_sessions(), 1u);
}

TEST_F(SessionRegistryTest, FireOnceWhenBothPeersAreReady) {
  auto created = registry.create(1, t0);
  EXPECT_EQ(registry.punch_ready(1).error(), RegistryErrc::NotInSession);  // not paired yet
  EXPECT_EQ(registry.punch_ready(9).error(), RegistryErrc::NotInSession);  // no session
  ASSERT_TRUE(registry.join(created->nameplate, 2, t0));
  auto first = registry.punch_ready(2);
  ASSERT_TRUE(first);
  EXPECT_FALSE(*first);
  EXPECT_FALSE(*registry.punch_ready(2));  // repeating does not fire
  auto second = registry.punch_ready(1);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, 2u);
  EXPECT_FALSE(*registry.punch_ready(1));  // once per session
  EXPECT_FALSE(*registry.punch_ready(2));
}

TEST_F(SessionRegistryTest, OneJoinPerNameplate) {
  auto created = registry.create(1, t0);
  ASSERT_TRUE(registry.join(created->nameplate, 2, t0));
  auto second = registry.join(created->nameplate, 3, t0);
  EXPECT_EQ(second.error(), RegistryErrc::NameplateUsed);
}

TEST_F(SessionRegistryTest, UnknownNameplate) {
  EXPECT_EQ(registry.join("ZZZZ", 2, t0).error(), RegistryErrc::UnknownNameplate);
}

TEST_F(SessionRegistryTest, OwnerCannotJoinOwnSessionOrCreateTwo) {
  auto created = registry.create(1, t0);
  EXPECT_EQ(registry.join(created->nameplate, 1, t0).error(), RegistryErrc::OwnSession);
  EXPECT_EQ(registry.create(1, t0).error(), RegistryErrc::AlreadyInSession);
}

TEST_F(SessionRegistryTest, UnusedNameplateExpiresAndSaysSo) {
  auto created = registry.create(1, t0);
  EXPECT_TRUE(registry.expire(t0 + 9min).empty());
  auto expired = registry.expire(t0 + 10min);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired.front(), 1u);
  EXPECT_EQ(registry.live_sessions(), 0u);
  EXPECT_EQ(registry.join(created->nameplate, 2, t0 + 11min).error(),
            RegistryErrc::NameplateExpired);
  // The owner is free to create a new session.
  EXPECT_TRUE(registry.create(1, t0 + 11min));
}

TEST_F(SessionRegistryTest, JoinAfterTtlButBeforeSweepIsExpired) {
  auto created = registry.create(1, t0);
  EXPECT_EQ(registry.join(created->nameplate, 2, t0 + 10min).error(),
            RegistryErrc::NameplateExpired);
}

TEST_F(SessionRegistryTest, JoinedSessionsDoNotExpire) {
  auto created = registry.create(1, t0);
  ASSERT_TRUE(registry.join(created->nameplate, 2, t0));
  EXPECT_TRUE(registry.expire(t0 + 1h).empty());
  EXPECT_EQ(registry.peer_of(1), 2u);
}

TEST_F(SessionRegistryTest, EndingASessionBurnsTheNameplateAndNamesThePeer) {
  auto created = registry.create(1, t0);
  ASSERT_TRUE(registry.join(created->nameplate, 2, t0));
  EXPECT_EQ(registry.end_session_of(2, t0), 1u);
  EXPECT_FALSE(registry.peer_of(1));
  EXPECT_EQ(registry.live_sessions(), 0u);
  EXPECT_EQ(registry.join(created->nameplate, 3, t0).error(), RegistryErrc::NameplateUsed);
  EXPECT_FALSE(registry.end_session_of(1, t0));
}

TEST_F(SessionRegistryTest, OwnerLeavingUnjoinedSessionHasNoPeer) {
  registry.create(1, t0).value();
  EXPECT_FALSE(registry.end_session_of(1, t0));
  EXPECT_EQ(registry.live_sessions(), 0u);
}

TEST_F(SessionRegistryTest, CollisionsPickAnotherNameplate) {
  forced = {7, 7, 7};
  auto first = registry.create(1, t0);
  auto second = registry.create(2, t0);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->nameplate, wire::crockford_encode(7, 4));
  EXPECT_NE(second->nameplate, first->nameplate);
}

TEST_F(SessionRegistryTest, BurnedNameplatesAreNotReminted) {
  forced = {9};
  auto first = registry.create(1, t0);
  registry.end_session_of(1, t0);
  forced = {9, 9};
  auto again = registry.create(2, t0 + 1min);
  ASSERT_TRUE(again);
  EXPECT_NE(again->nameplate, first->nameplate);
  // After the tombstone's lifetime the value may come back.
  forced = {9};
  auto later = registry.create(3, t0 + SessionRegistry::kTombstoneLifetime + 2min);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->nameplate, first->nameplate);
}

TEST_F(SessionRegistryTest, ExhaustionIsAnErrorNotALoop) {
  forced = {5};
  registry.create(1, t0).value();
  for (int i = 0; i < SessionRegistry::kMintAttempts; ++i) {
    forced.push_back(5);
  }
  EXPECT_EQ(registry.create(2, t0).error(), RegistryErrc::Exhausted);
}

}  // namespace
}  // namespace peertun::relay
