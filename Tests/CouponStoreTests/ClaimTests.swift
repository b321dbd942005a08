import Foundation
import Testing

@testable import CouponStore

@Suite("Claims under concurrency")
struct ClaimTests {
  /// Timeline: 10,000 tasks start at once and each claims anonymously from a campaign with a
  /// stock of 1. The writer decides them one by one: the first wins, every later one sees the
  /// stock gone.
  @Test func tenThousandClaimsOnStockOneIssueExactlyOne() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "one", stock: 1))
      let results = try await withThrowingTaskGroup(of: ClaimResult.self) { group in
        for _ in 0..<10_000 {
          group.addTask { try await store.claim(campaign: campaign.id, user: nil) }
        }
        return try await group.reduce(into: [ClaimResult]()) { $0.append($1) }
      }
      #expect(results.filter { $0.coupon != nil }.count == 1)
      #expect(results.filter { $0 == .soldOut }.count == 9_999)
      let after = try #require(try await store.campaign(campaign.id))
      #expect(after.issued == 1)
      #expect(after.remaining == 0)
    }
  }

  /// The writer prepares claims ahead in windows of 256 (candidate codes, user hashes): the
  /// answers must be exactly the stored coupons, across window edges, for single claims from
  /// 1,000 tasks (one writer batch spans several windows) and for a batch of 700 in which every
  /// user appears twice (the second is refused by the per-user limit, decided in order).
  @Test func claimAnswersAreTheStoredCouponsAcrossLookaheadWindows() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "ahead", stock: 10_000))
      let singles = try await withThrowingTaskGroup(of: ClaimResult.self) { group in
        for index in 0..<1_000 {
          group.addTask {
            try await store.claim(campaign: campaign.id, user: index % 3 == 0 ? nil : "s\(index)")
          }
        }
        return try await group.reduce(into: [ClaimResult]()) { $0.append($1) }
      }
      let requests = (0..<700).map {
        ClaimRequest(campaign: campaign.id, user: "b\($0 % 350)")
      }
      let batch = try await store.claim(batch: requests)
      #expect(batch.prefix(350).allSatisfy { $0.coupon != nil })
      for (request, result) in zip(requests, batch).dropFirst(350) {
        guard case .limitReached(let existing) = result else {
          Issue.record("second claim of \(request.user ?? "-") answered \(result)")
          continue
        }
        #expect(existing.map(\.user) == [request.user])
      }
      let coupons = (singles + batch).compactMap(\.coupon)
      #expect(coupons.count == 1_350)
      #expect(Set(coupons.map(\.code)).count == coupons.count)
      for coupon in coupons {
        #expect(try await store.coupon(code: coupon.code) == coupon)
      }
    }
  }

  /// `logWrites` and `logSyncs` count the log's writes and syncs: claims made one after another
  /// each need their own sync before they are acknowledged; without syncing, none happens.
  @Test func statisticsCountLogWritesAndSyncs() async throws {
    for durability in [CouponStore.Durability.synchronous, .noSync] {
      var options = CouponStore.Options()
      options.durability = durability
      try await withTemporaryStore(options: options) { store, _ in
        let campaign = try await store.createCampaign(CampaignSpec(name: "counted", stock: 20))
        let before = try await store.statistics()
        for user in 0..<20 {
          _ = try await store.claim(campaign: campaign.id, user: "u\(user)")
        }
        let after = try await store.statistics()
        #expect(after.logWrites - before.logWrites >= 20)
        if durability == .synchronous {
          #expect(after.logSyncs - before.logSyncs >= 20)
        } else {
          #expect(after.logSyncs == 0)
        }
      }
    }
  }

  /// Timeline: 50 distinct users claim at once from a stock of 5.
  @Test func fiftyUsersOnStockFiveIssueExactlyFiveToDistinctUsers() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "five", stock: 5))
      let results = try await withThrowingTaskGroup(of: ClaimResult.self) { group in
        for user in 0..<50 {
          group.addTask { try await store.claim(campaign: campaign.id, user: "user-\(user)") }
        }
        return try await group.reduce(into: [ClaimResult]()) { $0.append($1) }
      }
      #expect(results.compactMap(\.coupon).count == 5)
      #expect(results.filter { $0 == .soldOut }.count == 45)
      let after = try #require(try await store.campaign(campaign.id))
      #expect(after.remaining == 0)
      let page = try #require(try await store.claims(of: campaign.id))
      #expect(page.claims.count == 5)
      #expect(Set(page.claims.compactMap(\.user)).count == 5)
      #expect(page.next == nil)
    }
  }

  /// Timeline: one user fires 15 claims at once on a stock of 10 with a limit of 1; the first
  /// decided wins and the other 14 see "limit reached" carrying that same coupon.
  @Test func oneUserFifteenConcurrentClaimsGetsOneCouponAndFourteenLimitReached() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "ten", stock: 10))
      let results = try await withThrowingTaskGroup(of: ClaimResult.self) { group in
        for _ in 0..<15 {
          group.addTask { try await store.claim(campaign: campaign.id, user: "alice") }
        }
        return try await group.reduce(into: [ClaimResult]()) { $0.append($1) }
      }
      let won = results.compactMap(\.coupon)
      #expect(won.count == 1)
      let repeats = results.compactMap { result -> [Coupon]? in
        if case .limitReached(let existing) = result { return existing }
        return nil
      }
      #expect(repeats.count == 14)
      #expect(repeats.allSatisfy { $0.map(\.code) == [won[0].code] })
      #expect(try await store.campaign(campaign.id)?.remaining == 9)
    }
  }

  /// Timeline: 2,000 tasks each make 50 claims for users drawn from 1,000, limit 3, stock
  /// 50,000: the limit binds long before the stock (1,000 × 3 = 3,000 coupons at most).
  @Test func hundredThousandClaimsRespectStockAndPerUserLimit() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(
        CampaignSpec(name: "many", stock: 50_000, perUserLimit: 3))
      let coupons = try await withThrowingTaskGroup(of: [Coupon].self) { group in
        for task in 0..<2_000 {
          group.addTask {
            var won: [Coupon] = []
            for claim in 0..<50 {
              let user = "user-\((task * 50 + claim) % 1_000)"
              if let coupon = try await store.claim(campaign: campaign.id, user: user).coupon {
                won.append(coupon)
              }
            }
            return won
          }
        }
        return try await group.reduce(into: [Coupon]()) { $0 += $1 }
      }
      #expect(coupons.count <= 50_000)
      #expect(coupons.count == 3_000)
      #expect(Set(coupons.map(\.code)).count == coupons.count)
      let perUser = Dictionary(grouping: coupons, by: { $0.user ?? "" })
      #expect(perUser.values.allSatisfy { $0.count <= 3 })
      let after = try #require(try await store.campaign(campaign.id))
      #expect(after.issued == coupons.count)
    }
  }

  @Test func claimsBeforeStartAndAfterEndAreRefused() async throws {
    let clock = TestClock()
    var options = CouponStore.Options()
    options.clock = clock.function
    try await withTemporaryStore(options: options) { store, _ in
      let campaign = try await store.createCampaign(
        CampaignSpec(
          name: "window", stock: 10, startsAt: clock.now.addingTimeInterval(60),
          endsAt: clock.now.addingTimeInterval(120)))
      #expect(try await store.claim(campaign: campaign.id, user: "u") == .notStarted)
      clock.advance(seconds: 90)
      #expect(try await store.claim(campaign: campaign.id, user: "u").coupon != nil)
      clock.advance(seconds: 60)
      #expect(try await store.claim(campaign: campaign.id, user: "v") == .ended)
      #expect(try await store.claim(campaign: "nope", user: "v") == .campaignNotFound)
    }
  }

  @Test func batchClaimsAreDecidedInOrder() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "batch", stock: 3))
      let requests = (0..<5).map { ClaimRequest(campaign: campaign.id, user: "u\($0 % 4)") }
      let results = try await store.claim(batch: requests)
      #expect(results.count == 5)
      #expect(results[0...2].allSatisfy { $0.coupon != nil })
      #expect(results[3] == .soldOut)
      // u0 already holds one: the limit is checked before the stock.
      if case .limitReached(let existing) = results[4] {
        #expect(existing == [results[0].coupon!])
      } else {
        Issue.record("expected limitReached, got \(results[4])")
      }
    }
  }

  @Test func generatedCodesFollowTheirPattern() async throws {
    try await withTemporaryStore { store, _ in
      let spring = CodePattern(
        alphabet: CodePattern.unambiguousSymbols, length: 8, prefix: "SPRING-", groupSize: 4)
      let a = try await store.createCampaign(
        CampaignSpec(name: "a", stock: 100, codes: .generated(spring)))
      let b = try await store.createCampaign(
        CampaignSpec(name: "b", stock: 100, codes: .generated(.hangulDigits)))
      let code = try #require(try await store.claim(campaign: a.id, user: "u").coupon?.code)
      #expect(code.hasPrefix("SPRING-"))
      #expect(code.count == 16)
      #expect(code.split(separator: "-").map(\.count) == [6, 4, 4])
      let hangul = try #require(try await store.claim(campaign: b.id, user: "u").coupon?.code)
      #expect(hangul.count == 10)
      #expect(hangul.allSatisfy { CodePattern.hangulDigitSymbols.contains($0) })
      #expect(try await store.coupon(code: hangul)?.user == "u")
      #expect(try await store.coupons(of: "u").map(\.code) == [code, hangul])
    }
  }

  @Test func claimPagesWalkTheIssueOrder() async throws {
    try await withTemporaryStore { store, _ in
      let campaign = try await store.createCampaign(CampaignSpec(name: "pages", stock: 25))
      var issued: [String] = []
      for user in 0..<25 {
        issued.append(try await store.claim(campaign: campaign.id, user: "p\(user)").coupon!.code)
      }
      var seen: [String] = []
      var cursor: ClaimCursor?
      repeat {
        let page = try #require(try await store.claims(of: campaign.id, after: cursor, limit: 10))
        seen += page.claims.map(\.code)
        cursor = page.next
      } while cursor != nil
      #expect(seen == issued)
      #expect(try await store.claims(of: "missing") == nil)
    }
  }
}
