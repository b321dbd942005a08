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

extension StoreStatistics {
  /// The statistics without the fields that describe the log files (which change on reopen).
  var business: StoreStatistics {
    var copy = self
    copy.lastSequence = 0
    copy.logBytes = 0
    copy.segments = 0
    return copy
  }
}
