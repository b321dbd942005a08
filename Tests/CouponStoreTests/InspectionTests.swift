import Foundation
import Testing

@testable import CouponStore

@Suite("Read-only inspection, verify and dump")
struct InspectionTests {
  @Test func inspectReportsCampaignsAndLogWithoutWritingAnything() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = try await RecoveryTests.writeClaims(path, count: 12)
    let before = try FileSurgery.segments(path).map { try FileSurgery.size($0) }
    let report = try CouponStore.inspect(directory: path)
    #expect(report.campaigns.map(\.id) == ["c"])
    #expect(report.campaigns[0].issued == 12)
    #expect(report.statistics.issued == 12)
    #expect(report.statistics.users == 12)
    #expect(report.statistics.lastSequence == 13)
    #expect(report.problems.isEmpty)
    #expect(report.statistics.logBytes == Int64(before.reduce(0, +)))
    #expect(try FileSurgery.segments(path).map { try FileSurgery.size($0) } == before)
    var lines: [String] = []
    try CouponStore.dump(directory: path) { lines.append($0) }
    #expect(lines.count == 13)
    #expect(lines[0].contains("\"type\":\"campaignCreated\""))
    #expect(lines[1].contains("\"code\":\"\(codes[0])\""))
    #expect(lines[1].contains("\"user\":\"u0\""))
    #expect(lines.allSatisfy { $0.hasPrefix("{\"seq\":") && $0.hasSuffix("}") })
  }

  @Test func inspectOfATornLogReportsTheTailButLeavesItInPlace() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    _ = try await RecoveryTests.writeClaims(path, count: 5)
    let last = try #require(try FileSurgery.segments(path).last { try FileSurgery.size($0) > 32 })
    try FileSurgery.append(last, [1, 2, 3, 4, 5, 6, 7])
    let size = try FileSurgery.size(last)
    let report = try CouponStore.inspect(directory: path)
    #expect(report.tornTailBytes == 7)
    #expect(try FileSurgery.size(last) == size)
  }

  @Test func verifyOfACorruptLogThrowsCorruption() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    _ = try await RecoveryTests.writeClaims(path, count: 8)
    let segment = try #require(
      try FileSurgery.segments(path).first { try FileSurgery.size($0) > 32 })
    try FileSurgery.flipBit(segment, at: 60)
    #expect(throws: CouponStoreError.self) { try CouponStore.inspect(directory: path) }
  }

  @Test func statisticsCountCampaignsCouponsUsersAndTheLog() async throws {
    try await withTemporaryStore { store, _ in
      let a = try await store.createCampaign(CampaignSpec(name: "a", stock: 10, perUserLimit: 2))
      let b = try await store.createCampaign(CampaignSpec(name: "b", stock: 10))
      for user in ["x", "y", "x"] { _ = try await store.claim(campaign: a.id, user: user) }
      _ = try await store.claim(campaign: b.id, user: nil)
      let statistics = try await store.statistics()
      #expect(statistics.campaigns == 2)
      #expect(statistics.issued == 4)
      #expect(statistics.coupons == 4)
      #expect(statistics.users == 2)
      #expect(statistics.couponsByState[.assigned] == 4)
      #expect(statistics.lastSequence == 6)
      #expect(statistics.segments == 1)
      #expect(statistics.logBytes > 32)
    }
  }
}
