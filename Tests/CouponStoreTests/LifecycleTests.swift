import Foundation
import Testing

@testable import CouponStore

@Suite("Coupon lifecycle: lock, unlock, redeem, rollback")
struct LifecycleTests {
  /// Timeline: alice holds one coupon. 1,000 tasks lock it for her at once: the writer decides
  /// them one by one, the first locks, the other 999 find it locked. The clock moves past the
  /// lock timeout: redeeming under the dead lock is refused (and the expiry is in the history);
  /// a second race of 1,000 locks again has exactly one winner, who redeems.
  @Test func thousandConcurrentLocksHaveOneWinnerAndTheLockExpiresAfterItsTimeout() async throws {
    let clock = TestClock()
    try await withTemporaryStore(options: clock.options) { store, _ in
      _ = try await store.makeBook("race", codes: ["RACE-1"], lockTimeout: 300)
      _ = try await store.claimed("RACE-1", by: "alice")

      let lockedAt = clock.now
      var results = try await Self.raceLocks("RACE-1", user: "alice", store: store)
      #expect(results.compactMap(\.coupon).count == 1)
      #expect(results.filter { $0 == .alreadyLocked }.count == 999)
      let lock = try #require(results.compactMap(\.coupon).first)
      #expect(lock.state == .locked)
      #expect(lock.lockExpiresAt == lockedAt.addingTimeInterval(300))

      clock.advance(seconds: 299)
      #expect(try await store.lock(code: "RACE-1", user: "alice") == .alreadyLocked)
      clock.advance(seconds: 2)
      #expect(try await store.redeem(code: "RACE-1", user: "alice") == .notLocked)
      let expired = try #require(try await store.couponDetails(code: "RACE-1"))
      #expect(expired.coupon.state == .assigned)
      #expect(expired.coupon.lockExpiresAt == nil)
      #expect(expired.history.map(\.kind) == [.assigned, .locked, .expired])
      #expect(expired.history.last?.time == lockedAt.addingTimeInterval(300))
      #expect(expired.history.last?.user == "alice")

      results = try await Self.raceLocks("RACE-1", user: "alice", store: store)
      #expect(results.compactMap(\.coupon).count == 1)
      #expect(results.filter { $0 == .alreadyLocked }.count == 999)
      let redeemed = try #require(try await store.redeem(code: "RACE-1", user: "alice").coupon)
      #expect(redeemed.state == .redeemed)
      #expect(redeemed.redemptions == 1)
    }
  }

  static func raceLocks(_ code: String, user: String, store: CouponStore) async throws
    -> [LockResult]
  {
    try await withThrowingTaskGroup(of: LockResult.self) { group in
      for _ in 0..<1_000 {
        group.addTask { try await store.lock(code: code, user: user) }
      }
      return try await group.reduce(into: [LockResult]()) { $0.append($1) }
    }
  }

