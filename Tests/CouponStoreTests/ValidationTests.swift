import Foundation
import Testing

@testable import CouponStore

@Suite("Bad input and idempotency")
struct ValidationTests {
  static let tooSmall = CodePattern(alphabet: ["A", "B"], length: 10)  // 1,024 combinations

  static let invalidSpecs: [(String, CampaignSpec)] = [
    ("stock", CampaignSpec(name: "neg", stock: -1)),
    ("id", CampaignSpec(id: "", name: "empty id", stock: 1)),
    ("id", CampaignSpec(id: String(repeating: "x", count: 65), name: "long id", stock: 1)),
    ("id", CampaignSpec(id: "a\u{0}b", name: "control", stock: 1)),
    (
      "endsAt",
      CampaignSpec(
        name: "backwards", stock: 1, startsAt: Date(timeIntervalSince1970: 2_000),
        endsAt: Date(timeIntervalSince1970: 1_000))
    ),
    ("codes", CampaignSpec(name: "small", stock: 2, codes: .generated(tooSmall))),
    ("perUserLimit", CampaignSpec(name: "limit", stock: 1, perUserLimit: 0)),
    ("redemptionsPerCoupon", CampaignSpec(name: "redeem", stock: 1, redemptionsPerCoupon: 0)),
    ("lockTimeout", CampaignSpec(name: "lock", stock: 1, lockTimeout: -1)),
    ("stock", CampaignSpec(name: "pool with stock", stock: 5, codes: .pool)),
    (
      "codes.length",
      CampaignSpec(
        name: "len", stock: 1, codes: .generated(CodePattern(alphabet: ["A", "B"], length: 0)))
    ),
    ("name", CampaignSpec(name: String(repeating: "n", count: 300), stock: 1)),
  ]

  @Test(arguments: 0..<invalidSpecs.count)
  func invalidCampaignSpecIsRefusedNamingTheFieldAndWritesNothing(index: Int) async throws {
    let (field, spec) = Self.invalidSpecs[index]
    try await withTemporaryStore { store, _ in
      let before = try await store.statistics().lastSequence
      do {
        _ = try await store.createCampaign(spec)
        Issue.record("accepted invalid spec for \(field)")
      } catch let error as CouponStoreError {
        #expect(error.code == .invalidArgument)
        #expect(error.field == field)
      }
      #expect(try await store.campaigns().isEmpty)
      #expect(try await store.statistics().lastSequence == before)
    }
  }

  @Test func invalidClaimArgumentsAreRefused() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "c", stock: 5))
      let before = try await store.statistics().lastSequence
      for (field, call) in [
        ("user", { try await store.claim(campaign: campaign.id, user: "") }),
        (
          "user",
          { try await store.claim(campaign: campaign.id, user: String(repeating: "u", count: 200)) }
        ),
        ("user", { try await store.claim(campaign: campaign.id, user: "bad\nuser") }),
        ("campaign", { try await store.claim(campaign: "", user: "u") }),
        ("requestID", { try await store.claim(campaign: campaign.id, user: "u", requestID: "") }),
        ("code", { try await store.claim(code: "", user: "u") }),
      ] as [(String, () async throws -> ClaimResult)] {
        do {
          _ = try await call()
          Issue.record("accepted invalid \(field)")
        } catch let error as CouponStoreError {
          #expect(error.code == .invalidArgument)
          #expect(error.field == field)
        }
      }
      #expect(try await store.statistics().lastSequence == before)
      #expect(try await store.campaign(campaign.id)?.issued == 0)
    }
  }

  @Test func duplicateCampaignIDIsRefused() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.createCampaign(CampaignSpec(id: "x", name: "x", stock: 1))
      do {
        _ = try await store.createCampaign(CampaignSpec(id: "x", name: "again", stock: 1))
        Issue.record("duplicate id accepted")
      } catch let error as CouponStoreError {
        #expect(error.code == .campaignExists)
      }
      let generated = try await store.createCampaign(CampaignSpec(name: "gen", stock: 1))
      #expect(generated.id.count == 8)
      #expect(generated.id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    }
  }

  @Test func retriedRequestIDReturnsTheFirstAnswerAndIssuesNothingNew() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var store = try await CouponStore.open(directory: path)
    let campaign = try await store.createCampaign(
      CampaignSpec(name: "idem", stock: 5, perUserLimit: 5))
    let first = try await store.claim(campaign: campaign.id, user: "u", requestID: "req-1")
    let retry = try await store.claim(campaign: campaign.id, user: "u", requestID: "req-1")
    #expect(first.coupon != nil)
    #expect(retry == first)
    #expect(try await store.campaign(campaign.id)?.issued == 1)
    try await store.close()
    // The answer survives a restart.
    store = try await CouponStore.open(directory: path)
    #expect(try await store.claim(campaign: campaign.id, user: "u", requestID: "req-1") == first)
    #expect(try await store.campaign(campaign.id)?.issued == 1)
    // A different request reusing the id is refused, and issues nothing.
    do {
      _ = try await store.claim(campaign: campaign.id, user: "other", requestID: "req-1")
      Issue.record("conflicting reuse of a request id accepted")
    } catch {
      #expect(error.code == .requestIDConflict)
    }
    #expect(try await store.campaign(campaign.id)?.issued == 1)
    try await store.close()
  }

  @Test func retriedCreateCampaignReturnsTheSameCampaign() async throws {
    try await withTemporaryStore { store, _ in
      let spec = CampaignSpec(name: "gen", stock: 10)
      let first = try await store.createCampaign(spec, requestID: "create-1")
      let second = try await store.createCampaign(spec, requestID: "create-1")
      #expect(first == second)
      #expect(try await store.campaigns().count == 1)
      do {
        _ = try await store.createCampaign(
          CampaignSpec(name: "other", stock: 1), requestID: "create-1")
        Issue.record("conflicting reuse of a request id accepted")
      } catch let error as CouponStoreError {
        #expect(error.code == .requestIDConflict)
      }
    }
  }

  @Test
  func controlCharacterScanAgreesWithUnicodeGeneralCategory() {
    // Every scalar of the first 0x800 (one- and two-byte UTF-8), then samples beyond, alone and
    // between other text: the byte scan must flag exactly the scalars of category Cc.
    let scalars =
      (0..<0x800).compactMap(Unicode.Scalar.init)
      + ["\u{2028}", "\u{FEFF}", "\u{200B}", "가", "😀", "\u{E000}"].flatMap(\.unicodeScalars)
    for scalar in scalars {
      let expected = scalar.properties.generalCategory == .control
      for text in [String(scalar), "a\(scalar)b", "가\(scalar)"] {
        #expect(
          Validate.containsControlCharacter(text) == expected,
          "U+\(String(scalar.value, radix: 16)) in \(text.debugDescription)")
      }
    }
  }
}
