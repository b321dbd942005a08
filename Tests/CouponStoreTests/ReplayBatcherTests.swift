import CouponLog
import Foundation
import Testing

@testable import CouponStore

@Suite("Batched replay")
struct ReplayBatcherTests {
  /// Writes events straight to a log in `path`, one record each, and syncs it.
  static func writeLog(_ path: String, _ events: [Event]) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let log = try LogWriter(fileSystem: RealFileSystem(), directory: path, nextSequence: 1)
    for event in events {
      log.append(type: event.type.rawValue) { EventCoder.encode(event, into: &$0) }
    }
    try log.flush()?.segment.syncData()
  }

  static func campaign(_ id: String) -> CampaignRecord {
    CampaignRecord(
      id: id, name: id, stock: 1_000, startsAt: 0, endsAt: nil, perUserLimit: 3,
      redemptionsPerCoupon: 1, codes: .generated(.alphanumeric), lockTimeoutMillis: 1,
      expiresAt: nil, createdAt: 0)
  }

  @Test func batchedReplayEqualsRecordByRecordReplay() throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var events: [Event] = [.campaignCreated(Self.campaign("a"), request: nil)]
    for index in 0..<150 {
      if index == 70 { events.append(.campaignCreated(Self.campaign("b"), request: nil)) }
      events.append(
        .claimed(
          campaign: index < 70 ? 0 : UInt32(index % 2),
          user: index % 9 == 0 ? nil : "u\(index % 60)",
          code: "CODE-\(index)", time: Int64(index),
          request: index % 5 == 0 ? RequestTag(id: "r\(index)", fingerprint: 1) : nil))
    }
    try Self.writeLog(path, events)
    let batched = try StateLoader.fromLogOnly(path)
    var oneByOne = StoreState(requestWindow: CouponStore.Options().requestIDWindow)
    _ = try recoverLog(
      fileSystem: RealFileSystem(), directory: path, options: RecoveryOptions(readOnly: true)
    ) { record in
      try oneByOne.replay(type: record.type, payload: record.payload, sequence: record.sequence)
    }
    #expect(batched.coupons.count == 150)
    #expect(StateDump(batched).differences(from: StateDump(oneByOne)) == [])
  }

  @Test func inconsistentClaimInABatchIsReportedAtItsOwnRecord() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var events: [Event] = [.campaignCreated(Self.campaign("a"), request: nil)]
    for index in 0..<10 {
      events.append(
        .claimed(campaign: 0, user: "u\(index)", code: "C\(index)", time: 0, request: nil))
    }
    events.append(.claimed(campaign: 0, user: "dup", code: "C3", time: 0, request: nil))
    try Self.writeLog(path, events)
    let duplicate = try #require(try frameOffsetsOfSegment(path).last)
    do {
      _ = try await CouponStore.open(directory: path)
      Issue.record("a log with a duplicate code opened")
    } catch {
      #expect(error.code == .corruption)
      #expect(error.offset == duplicate)
      #expect(error.message.contains("log record 12"))
    }
  }

  /// The frame offsets of the first segment of `directory`.
  func frameOffsetsOfSegment(_ directory: String) throws -> [Int64] {
    let segment = try #require(try FileSurgery.segments(directory).first)
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
    var offsets: [Int64] = []
    var position = segmentHeaderBytes
    while position + frameHeaderBytes <= bytes.count {
      offsets.append(Int64(position))
      let length = bytes[(position + 4)..<(position + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }
      position += frameHeaderBytes + length
    }
    return offsets
  }
}
