import Foundation
import Testing

@testable import CouponStore

@Suite("Coupon books end to end: reads, audit trail, statistics, inspection")
struct CouponBookTests {
  @Test func couponDetailsShowStateOwnerLockExpiryRedemptionsAndTheFullHistory() async throws {
    let clock = TestClock()
    try await withTemporaryStore(options: clock.options) { store, _ in
      _ = try await store.makeBook("audit", codes: ["AUDIT-1"], redemptionsPerCoupon: 2)
      #expect(try await store.couponDetails(code: "AUDIT-1")?.history == [])
      #expect(try await store.couponDetails(code: "NOPE") == nil)
      #expect(try await store.couponDetails(code: "") == nil)
      let t0 = clock.now
      _ = try await store.claimed("AUDIT-1", by: "lee")
      clock.advance(seconds: 1)
      _ = try await store.lock(code: "AUDIT-1", user: "lee")
      clock.advance(seconds: 1)
      _ = try await store.redeem(code: "AUDIT-1", user: "lee")
      clock.advance(seconds: 1)
      _ = try await store.rollback(code: "AUDIT-1", user: "lee")
      clock.advance(seconds: 1)
      _ = try await store.lock(code: "AUDIT-1", user: "lee")

      let details = try #require(try await store.couponDetails(code: "AUDIT-1"))
      #expect(details.coupon.code == "AUDIT-1")
      #expect(details.coupon.campaign == "audit")
      #expect(details.coupon.user == "lee")
      #expect(details.coupon.state == .locked)
      #expect(details.coupon.redemptions == 0)
      #expect(details.coupon.issuedAt == t0)
      #expect(details.coupon.lockExpiresAt == t0.addingTimeInterval(4 + 300))
      #expect(details.redemptionsMax == 2)
      #expect(
        details.history == [
          CouponEvent(kind: .assigned, time: t0, user: "lee"),
          CouponEvent(kind: .locked, time: t0.addingTimeInterval(1), user: "lee"),
          CouponEvent(kind: .redeemed, time: t0.addingTimeInterval(2), user: "lee"),
          CouponEvent(kind: .rolledBack, time: t0.addingTimeInterval(3), user: "lee"),
          CouponEvent(kind: .locked, time: t0.addingTimeInterval(4), user: "lee"),
        ])
      #expect(try await store.coupon(code: "AUDIT-1") == details.coupon)
    }
  }

  @Test func couponsOfAUserListEveryCouponWithItsState() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("mine", codes: bookCodes("MINE", 3), perUserLimit: 3)
      let generated = try await store.createCampaign(CampaignSpec(name: "gen", stock: 5))
      let first = try await store.claimed("MINE-0000000", by: "max")
      _ = try await store.claimed("MINE-0000001", by: "max")
      let third = try #require(try await store.claim(campaign: generated.id, user: "max").coupon)
      _ = try await store.lock(code: "MINE-0000001", user: "max")
      _ = try await store.lock(code: third.code, user: "max")
      _ = try await store.redeem(code: third.code, user: "max")
      let coupons = try await store.coupons(of: "max")
      #expect(coupons.map(\.code) == ["MINE-0000000", "MINE-0000001", third.code])
      #expect(coupons.map(\.state) == [.assigned, .locked, .redeemed])
      #expect(coupons[0] == first)
      #expect(coupons[1].lockExpiresAt != nil)
      #expect(try await store.coupons(of: "nobody") == [])
    }
  }

  @Test func statisticsCountCouponsPerStatePerCampaign() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("one", codes: bookCodes("ONE", 5), perUserLimit: 5)
      _ = try await store.makeBook("two", codes: bookCodes("TWO", 2))
      let generated = try await store.createCampaign(
        CampaignSpec(id: "gen", name: "gen", stock: 10))
      for code in bookCodes("ONE", 4) { _ = try await store.claimed(code, by: "ola") }
      for code in bookCodes("ONE", 3) { _ = try await store.lock(code: code, user: "ola") }
      for code in bookCodes("ONE", 2) { _ = try await store.redeem(code: code, user: "ola") }
      _ = try await store.claim(campaign: generated.id, user: "ola")
      let statistics = try await store.statistics()
      #expect(
        statistics.couponsByCampaign == [
          "one": [.available: 1, .assigned: 1, .locked: 1, .redeemed: 2],
          "two": [.available: 2, .assigned: 0, .locked: 0, .redeemed: 0],
          "gen": [.available: 0, .assigned: 1, .locked: 0, .redeemed: 0],
        ])
      #expect(statistics.couponsByState == [.available: 3, .assigned: 2, .locked: 1, .redeemed: 2])
      #expect(statistics.coupons == 8)
      #expect(statistics.issued == 5)
    }
  }

  /// `inspectCoupon` (what `couponstore inspect DIR --code` prints) replays a closed store's log
  /// read-only and finds the same coupon and history as the open store did; `verify` finds every
  /// lifecycle invariant intact.
  @Test func inspectingACouponOfAClosedStoreShowsItsHistory() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let store = try await CouponStore.open(directory: path)
    _ = try await store.makeBook("look", codes: ["LOOK-1", "LOOK-2"])
    _ = try await store.claimed("LOOK-1", by: "pia")
    _ = try await store.lock(code: "LOOK-1", user: "pia")
    _ = try await store.redeem(code: "LOOK-1", user: "pia")
    let live = try await store.couponDetails(code: "LOOK-1")
    try await store.close()
    let inspected = try CouponStore.inspectCoupon(directory: path, code: "LOOK-1")
    #expect(inspected == live)
    #expect(inspected?.history.map(\.kind) == [.assigned, .locked, .redeemed])
    #expect(
      try CouponStore.inspectCoupon(directory: path, code: "LOOK-2")?.coupon.state == .available)
    #expect(try CouponStore.inspectCoupon(directory: path, code: "LOOK-3") == nil)
    #expect(try CouponStore.inspect(directory: path).problems == [])
  }

  /// Damage that slipped past the checksums and breaks a lifecycle rule (a redemption without
  /// a lock) is refused on open as corruption, never applied and never a crash.
  @Test func aLifecycleEventThatBreaksTheRulesIsCorruptionOnReplay() throws {
    var state = try StoreState.withOnePool()
    try state.replay(
      .codesAdded(campaign: 0, upload: 2, final: true, codes: ["X"], time: 0, request: nil),
      sequence: 2)
    #expect(throws: ReplayError.self) {
      try state.replay(.locked(coupon: 0, time: 1, expiresAt: 2, request: nil), sequence: 3)
    }
    try state.replay(
      .poolClaimed(campaign: 0, coupon: 0, user: "u", time: 1, request: nil), sequence: 3)
    #expect(throws: ReplayError.self) {
      try state.replay(.redeemed(coupon: 0, time: 2, request: nil), sequence: 4)
    }
    #expect(throws: ReplayError.self) {
      try state.replay(.lockExpired(coupon: 0, time: 2), sequence: 4)
    }
    #expect(throws: ReplayError.self) {
      try state.replay(.rolledBack(coupon: 0, time: 2, request: nil), sequence: 4)
    }
    try state.replay(.locked(coupon: 0, time: 2, expiresAt: 1_002, request: nil), sequence: 4)
    #expect(throws: ReplayError.self) {
      try state.replay(.redeemed(coupon: 0, time: 1_002, request: nil), sequence: 5)
    }
    #expect(throws: ReplayError.self) {
      try state.replay(.locked(coupon: 7, time: 3, expiresAt: 9, request: nil), sequence: 5)
    }
    try state.replay(.redeemed(coupon: 0, time: 1_001, request: nil), sequence: 5)
    #expect(state.coupons[0].state == .redeemed)
    #expect(state.invariantViolations() == [])
  }
}
