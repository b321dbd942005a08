// snapshot-decoder: arbitrary bytes as a snapshot file → StoreState.loadSnapshot.
//
// The input is the file itself (the seeds are real snapshots of a small store with campaigns,
// claims, a pool, a staged upload, lifecycle history and request ids, so mutations start from
// every section). Checks: loading is total (a state, or a `SnapshotLoadError` naming the damage);
// a state that loads has no invariant violation (what `couponstore verify` checks); and it writes
// back to a snapshot that loads to the same state's statistics.

import CouponLog
import Foundation

@testable import CouponStore

enum SnapshotDecoderFuzzer {
  static let directory = "/snap"
  static let path = "/snap/snapshot-00000000000000000001.snap"

  static func run(_ data: [UInt8]) throws {
    FuzzLog.line("snapshot-decoder bytes=\(data.count)")
    let disk = FuzzDisk.make()
    try disk.createDirectory(directory)
    disk.setContents(of: path, to: data)
    let state: StoreState
    do {
      state = try StoreState.loadSnapshot(path: path, fileSystem: disk, requestWindow: 1_000)
    } catch {
      return  // A typed refusal is a correct answer to damaged bytes.
    }
    let problems = state.invariantViolations()
    try fuzzCheck(problems.isEmpty, "a snapshot loaded into a broken state: \(problems)")
    let again = FuzzDisk.make()
    try again.createDirectory(directory)
    let written = try state.writeSnapshot(
      directory: directory, fileSystem: again, createdAtMillis: 0)
    _ = written
    let reread = try StoreState.loadSnapshot(
      path: joinPath(directory, SnapshotFile.name(sequence: state.lastSequence)),
      fileSystem: again, requestWindow: 1_000)
    try fuzzCheck(
      reread.statistics(lastSequence: 0) == state.statistics(lastSequence: 0),
      "a loaded snapshot written again does not load to the same state")
  }

  /// A small history touching every section: campaigns of each kind, claims with and without
  /// users and request ids, a pool, a staged upload, a lock and a redemption.
  static func sampleEvents() -> [Event] {
    func campaign(_ id: String, _ codes: CodeSourceRecord, stock: Int) -> CampaignRecord {
      CampaignRecord(
        id: id, name: "campaign \(id)", stock: stock, startsAt: 0, endsAt: nil, perUserLimit: 2,
        redemptionsPerCoupon: 2, codes: codes, lockTimeoutMillis: 60_000, expiresAt: nil,
        createdAt: 1)
    }
    let tag = RequestTag(id: "r1", fingerprint: 7)
    return [
      .campaignCreated(campaign("gen", .generated(.alphanumeric), stock: 10), request: tag),
      .campaignCreated(campaign("pool", .pool, stock: 0), request: nil),
      .claimed(campaign: 0, user: "u1", code: "GEN-1", time: 5, request: nil),
      .claimed(
        campaign: 0, user: nil, code: "GEN-2", time: 6,
        request: RequestTag(id: "r2", fingerprint: 1)),
      .codesAdded(
        campaign: 1, upload: 9, final: true, codes: ["P1", "P2", "P3"], time: 7, request: nil),
      .codesAdded(campaign: 1, upload: 10, final: false, codes: ["S1"], time: 8, request: nil),
      .poolClaimed(campaign: 1, coupon: 2, user: "u2", time: 9, request: nil),
      .locked(coupon: 2, time: 10, expiresAt: 60_010, request: nil),
      .redeemed(coupon: 2, time: 11, request: nil),
      .locked(coupon: 0, time: 12, expiresAt: 60_012, request: nil),
      .requestRecorded(RequestTag(id: "r3", fingerprint: 2), outcome: 1, time: 13),
    ]
  }

  /// Real snapshots of a small store, an empty store, and a cut one.
  static func seeds() -> [[UInt8]] {
    var state = StoreState(requestWindow: 1_000)
    var sequence: UInt64 = 0
    for event in sampleEvents() {
      sequence += 1
      try? state.replay(event, sequence: sequence)
    }
    state.lastSequence = max(sequence, 1)
    let disk = FuzzDisk.make()
    try? disk.createDirectory(directory)
    guard
      (try? state.writeSnapshot(directory: directory, fileSystem: disk, createdAtMillis: 0))
        != nil,
      let bytes = disk.contents(
        of: joinPath(directory, SnapshotFile.name(sequence: state.lastSequence)))
    else { return [] }
    var empty = StoreState(requestWindow: 1_000)
    empty.lastSequence = 1
    let emptyDisk = FuzzDisk.make()
    try? emptyDisk.createDirectory(directory)
    _ = try? empty.writeSnapshot(directory: directory, fileSystem: emptyDisk, createdAtMillis: 0)
    let emptyBytes = emptyDisk.contents(of: path) ?? []
    return [bytes, emptyBytes, Array(bytes.prefix(bytes.count / 2))]
  }
}
