import Foundation
import Testing

@testable import CouponStore

/// `count` distinct codes `PREFIX-0000000`, `PREFIX-0000001`, …
func bookCodes(_ prefix: String, _ count: Int, from start: Int = 0) -> [String] {
  (start..<start + count).map { prefix + "-" + String(format: "%07d", $0) }
}

extension CouponStore {
  /// Creates a pool campaign and uploads `codes` to it; every code must be accepted.
  func makeBook(
    _ id: String, codes: [String], perUserLimit: Int = 1, redemptionsPerCoupon: Int = 1,
    lockTimeout: TimeInterval = 300, expiresAt: Date? = nil
  ) async throws -> Campaign {
    let campaign = try await createCampaign(
      CampaignSpec(
        id: id, name: id, perUserLimit: perUserLimit, redemptionsPerCoupon: redemptionsPerCoupon,
        codes: .pool, lockTimeout: lockTimeout, expiresAt: expiresAt))
    let result = try await addCodes(codes, to: campaign.id)
    #expect(result.added == codes.count)
    #expect(result.rejected.isEmpty)
    return campaign
  }

  /// Claims the named code for `user`, which must succeed.
  func claimed(_ code: String, by user: String?) async throws -> Coupon {
    try #require(try await claim(code: code, user: user).coupon)
  }

  /// Every coupon of the given codes with its history, in the codes' order.
  func details(_ codes: [String]) async throws -> [CouponDetails?] {
    var all: [CouponDetails?] = []
    for code in codes { all.append(try await couponDetails(code: code)) }
    return all
  }
}

extension TestClock {
  /// Store options whose clock is this one.
  var options: CouponStore.Options {
    var options = CouponStore.Options()
    options.clock = function
    return options
  }
}

extension StoreState {
  /// A state holding one pool campaign (index 0, one coupon per user and redemption, 1-second
  /// locks), as replay builds it: for tests that feed records to replay by hand.
  static func withOnePool() throws -> StoreState {
    var state = StoreState(requestWindow: 10)
    try state.replay(
      .campaignCreated(
        CampaignRecord(
          id: "pool", name: "pool", stock: 0, startsAt: 0, endsAt: nil, perUserLimit: 1,
          redemptionsPerCoupon: 1, codes: .pool, lockTimeoutMillis: 1_000, expiresAt: nil,
          createdAt: 0), request: nil), sequence: 1)
    return state
  }
}

extension StoreStatistics {
  /// The statistics without the fields that describe the log files (which change on reopen).
  var business: StoreStatistics {
    var copy = self
    copy.lastSequence = 0
    copy.logBytes = 0
    copy.segments = 0
    copy.logWrites = 0
    copy.logSyncs = 0
    return copy
  }
}