  /// Redeem without a lock, by someone else, after the campaign expired, and of a code that does
  /// not exist: each refused, and none writes a log record. Someone else's code and an unknown
  /// code get the same answer from every call.
  @Test func refusedRedemptionsWriteNothingAndHideOtherUsersCodes() async throws {
    let clock = TestClock()
    try await withTemporaryStore(options: clock.options) { store, _ in
      _ = try await store.makeBook(
        "shop", codes: ["ALICE-1", "BOB-1"], expiresAt: clock.now.addingTimeInterval(60))
      _ = try await store.claimed("ALICE-1", by: "alice")
      _ = try await store.claimed("BOB-1", by: "bob")
      let start = try await store.statistics().lastSequence

      #expect(try await store.redeem(code: "ALICE-1", user: "alice") == .notLocked)
      let othersCode = try await store.redeem(code: "ALICE-1", user: "bob")
      let unknownCode = try await store.redeem(code: "NO-SUCH-CODE", user: "bob")
      #expect(othersCode == .notFound)
      #expect(othersCode == unknownCode)
      #expect(try await store.redeem(code: "ALICE-1", user: nil) == unknownCode)
      #expect(
        try await store.lock(code: "ALICE-1", user: "bob")
          == store.lock(code: "NO-SUCH-CODE", user: "bob"))
      #expect(
        try await store.unlock(code: "ALICE-1", user: "bob")
          == store.unlock(code: "NO-SUCH-CODE", user: "bob"))
      #expect(
        try await store.rollback(code: "ALICE-1", user: "bob")
          == store.rollback(code: "NO-SUCH-CODE", user: "bob"))
      #expect(try await store.statistics().lastSequence == start)

      #expect(try await store.lock(code: "ALICE-1", user: "alice").coupon != nil)
      #expect(try await store.statistics().lastSequence == start + 1)
      clock.advance(seconds: 61)  // past expiresAt, while the 300-second lock is still live
      #expect(try await store.redeem(code: "ALICE-1", user: "alice") == .expired)
      #expect(try await store.lock(code: "BOB-1", user: "bob") == .expired)
      #expect(try await store.redeem(code: "ALICE-1", user: "bob") == .notFound)
      #expect(try await store.statistics().lastSequence == start + 1)
      let alice = try #require(try await store.coupon(code: "ALICE-1"))
      #expect(alice.state == .locked)
      #expect(alice.redemptions == 0)
    }
  }

  /// Gift-card style: a coupon redeemable three times goes back to `assigned` after the first two
  /// redemptions and is `redeemed` after the third; a fourth is refused; a rollback frees one
  /// more, and the history shows every step.
  @Test func threeRedemptionsSucceedTheFourthIsRefusedAndARollbackFreesOneMore() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook(
        "gift", codes: ["GIFT-1", "GIFT-2"], perUserLimit: 2, redemptionsPerCoupon: 3)
      _ = try await store.claimed("GIFT-1", by: "carol")
      for round in 1...3 {
        #expect(try await store.lock(code: "GIFT-1", user: "carol").coupon?.state == .locked)
        let coupon = try #require(try await store.redeem(code: "GIFT-1", user: "carol").coupon)
        #expect(coupon.redemptions == round)
        #expect(coupon.state == (round < 3 ? .assigned : .redeemed))
      }
      #expect(try await store.lock(code: "GIFT-1", user: "carol") == .fullyRedeemed)
      #expect(try await store.redeem(code: "GIFT-1", user: "carol") == .fullyRedeemed)
      var details = try #require(try await store.couponDetails(code: "GIFT-1"))
      #expect(details.history.filter { $0.kind == .redeemed }.count == 3)
      #expect(details.redemptionsMax == 3)

      let rolledBack = try #require(try await store.rollback(code: "GIFT-1", user: "carol").coupon)
      #expect(rolledBack.state == .assigned)
      #expect(rolledBack.redemptions == 2)
      #expect(try await store.lock(code: "GIFT-1", user: "carol").coupon != nil)
      #expect(try await store.redeem(code: "GIFT-1", user: "carol").coupon?.state == .redeemed)
      details = try #require(try await store.couponDetails(code: "GIFT-1"))
      #expect(
        details.history.map(\.kind) == [
          .assigned, .locked, .redeemed, .locked, .redeemed, .locked, .redeemed, .rolledBack,
          .locked, .redeemed,
        ])
      #expect(details.history.allSatisfy { $0.user == "carol" })

      _ = try await store.claimed("GIFT-2", by: "carol")
      #expect(try await store.rollback(code: "GIFT-2", user: "carol") == .notRedeemed)
    }
  }

  /// A rollback of a multi-redemption coupon that is locked for its next checkout takes one
  /// redemption back and leaves the lock alone.
  @Test func rollbackWhileLockedKeepsTheLock() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("card", codes: ["CARD-1"], redemptionsPerCoupon: 5)
      _ = try await store.claimed("CARD-1", by: "dora")
      _ = try await store.lock(code: "CARD-1", user: "dora")
      _ = try await store.redeem(code: "CARD-1", user: "dora")
      let locked = try #require(try await store.lock(code: "CARD-1", user: "dora").coupon)
      let after = try #require(try await store.rollback(code: "CARD-1", user: "dora").coupon)
      #expect(after.state == .locked)
      #expect(after.redemptions == 0)
      #expect(after.lockExpiresAt == locked.lockExpiresAt)
      #expect(try await store.redeem(code: "CARD-1", user: "dora").coupon?.redemptions == 1)
    }
  }

  @Test func unlockReturnsTheCouponToAssignedAndOnlyItsOwnerMayUnlock() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("hold", codes: ["HOLD-1"])
      _ = try await store.claimed("HOLD-1", by: "erin")
      #expect(try await store.unlock(code: "HOLD-1", user: "erin") == .notLocked)
      _ = try await store.lock(code: "HOLD-1", user: "erin")
      #expect(try await store.unlock(code: "HOLD-1", user: "frank") == .notFound)
      let unlocked = try #require(try await store.unlock(code: "HOLD-1", user: "erin").coupon)
      #expect(unlocked.state == .assigned)
      #expect(unlocked.lockExpiresAt == nil)
      #expect(try await store.redeem(code: "HOLD-1", user: "erin") == .notLocked)
      let history = try await store.couponDetails(code: "HOLD-1")?.history.map(\.kind)
      #expect(history == [.assigned, .locked, .unlocked])
    }
  }

  /// An anonymously issued coupon has no owner: it is locked and redeemed with `user: nil` (a
  /// bearer coupon), and a named user gets `notFound` for it.
  @Test func anonymousCouponsAreLockedAndRedeemedWithoutAUser() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "anon", stock: 2))
      let coupon = try #require(try await store.claim(campaign: campaign.id, user: nil).coupon)
      #expect(try await store.lock(code: coupon.code, user: "gina") == .notFound)
      #expect(try await store.lock(code: coupon.code, user: nil).coupon?.user == nil)
      #expect(try await store.redeem(code: coupon.code, user: nil).coupon?.state == .redeemed)
      let named = try #require(try await store.claim(campaign: campaign.id, user: "gina").coupon)
      #expect(try await store.lock(code: named.code, user: nil) == .notFound)
    }
  }

  /// A retried call with the same request id answers as the first time and changes nothing,
  /// before and after a reopen; reusing the id for another call is refused.
  @Test func retriedLifecycleCallsReturnTheFirstAnswerAlsoAfterReopen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var store = try await CouponStore.open(directory: path)
    _ = try await store.makeBook("retry", codes: ["RETRY-1", "RETRY-2"], perUserLimit: 2)
    _ = try await store.claimed("RETRY-1", by: "hana")
    _ = try await store.claimed("RETRY-2", by: "hana")
    #expect(try await store.lock(code: "RETRY-1", user: "hana", requestID: "l1").coupon != nil)
    #expect(try await store.lock(code: "RETRY-1", user: "hana", requestID: "l2") == .alreadyLocked)
    let first = try await store.redeem(code: "RETRY-1", user: "hana", requestID: "r1")
    #expect(first.coupon?.redemptions == 1)
    #expect(try await store.redeem(code: "RETRY-2", user: "hana", requestID: "r2") == .notLocked)
    let written = try await store.statistics().lastSequence
    #expect(try await store.redeem(code: "RETRY-1", user: "hana", requestID: "r1") == first)
    #expect(try await store.lock(code: "RETRY-1", user: "hana", requestID: "l2") == .alreadyLocked)
    #expect(try await store.statistics().lastSequence == written)
    try await store.close()

    store = try await CouponStore.open(directory: path)
    #expect(try await store.redeem(code: "RETRY-1", user: "hana", requestID: "r1") == first)
    #expect(try await store.redeem(code: "RETRY-2", user: "hana", requestID: "r2") == .notLocked)
    #expect(try await store.lock(code: "RETRY-1", user: "hana", requestID: "l1").coupon != nil)
    #expect(try await store.statistics().lastSequence == written)
    await #expect(throws: CouponStoreError.self) {
      try await store.rollback(code: "RETRY-1", user: "hana", requestID: "r1")
    }
    #expect(try await store.coupon(code: "RETRY-1")?.redemptions == 1)
    try await store.close()
  }

  /// A lock that runs out shows as expired in every read, also when nobody touches the coupon:
  /// the writer expires due locks before each request.
  @Test func anExpiredLockShowsInReadsAndStatisticsWithoutTouchingTheCoupon() async throws {
    let clock = TestClock()
    try await withTemporaryStore(options: clock.options) { store, _ in
      let book = try await store.makeBook("idle", codes: ["IDLE-1", "IDLE-2"], lockTimeout: 60)
      _ = try await store.claimed("IDLE-1", by: "ivan")
      _ = try await store.claimed("IDLE-2", by: "jane")
      _ = try await store.lock(code: "IDLE-1", user: "ivan")
      clock.advance(seconds: 30)
      _ = try await store.lock(code: "IDLE-2", user: "jane")
      var counts = try await store.statistics().couponsByCampaign[book.id]
      #expect(counts?[.locked] == 2)
      clock.advance(seconds: 31)
      counts = try await store.statistics().couponsByCampaign[book.id]
      #expect(counts?[.locked] == 1)
      #expect(counts?[.assigned] == 1)
      #expect(try await store.coupons(of: "ivan").map(\.state) == [.assigned])
      #expect(try await store.coupons(of: "jane").map(\.state) == [.locked])
      clock.advance(seconds: 30)
      #expect(try await store.coupon(code: "IDLE-2")?.state == .assigned)
      #expect(try await store.couponDetails(code: "IDLE-2")?.history.last?.kind == .expired)
    }
  }

  /// Coupons in every state (available, assigned, locked, partly redeemed, fully redeemed, rolled
  /// back, unlocked, expired) are identical after a reopen, lock expiry times included, and a
  /// lock restored by replay still runs out at its time.
  @Test func everyLifecycleStateSurvivesCloseAndReopenExactly() async throws {
    let clock = TestClock()
    let options = clock.options
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = bookCodes("KEEP", 9)
    var store = try await CouponStore.open(directory: path, options: options)
    _ = try await store.makeBook("keep", codes: codes, perUserLimit: 10, redemptionsPerCoupon: 2)
    for code in codes.prefix(8) { _ = try await store.claimed(code, by: "kim") }
    _ = try await store.lock(code: codes[1], user: "kim")  // locked
    for code in [codes[2], codes[3], codes[4], codes[5]] {
      _ = try await store.lock(code: code, user: "kim")
      _ = try await store.redeem(code: code, user: "kim")  // one of two redemptions
    }
    for code in [codes[3], codes[4]] {
      _ = try await store.lock(code: code, user: "kim")
      _ = try await store.redeem(code: code, user: "kim")  // fully redeemed
    }
    _ = try await store.rollback(code: codes[4], user: "kim")
    _ = try await store.lock(code: codes[5], user: "kim")
    _ = try await store.unlock(code: codes[5], user: "kim")
    clock.advance(seconds: 10)
    _ = try await store.lock(code: codes[6], user: "kim")
    clock.advance(seconds: 295)  // codes[1]'s lock ran out; codes[6]'s has 5 s left
    let before = try await store.details(codes)
    let statisticsBefore = try await store.statistics()
    let couponsBefore = try await store.coupons(of: "kim")
    #expect(
      before.map { $0?.coupon.state } == [
        .assigned, .assigned, .assigned, .redeemed, .assigned, .assigned, .locked, .assigned,
        .available,
      ])
    #expect(before[1]?.history.last?.kind == .expired)
    #expect(before[6]?.coupon.lockExpiresAt != nil)
    try await store.close()

    store = try await CouponStore.open(directory: path, options: options)
    #expect(try await store.details(codes) == before)
    #expect(try await store.statistics().business == statisticsBefore.business)
    #expect(try await store.coupons(of: "kim") == couponsBefore)
    #expect(try await store.lock(code: codes[6], user: "kim") == .alreadyLocked)
    clock.advance(seconds: 5)
    #expect(try await store.lock(code: codes[6], user: "kim").coupon != nil)
    try await store.close()
    #expect(try CouponStore.inspect(directory: path).problems == [])
  }
}
