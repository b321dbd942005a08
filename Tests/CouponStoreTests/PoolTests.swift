import Foundation
import Synchronization
import Testing

@testable import CouponStore

@Suite("Code pools: uploads, fair assignment, pregenerated books")
struct PoolTests {
  @Test func uploadReportsEveryRejectionWithItsReasonInUploadOrder() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("first", codes: ["TAKEN-1"])
      let generated = try await store.createCampaign(CampaignSpec(name: "gen", stock: 5))
      let issued = try #require(try await store.claim(campaign: generated.id, user: "u").coupon)
      let pool = try await store.createCampaign(
        CampaignSpec(id: "pool", name: "pool", codes: .pool))
      let hangul64 = String(repeating: "가", count: 64)
      let codes = [
        "A-1", "", "A-1", String(repeating: "x", count: 65), "bad\u{7}code", "B-2", "TAKEN-1",
        hangul64, hangul64 + "나", issued.code,
      ]
      let result = try await store.addCodes(codes, to: pool.id)
      #expect(result.added == 3)
      #expect(
        result.rejected == [
          .init(code: "", reason: .empty), .init(code: "A-1", reason: .duplicateInUpload),
          .init(code: String(repeating: "x", count: 65), reason: .tooLong),
          .init(code: "bad\u{7}code", reason: .controlCharacter),
          .init(code: "TAKEN-1", reason: .alreadyExists),
          .init(code: hangul64 + "나", reason: .tooLong),
          .init(code: issued.code, reason: .alreadyExists),
        ])
      #expect(try await store.campaign("pool")?.stock == 3)
      #expect(try await store.statistics().couponsByCampaign["pool"]?[.available] == 3)
      #expect(try await store.coupon(code: hangul64)?.state == .available)
      #expect(try await store.coupon(code: "TAKEN-1")?.campaign == "first")
    }
  }

  @Test func uploadToAnUnknownOrGeneratedCampaignIsRefusedNamingTheField() async throws {
    try await withTemporaryStore { store, _ in
      let generated = try await store.createCampaign(CampaignSpec(name: "gen", stock: 5))
      for campaign in ["missing", generated.id] {
        do throws(CouponStoreError) {
          _ = try await store.addCodes(["X-1"], to: campaign)
          Issue.record("upload to \(campaign) accepted")
        } catch {
          #expect(error.code == .invalidArgument)
          #expect(error.field == "campaign")
        }
      }
      #expect(try await store.statistics().coupons == 0)
    }
  }

  @Test func claimingANamedCodeAnswersNotFoundTakenOrAlreadyYours() async throws {
    try await withTemporaryStore { store, _ in
      _ = try await store.makeBook("named", codes: ["N-1", "N-2"])
      let generated = try await store.createCampaign(CampaignSpec(name: "gen", stock: 5))
      let issued = try #require(try await store.claim(campaign: generated.id, user: "u").coupon)
      #expect(try await store.claim(code: "N-404", user: "u") == .codeNotFound)
      #expect(try await store.claim(code: issued.code, user: "v") == .codeNotFound)
      let mine = try await store.claimed("N-1", by: "u")
      #expect(try await store.claim(code: "N-1", user: "v") == .codeTaken)
      #expect(try await store.claim(code: "N-1", user: "u") == .limitReached(existing: [mine]))
      #expect(try await store.claim(code: "N-2", user: "u") == .limitReached(existing: [mine]))
      #expect(try await store.claim(campaign: "named", user: "w").coupon?.code == "N-2")
      #expect(try await store.claim(campaign: "named", user: "x") == .soldOut)
    }
  }

  /// Timeline: for each of 1,000 codes, ann and bob race to claim it by name (2,000 tasks at
  /// once). The writer decides each code's two claims in turn: the first gets it, the second is
  /// told it is taken.
  @Test func twoUsersRacingForEachOfAThousandCodesLeaveEachWithExactlyOneOwner() async throws {
    try await withTemporaryStore { store, _ in
      let codes = bookCodes("DUEL", 1_000)
      _ = try await store.makeBook("duel", codes: codes, perUserLimit: 1_000)
      let results = try await withThrowingTaskGroup(of: (String, String, ClaimResult).self) {
        group in
        for code in codes {
          for user in ["ann", "bob"] {
            group.addTask { (code, user, try await store.claim(code: code, user: user)) }
          }
        }
        return try await group.reduce(into: [(String, String, ClaimResult)]()) { $0.append($1) }
      }
      let winners = Dictionary(grouping: results.filter { $0.2.coupon != nil }, by: \.0)
      #expect(winners.count == 1_000)
      #expect(winners.values.allSatisfy { $0.count == 1 })
      #expect(results.filter { $0.2 == .codeTaken }.count == 1_000)
      for code in codes {
        let owner = try await store.coupon(code: code)?.user
        #expect(owner != nil && owner == winners[code]?.first?.1)
      }
      let held = try await store.coupons(of: "ann").count + store.coupons(of: "bob").count
      #expect(held == 1_000)
    }
  }

  /// Timeline: 10,000 tasks claim from a pool of 10,000 codes for 3,334 users, at most 3 each.
  /// Every code is issued exactly once, and in random order: a uniform draw leaves about one
  /// code at its upload position; the test allows 100 (1 %), which a uniform draw exceeds with
  /// a probability below 10^-150.
  @Test func tenThousandClaimsIssueEveryPoolCodeOnceInRandomOrder() async throws {
    try await withTemporaryStore { store, _ in
      let codes = bookCodes("FAIR", 10_000)
      _ = try await store.makeBook("fair", codes: codes, perUserLimit: 3)
      let coupons = try await withThrowingTaskGroup(of: Coupon?.self) { group in
        for claim in 0..<10_000 {
          group.addTask {
            try await store.claim(campaign: "fair", user: "u\(claim % 3_334)").coupon
          }
        }
        return try await group.reduce(into: [Coupon?]()) { $0.append($1) }
      }
      let issued = coupons.compactMap { $0 }
      #expect(issued.count == 10_000)
      #expect(Set(issued.map(\.code)) == Set(codes))
      #expect(Dictionary(grouping: issued, by: \.user).values.allSatisfy { $0.count <= 3 })
      let order = try #require(try await store.claims(of: "fair", limit: 10_000)).claims.map(\.code)
      #expect(order.count == 10_000)
      let inPlace = zip(order, codes).filter { $0 == $1 }.count
      #expect(inPlace < 100)
      #expect(try await store.claim(campaign: "fair", user: "late") == .soldOut)
    }
  }

  /// A million codes in one call: written as bounded records (at least 1,000,000 / 16,384 of
  /// them), with progress reported along the way, within the memory such a pool needs (peak
  /// growth measured at about 100 MB, which is the pool itself; the test allows 400 MB because
  /// other tests run in the same process), and intact after reopen.
  @Test func millionCodeUploadIsChunkedBoundedInMemoryAndIntactAfterReopen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = (0..<1_000_000).map { "MILLION-\($0)" }
    var store = try await CouponStore.open(directory: path)
    _ = try await store.createCampaign(CampaignSpec(id: "big", name: "big", codes: .pool))
    let start = try await store.statistics().lastSequence
    let reports = Mutex<[AddCodesProgress]>([])
    let residentBefore = Memory.resetPeak()
    let result = try await store.addCodes(codes, to: "big") { progress in
      reports.withLock { $0.append(progress) }
    }
    let peakGrowth = residentBefore.flatMap { before in Memory.peak().map { $0 - before } }
    #expect(result.added == 1_000_000)
    #expect(result.rejected.isEmpty)
    if let peakGrowth { #expect(peakGrowth < 400 << 20) }
    let records = try await store.statistics().lastSequence - start
    #expect(records >= UInt64(1_000_000 / UploadChunking.codesMax))
    let done = reports.withLock { $0.map(\.codesDone) }
    #expect(done.count == Int(records))
    #expect(done == done.sorted())
    #expect(done.last == 1_000_000)
    #expect(reports.withLock { $0.allSatisfy { $0.codesTotal == 1_000_000 } })
    try await store.close()

    store = try await CouponStore.open(directory: path)
    #expect(try await store.campaign("big")?.stock == 1_000_000)
    #expect(try await store.statistics().couponsByState[.available] == 1_000_000)
    for code in ["MILLION-0", "MILLION-500000", "MILLION-999999"] {
      #expect(try await store.coupon(code: code)?.state == .available)
    }
    let coupon = try #require(try await store.claim(campaign: "big", user: "u").coupon)
    #expect(coupon.code.hasPrefix("MILLION-"))
    try await store.close()
  }

  /// A crash after some chunks of an upload were written, before its final chunk: nothing of it
  /// is visible after reopen, and uploading the same codes again adds them all.
  @Test func crashBeforeTheFinalChunkAddsNoneOfTheUpload() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = bookCodes("CUT", 50_000)
    var store = try await CouponStore.open(directory: path)
    _ = try await store.createCampaign(CampaignSpec(id: "cut", name: "cut", codes: .pool))
    #expect(try await store.addCodes(codes, to: "cut").added == 50_000)
    try await store.close()
    let segment = try #require(
      try FileSurgery.segments(path).last { try FileSurgery.size($0) > 32 })
    try FileSurgery.truncate(segment, by: 5)  // tears the final chunk; the others stay

    store = try await CouponStore.open(directory: path)
    #expect(store.recovery.tornTailBytesCut > 0)
    #expect(try await store.campaign("cut")?.stock == 0)
    #expect(try await store.statistics().coupons == 0)
    #expect(try await store.coupon(code: codes[0]) == nil)
    #expect(try await store.couponDetails(code: codes[1]) == nil)
    #expect(try await store.claim(code: codes[2], user: "u") == .codeNotFound)
    #expect(try await store.lock(code: codes[3], user: "u") == .notFound)
    #expect(try await store.claim(campaign: "cut", user: "u") == .soldOut)
    #expect(try await store.addCodes(codes, to: "cut").added == 50_000)
    let coupon = try await store.claimed(codes[2], by: "u")
    #expect(coupon.campaign == "cut")
    let statistics = try await store.statistics()
    #expect(statistics.coupons == 50_000)
    try await store.close()
    store = try await CouponStore.open(directory: path)
    #expect(try await store.campaign("cut")?.stock == 50_000)
    #expect(try await store.statistics().business == statistics.business)
    try await store.close()
    #expect(try CouponStore.inspect(directory: path).problems == [])
  }

  /// While an upload is staged its codes exist (no other upload or generated claim can take
  /// them) but are invisible: not found, not counted, not claimable. The final chunk shows them.
  @Test func stagedCodesAreInvisibleUntilTheFinalChunk() throws {
    var state = try StoreState.withOnePool()
    try state.replay(
      .codesAdded(
        campaign: 0, upload: 2, final: false, codes: ["P-1", "P-2"], time: 0, request: nil),
      sequence: 2)
    #expect(state.couponID(code: "P-1") == nil)
    #expect("P-1".withUTF8Bytes { state.codes.find($0) } != nil)
    #expect(state.statistics(lastSequence: 2).coupons == 0)
    #expect(state.campaigns[0].available.isEmpty)
    // A second upload carrying P-2 adopts it; it finishes first and owns P-2.
    try state.replay(
      .codesAdded(
        campaign: 0, upload: 3, final: true, codes: ["P-2", "P-3"], time: 0, request: nil),
      sequence: 3)
    #expect(state.couponID(code: "P-2") != nil)
    #expect(state.couponID(code: "P-1") == nil)
    #expect(state.statistics(lastSequence: 3).coupons == 2)
    try state.replay(
      .codesAdded(campaign: 0, upload: 2, final: true, codes: ["P-4"], time: 0, request: nil),
      sequence: 4)
    #expect(state.campaigns[0].stock == 4)
    #expect(state.stagedUploads.isEmpty)
    #expect(state.invariantViolations() == [])
    #expect(throws: ReplayError.self) {
      try state.replay(
        .poolClaimed(campaign: 0, coupon: 9, user: "u", time: 1, request: nil), sequence: 5)
    }
  }

  /// Timeline: two uploads, to two pools, of 30,000 codes each that share 10,000, run at once;
  /// their chunks interleave in the log. Whichever finishes first gets the shared codes; the
  /// other reports them as already in the store. Each code ends in exactly one pool.
  @Test func concurrentUploadsOfOverlappingCodesAddEachCodeOnce() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var store = try await CouponStore.open(directory: path)
    for id in ["left", "right"] {
      _ = try await store.createCampaign(CampaignSpec(id: id, name: id, codes: .pool))
    }
    let shared = store
    async let left = shared.addCodes(bookCodes("LAP", 30_000), to: "left")
    async let right = shared.addCodes(bookCodes("LAP", 30_000, from: 20_000), to: "right")
    let results = try await [left, right]
    #expect(results.map(\.added).reduce(0, +) == 50_000)
    #expect(results.flatMap(\.rejected).count == 10_000)
    #expect(results.flatMap(\.rejected).allSatisfy { $0.reason == .alreadyExists })
    let statistics = try await store.statistics()
    #expect(statistics.coupons == 50_000)
    try await store.close()
    store = try await CouponStore.open(directory: path)
    #expect(try await store.statistics().business == statistics.business)
    try await store.close()
  }

  @Test func retriedUploadWithTheSameRequestIDAddsNothingAlsoAfterReopen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = bookCodes("AGAIN", 40_000) + [""]
    var store = try await CouponStore.open(directory: path)
    _ = try await store.createCampaign(CampaignSpec(id: "again", name: "again", codes: .pool))
    let first = try await store.addCodes(codes, to: "again", requestID: "upload-1")
    #expect(first.added == 40_000)
    let retry = try await store.addCodes(codes, to: "again", requestID: "upload-1")
    #expect(retry.added == 0)
    #expect(retry.rejected == first.rejected)
    await #expect(throws: CouponStoreError.self) {
      try await store.addCodes(["OTHER-1"], to: "again", requestID: "upload-1")
    }
    try await store.close()
    store = try await CouponStore.open(directory: path)
    #expect(try await store.addCodes(codes, to: "again", requestID: "upload-1").added == 0)
    #expect(try await store.campaign("again")?.stock == 40_000)
    try await store.close()
  }

  /// A pregenerated book gets its codes at creation: `count` distinct codes of its pattern,
  /// drawn by claims, identical after reopen.
  @Test func pregeneratedBookHoldsCountDistinctCodesOfItsPatternAndSurvivesReopen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let pattern = CodePattern(
      alphabet: CodePattern.unambiguousSymbols, length: 8, prefix: "BOOK-", groupSize: 4)
    var store = try await CouponStore.open(directory: path)
    let book = try await store.createCampaign(
      CampaignSpec(id: "printed", name: "printed", codes: .pregenerated(pattern, count: 5_000)))
    #expect(book.stock == 5_000)
    #expect(book.codes == .pregenerated(pattern, count: 5_000))
    var claimed: [String] = []
    for user in 0..<100 {
      claimed.append(
        try #require(try await store.claim(campaign: "printed", user: "u\(user)").coupon).code)
    }
    #expect(Set(claimed).count == 100)
    #expect(claimed.allSatisfy { $0.hasPrefix("BOOK-") && $0.count == 14 })
    let statistics = try await store.statistics()
    #expect(
      statistics.couponsByCampaign["printed"] == [
        .available: 4_900, .assigned: 100, .locked: 0, .redeemed: 0,
      ])
    try await store.close()

    store = try await CouponStore.open(directory: path)
    #expect(try await store.statistics().business == statistics.business)
    #expect(try await store.claims(of: "printed", limit: 1_000)?.claims.map(\.code) == claimed)
    try await store.close()
  }

  /// A crash that cuts a pregenerated book's creation record leaves no campaign (its codes,
  /// written before it, are dropped); creating it again works, also across a second reopen.
  @Test func crashDuringPregeneratedCreationLeavesNoCampaign() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let spec = CampaignSpec(
      id: "print", name: "print", codes: .pregenerated(.alphanumeric, count: 40_000))
    var store = try await CouponStore.open(directory: path)
    _ = try await store.createCampaign(spec)
    try await store.close()
    let segment = try #require(
      try FileSurgery.segments(path).last { try FileSurgery.size($0) > 32 })
    try FileSurgery.truncate(segment, by: 5)  // tears the campaignCreated record

    store = try await CouponStore.open(directory: path)
    #expect(try await store.campaigns().isEmpty)
    #expect(try await store.statistics().coupons == 0)
    #expect(try await store.createCampaign(spec).stock == 40_000)
    try await store.close()
    store = try await CouponStore.open(directory: path)
    #expect(try await store.campaign("print")?.stock == 40_000)
    #expect(try await store.statistics().coupons == 40_000)
    try await store.close()
  }

  @Test func uploadChunksStayWithinTheirBounds() {
    let short = bookCodes("S", 40_000)
    let long = (0..<3_000).map { String(repeating: "가", count: 63) + "\($0 % 10)" }
    for codes in [short, long, short + long, []] {
      let ranges = UploadChunking.ranges(codes)
      #expect(ranges.first?.lowerBound == 0)
      #expect(ranges.last?.upperBound == codes.count)
      #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
      for range in ranges {
        #expect(range.count <= UploadChunking.codesMax)
        let bytes = codes[range].map(UploadChunking.encodedBytes).reduce(0, +)
        #expect(bytes <= UploadChunking.bytesMax)
      }
    }
  }

  @Test func uploadPlanMapsWriterPositionsBackToUploadPositions() {
    let codes = ["", "A", "B", "\u{1}", "\u{2}", "C", "D", ""]
    let plan = UploadPlan(codes)
    #expect(plan.accepted == ["A", "B", "C", "D"])
    #expect((0..<4).map(plan.inputIndex) == [1, 2, 5, 6])
    #expect(plan.inputCount(2) == 3)
    #expect(plan.inputCount(4) == 7)
    let rejected = plan.rejections(codes, skipped: [(1, .alreadyExists), (3, .duplicateInUpload)])
    #expect(
      rejected.map(\.code) == ["", "B", "\u{1}", "\u{2}", "D", ""])
    #expect(
      rejected.map(\.reason) == [
        .empty, .alreadyExists, .controlCharacter, .controlCharacter, .duplicateInUpload, .empty,
      ])
  }
}

/// The process's resident memory, from /proc (Linux); `nil` elsewhere.
enum Memory {
  /// Resets the peak resident size to the current one and returns the current one.
  static func resetPeak() -> Int? {
    do {
      try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    } catch {
      return nil
    }
    return field("VmRSS")
  }

  /// The peak resident size since the last reset.
  static func peak() -> Int? { field("VmHWM") }

  private static func field(_ name: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
      let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return nil }
    return kilobytes * 1024
  }
}
