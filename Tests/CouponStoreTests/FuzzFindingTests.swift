import Foundation
import Testing

@testable import CouponStore

/// Bugs the fuzzers found, each pinned by a readable test (the inputs themselves are replayed by
/// the FuzzRegressionTests target from Fuzz/FailCases; see Fuzz/FailCases/README.md).
@Suite("Fuzz findings")
struct FuzzFindingTests {
  /// snapshot-decoder: a block whose payload failed to decode was reported with its section's
  /// name, and a `SnapshotSection.description` that interpolated `self` recursed until the stack
  /// overflowed: a damaged snapshot crashed the process instead of being refused. The enum now
  /// has no `description`; interpolation prints the case name.
  @Test func everySnapshotSectionHasADistinctName() {
    let names = SnapshotSection.allCases.map { "\($0)" }
    #expect(Set(names).count == SnapshotSection.allCases.count)
    #expect("\(SnapshotSection.codes)" == "codes")
    #expect(names.allSatisfy { name in name.allSatisfy(\.isLetter) })
  }

  /// api-sequence: a pattern of 64 symbols with a prefix generates codes longer than the 64
  /// characters allowed for uploads; `coupon(code:)` returned nil for them and `claim(code:)`
  /// refused them as malformed.
  @Test func generatedCodeLongerThanSixtyFourCharactersIsFoundByItsCode() async throws {
    try await withTemporaryStore { store, _ in
      let pattern = CodePattern(alphabet: ["A", "B"], length: 64, prefix: "SPRING-")
      let campaign = try await store.createCampaign(
        CampaignSpec(name: "long codes", stock: 1, codes: .generated(pattern)))
      let coupon = try #require(try await store.claim(campaign: campaign.id, user: "u1").coupon)
      #expect(coupon.code.count == 71)
      #expect(try await store.coupon(code: coupon.code) == coupon)
      #expect(try await store.claim(code: coupon.code, user: "u2") == .codeNotFound)
    }
  }

  /// api-sequence: the request fingerprint of a create left out `lockTimeout` and `expiresAt`,
  /// so a different create reusing the id was answered with the first campaign.
  @Test func createReusingRequestIDWithAnotherLockTimeoutOrExpiryIsAConflict() async throws {
    try await withTemporaryStore { store, _ in
      let spec = CampaignSpec(name: "spring", stock: 1)
      let first = try await store.createCampaign(spec, requestID: "r1")
      var longerLock = spec
      longerLock.lockTimeout = 600
      var expiring = spec
      expiring.expiresAt = Date(timeIntervalSince1970: 2_000_000_000)
      for other in [longerLock, expiring] {
        let error = await #expect(throws: CouponStoreError.self) {
          try await store.createCampaign(other, requestID: "r1")
        }
        #expect(error?.code == .requestIDConflict)
      }
      #expect(try await store.createCampaign(spec, requestID: "r1") == first)
      #expect(try await store.campaigns().count == 1)
    }
  }

  /// api-sequence: two claims of one batch that reuse a request id for different requests. The
  /// second was answered as a retry of the first: user u2 was told it holds u1's coupon.
  @Test func batchReusingRequestIDForDifferentClaimsIsRefusedWhole() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "two", stock: 2))
      let error = await #expect(throws: CouponStoreError.self) {
        try await store.claim(batch: [
          ClaimRequest(campaign: campaign.id, user: "u1", requestID: "r1"),
          ClaimRequest(campaign: campaign.id, user: "u2", requestID: "r1"),
        ])
      }
      #expect(error?.code == .requestIDConflict)
      #expect(try await store.campaign(campaign.id)?.issued == 0)
      // The same request twice in one batch is a retry: one coupon, answered twice.
      let results = try await store.claim(batch: [
        ClaimRequest(campaign: campaign.id, user: "u1", requestID: "r2"),
        ClaimRequest(campaign: campaign.id, user: "u1", requestID: "r2"),
      ])
      #expect(results[0].coupon != nil)
      #expect(results[1] == results[0])
      #expect(try await store.campaign(campaign.id)?.issued == 1)
    }
  }
}
