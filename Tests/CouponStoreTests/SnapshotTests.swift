import CouponLog
import Foundation
import Synchronization
import Testing

@testable import CouponStore

#if canImport(Glibc)
  import Glibc
#endif

/// Builds states with every kind of content, straight through the `apply…`/replay functions.
enum RichState {
  static let time: Int64 = 1_800_000_000_000

  /// Three campaigns (generated ASCII codes, generated Hangul codes, a pool), claims by named and
  /// anonymous users, a final and a staged upload, pool claims, remembered requests of every
  /// outcome kind, locks, history and redemptions.
  static func build(claims: Int = 200) throws -> StoreState {
    var state = StoreState(requestWindow: 10_000)
    var sequence: UInt64 = 0
    func apply(_ event: Event) throws {
      sequence += 1
      try state.replay(event, sequence: sequence)
      state.lastSequence = sequence
    }
    func campaign(_ id: String, stock: Int, codes: CodeSourceRecord, limit: Int) -> CampaignRecord {
      CampaignRecord(
        id: id, name: "Campaign \(id) 봄", stock: stock, startsAt: time, endsAt: time + 86_400_000,
        perUserLimit: limit, redemptionsPerCoupon: 3, codes: codes, lockTimeoutMillis: 300_000,
        expiresAt: nil, createdAt: time)
    }
    try apply(
      .campaignCreated(
        campaign("gen", stock: claims * 2, codes: .generated(.alphanumeric), limit: 3),
        request: RequestTag(id: "create-gen", fingerprint: 11)))
    try apply(
      .campaignCreated(
        campaign("hangul", stock: 100, codes: .generated(.hangulDigits), limit: 1), request: nil))
    try apply(.campaignCreated(campaign("pool", stock: 0, codes: .pool, limit: 2), request: nil))
    for index in 0..<claims {
      let user: String? = index % 7 == 0 ? nil : "user-\(index % 80)"
      let tag = index % 5 == 0 ? RequestTag(id: "claim-\(index)", fingerprint: UInt64(index)) : nil
      try apply(
        .claimed(
          campaign: 0, user: user, code: "GEN\(index)-X", time: time + Int64(index),
          request: tag))
    }
    for index in 0..<20 {
      try apply(
        .claimed(
          campaign: 1, user: "사용자\(index)", code: "가나\(index)다", time: time - Int64(index),
          request: nil))
    }
    try apply(
      .codesAdded(
        campaign: 2, upload: 1_000, final: true, codes: (0..<300).map { "POOL-\($0)" },
        time: time, request: RequestTag(id: "upload-1", fingerprint: 99)))
    try apply(
      .codesAdded(
        campaign: 2, upload: 2_000, final: false, codes: ["STAGED-A", "STAGED-B"], time: time,
        request: nil))
    for index in stride(from: 0, to: 120, by: 3) {
      let coupon = try #require(state.couponID(code: "POOL-\(index)"))
      let user: String? = index % 9 == 0 ? nil : "user-\(index % 80)"
      try apply(
        .poolClaimed(
          campaign: 2, coupon: coupon, user: user, time: time + 5_000 + Int64(index),
          request: RequestTag(id: "pool-\(index)", fingerprint: 7)))
    }
    try apply(
      .requestRecorded(RequestTag(id: "late", fingerprint: 5), outcome: 1, time: time))
    // Lifecycle: a locked coupon, a fully redeemed one (3 of 3), and one redeemed then rolled
    // back.
    let locked = state.campaigns[0].issueOrder[3]
    try apply(.locked(coupon: locked, time: time + 10, expiresAt: time + 310_000, request: nil))
    let redeemed = state.campaigns[0].issueOrder[4]
    for round in 0..<3 {
      let at = time + 20 + Int64(round) * 10
      try apply(.locked(coupon: redeemed, time: at, expiresAt: at + 300_000, request: nil))
      try apply(.redeemed(coupon: redeemed, time: at + 5, request: nil))
    }
    let rolledBack = state.campaigns[2].issueOrder[1]
    try apply(.locked(coupon: rolledBack, time: time + 40, expiresAt: time + 340_000, request: nil))
    try apply(.redeemed(coupon: rolledBack, time: time + 45, request: nil))
    try apply(
      .rolledBack(
        coupon: rolledBack, time: time + 50, request: RequestTag(id: "refund", fingerprint: 3)))
    return state
  }

  /// A pool campaign holding `codes` long codes, a coupon with `historyEntries` history entries
  /// and a staged upload of `stagedCodes` codes: sections spanning many blocks and records split
  /// across several.
  static func large(codes: Int, historyEntries: Int, stagedCodes: Int) throws -> StoreState {
    var state = StoreState(requestWindow: 10_000)
    let record = CampaignRecord(
      id: "big", name: "big", stock: 0, startsAt: 0, endsAt: nil, perUserLimit: 1,
      redemptionsPerCoupon: 1, codes: .pool, lockTimeoutMillis: 1, expiresAt: nil, createdAt: 0)
    try state.replay(.campaignCreated(record, request: nil), sequence: 1)
    let padding = String(repeating: "P", count: 180)
    _ = state.stageUploadChunk(upload: 1, campaign: 0, codes: (0..<codes).map { "\(padding)\($0)" })
    _ = state.finishUpload(1)
    for index in 0..<codes / 3 {
      state.applyPoolClaimed(
        coupon: UInt32(index * 3), user: state.internUser("u\(index)"), time: Int64(index) * 1_000)
    }
    for index in 0..<historyEntries {
      state.applyTransition(
        coupon: 0, to: index % 2 == 0 ? .locked : .assigned,
        entry: index % 2 == 0 ? .locked : .unlocked, time: Int64(index))
    }
    _ = state.stageUploadChunk(
      upload: 77, campaign: 0, codes: (0..<stagedCodes).map { "STAGED-\($0)" })
    state.lastSequence = 4_242
    return state
  }
}

@Suite("Snapshots")
struct SnapshotTests {
  // MARK: The file format

  @Test func snapshotFileNamesRoundTripAndOthersAreNotSnapshots() {
    let name = SnapshotFile.name(sequence: 4_711)
    #expect(name == "snapshot-00000000000000004711.snap")
    #expect(SnapshotFile.sequence(fromName: name) == 4_711)
    #expect(SnapshotFile.isTemporary(SnapshotFile.temporaryName(sequence: 9)))
    for other in [
      "snapshot-4711.snap", "snapshot-0000000000000000471x.snap",
      "snapshot-00000000000000004711.tmp",
      "log-00000000000000004711.seg", "snapshot-99999999999999999999.snap",
    ] {
      #expect(SnapshotFile.sequence(fromName: other) == nil)
    }
  }

  @Test func richStateRoundTripsThroughASnapshotFieldForField() throws {
    let state = try RichState.build()
    let loaded = try Self.roundTrip(state)
    #expect(StateDump(loaded).differences(from: StateDump(state)) == [])
    #expect(StateDump(loaded).indexesConsistent)
    #expect(!state.history.isEmpty && !state.lockExpiry.isEmpty && !state.stagedUploads.isEmpty)
    #expect(state.requests.count >= 50)
    #expect(loaded.invariantViolations() == [])
  }

  @Test func largeSectionsSpanManyBlocksAndLongRecordsAreSplit() throws {
    let state = try RichState.large(codes: 12_000, historyEntries: 5_000, stagedCodes: 1_000)
    let (path, written) = try Self.writeInNewDirectory(state)
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(Self.blockOffsets(written.path).count > 4)
    let loaded = try StoreState.loadSnapshot(
      path: written.path, fileSystem: RealFileSystem(), requestWindow: 10_000)
    #expect(StateDump(loaded).differences(from: StateDump(state)) == [])
    #expect(loaded.history[0]?.count == 5_000)
    #expect(loaded.stagedUploads[77]?.coupons.count == 1_000)
  }

  @Test func flippedBitIsLocatedAtItsBlock() throws {
    let state = try RichState.large(codes: 12_000, historyEntries: 10, stagedCodes: 10)
    let (path, written) = try Self.writeInNewDirectory(state)
    defer { try? FileManager.default.removeItem(atPath: path) }
    // The largest block: one in the middle of the codes section.
    let offsets = Self.blockOffsets(written.path)
    let sizes = zip(offsets, offsets.dropFirst()).map { $1 - $0 }
    let target = offsets[sizes.indices.max { sizes[$0] < sizes[$1] }!]
    #expect(target > offsets[2])
    try FileSurgery.flipBit(written.path, at: Int(target) + 1_000, bit: 3)
    try Self.expectDamage(written.path, at: target, "checksum mismatch")
  }

  @Test func truncatedOrExtendedSnapshotIsDamaged() throws {
    let state = try RichState.build(claims: 50)
    let (path, written) = try Self.writeInNewDirectory(state)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let original = try Data(contentsOf: URL(fileURLWithPath: written.path))
    // Cut just after a block boundary: every block verifies, but the end block is missing.
    let lastBlock = Self.blockOffsets(written.path).last!
    try original.prefix(Int(lastBlock)).write(to: URL(fileURLWithPath: written.path))
    try Self.expectDamage(written.path, at: lastBlock, "ends before its end block")
    // Bytes after the end block.
    try (original + Data([1, 2, 3])).write(to: URL(fileURLWithPath: written.path))
    try Self.expectDamage(written.path, at: Int64(original.count), "follow the end block")
    // A damaged header.
    var header = original
    header[30] ^= 0x10
    try header.write(to: URL(fileURLWithPath: written.path))
    try Self.expectDamage(written.path, at: 0, "header checksum")
  }

  // MARK: A store with snapshots

  /// The state after a snapshot and a reopen equals the state the whole log gives, field for
  /// field: campaigns, claims, users, pools, request ids, and everything else of the state.
  @Test func stateAfterSnapshotAndReopenEqualsFullLogReplay() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let options = Self.manual
    let store = try await CouponStore.open(directory: path, options: options)
    let reads1 = try await Self.populate(store, round: 1)
    let info = try await store.snapshot()
    #expect(info.sequence > 0)
    #expect(info.path.hasSuffix(SnapshotFile.name(sequence: info.sequence)))
    let reads2 = try await Self.populate(store, round: 2)
    let readsBefore = try await Self.publicReads(store)
    try await store.close()

    // The snapshot plus the log after it rebuilds exactly what the whole log rebuilds.
    let fromLog = StateDump(try StateLoader.fromLogOnly(path))
    let fromSnapshot = StateDump(try StateLoader.recovered(path))
    #expect(fromSnapshot.differences(from: fromLog) == [])
    #expect(fromSnapshot.indexesConsistent)

    let reopened = try await CouponStore.open(directory: path, options: options)
    #expect(reopened.recovery.snapshotSequence == info.sequence)
    #expect(reopened.recovery.recordsReplayed == Int(fromLog.lastSequence - info.sequence))
    #expect(try await Self.publicReads(reopened) == readsBefore)
    // Request ids remembered before the snapshot still answer retries with the first answer.
    #expect(reads1.count >= 5 && reads2.count >= 5)
    for (requestID, user, code) in reads1 + reads2 {
      let retry = try await reopened.claim(campaign: "main", user: user, requestID: requestID)
      #expect(retry.coupon?.code == code)
    }
    try await reopened.close()
  }

  /// Timeline: 2,000 tasks claim while 20 other tasks ask for snapshots at the same time. Every
  /// claim and snapshot succeeds; the state after reopening equals the whole log's.
  @Test func claimsFlowWhileSnapshotsAreTaken() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var options = CouponStore.Options()
    options.snapshotLogBytes = 64 << 10
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 1_000_000))
    let (codes, snapshots) = try await withThrowingTaskGroup(of: (String?, Bool).self) { group in
      for index in 0..<2_000 {
        group.addTask {
          (try await store.claim(campaign: "c", user: "user-\(index)").coupon?.code, false)
        }
        if index % 100 == 0 {
          group.addTask {
            _ = try await store.snapshot()
            return (nil, true)
          }
        }
      }
      var codes: [String] = []
      var snapshots = 0
      for try await (code, isSnapshot) in group {
        if let code { codes.append(code) }
        if isSnapshot { snapshots += 1 }
      }
      return (codes, snapshots)
    }
    #expect(codes.count == 2_000)
    #expect(snapshots == 20)
    let statistics = try await store.statistics()
    #expect(statistics.snapshotsWritten >= 1)
    #expect(statistics.lastSnapshotError == nil)
    try await store.close()
    let recovered = try StateLoader.recovered(path)
    #expect(
      Set((0..<recovered.codes.count).map { recovered.codes.string(of: UInt32($0)) }) == Set(codes))
    #expect(recovered.invariantViolations() == [])
    #expect(try StoreFiles.snapshots(path).count <= 2)
  }

  /// A snapshot asked for and not yet written shows in the statistics as under way (checked on
  /// a snapshotter whose thread is not started, so the job stays queued); once `snapshot()`
  /// returns, the statistics show it written and nothing under way.
  @Test func statisticsSayWhetherASnapshotIsUnderWay() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let idle = Snapshotter(directory: path, options: Self.manual, latest: nil)
    #expect(!idle.status.busy)
    idle.enqueue(boundary: 1, waiter: nil)
    #expect(idle.status.busy)
    #expect(idle.status.written == 0)
    idle.stop()

    let store = try await CouponStore.open(directory: path, options: Self.manual)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 100))
    _ = try await store.claim(campaign: "c", user: "u")
    var statistics = try await store.statistics()
    #expect(!statistics.snapshotInProgress)
    #expect(statistics.snapshotsWritten == 0)
    _ = try await store.snapshot()
    statistics = try await store.statistics()
    #expect(!statistics.snapshotInProgress)
    #expect(statistics.snapshotsWritten == 1)
    try await store.close()
  }

  /// Snapshot A keeps the whole log (the empty state is its base); B deletes the segments A
  /// covers; C deletes A and the segments B covers. Every open in between sees the same claims.
  @Test func segmentsAreDeletedOnlyOnceTwoSnapshotsCoverThem() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let options = Self.manual
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 10_000))
    func claims(_ range: Range<Int>) async throws {
      for index in range { _ = try await store.claim(campaign: "c", user: "u\(index)") }
    }
    try await claims(0..<50)
    let a = try await store.snapshot()
    #expect(try StoreFiles.segments(path).first == SegmentFile.name(firstSequence: 1))
    try await claims(50..<100)
    let b = try await store.snapshot()
    #expect(try StoreFiles.snapshots(path) == [a.path, b.path])
    let firstAfterB = try #require(try StoreFiles.segments(path).first)
    #expect(SegmentFile.firstSequence(fromName: firstAfterB) == a.sequence + 1)
    try await claims(100..<150)
    let c = try await store.snapshot()
    #expect(try StoreFiles.snapshots(path) == [b.path, c.path])
    let firstAfterC = try #require(try StoreFiles.segments(path).first)
    #expect(SegmentFile.firstSequence(fromName: firstAfterC) == b.sequence + 1)
    // Asking again without new records returns the same snapshot and writes nothing.
    #expect(try await store.snapshot() == c)
    try await store.close()
    let recovered = try StateLoader.recovered(path)
    #expect(recovered.campaigns[0].issued == 150)
  }

  /// Timeline: rounds of 500 concurrent claims with automatic snapshots every 64 KiB of log and
  /// 1 MiB segments; a final `snapshot()` waits for the snapshotter. Automatic snapshots ran,
  /// old segments and snapshots are gone, and what remains is a fraction of what was written.
  @Test func automaticSnapshotsKeepDiskUseBoundedOverALongRunOfClaims() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var options = CouponStore.Options()
    options.snapshotLogBytes = 64 << 10
    options.segmentBytesMax = 1 << 20
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 10_000_000))
    let rounds = 40
    for round in 0..<rounds {
      try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<500 {
          group.addTask { _ = try await store.claim(campaign: "c", user: "u\(round)-\(index)") }
        }
        try await group.waitForAll()
      }
    }
    // Two snapshots around one last claim: the snapshotter is idle, and the older of the two
    // kept snapshots covers everything but that claim.
    _ = try await store.snapshot()
    _ = try await store.claim(campaign: "c", user: "last")
    _ = try await store.snapshot()
    let statistics = try await store.statistics()
    #expect(statistics.snapshotsWritten >= 4)
    #expect(statistics.issued == rounds * 500 + 1)
    try await store.close()
    #expect(try StoreFiles.snapshots(path).count == 2)
    #expect(try StoreFiles.temporaries(path).isEmpty)
    // Every claim wrote at least 40 bytes of log: 800 KB in all. What remains is the segments
    // after the older kept snapshot (the last claim) and two snapshots of the live state.
    let logBytes = try StoreFiles.bytes(path, suffix: ".seg")
    let snapshotBytes = try StoreFiles.bytes(path, suffix: ".snap")
    #expect(logBytes < 4_096)
    #expect(try StoreFiles.segments(path).count <= 3)
    #expect(snapshotBytes < rounds * 500 * 2 * 60)
    #expect(try StateLoader.recovered(path).campaigns[0].issued == rounds * 500 + 1)
  }

  // MARK: Damage and fallback

  @Test func damagedNewestSnapshotFallsBackToThePreviousOne() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (a, b) = try await Self.storeWithTwoSnapshots(path)
    let expected = StateDump(try StateLoader.recovered(path))
    try FileSurgery.flipBit(b.path, at: Int(b.bytes) / 2)
    let store = try await CouponStore.open(directory: path)
    #expect(store.recovery.snapshotSequence == a.sequence)
    #expect(store.recovery.damagedSnapshots.count == 1)
    #expect(store.recovery.damagedSnapshots.first?.contains(b.path) == true)
    try await store.close()
    #expect(StateDump(try StateLoader.recovered(path)).differences(from: expected) == [])
    let inspection = try CouponStore.inspect(directory: path, verifySnapshots: true)
    #expect(inspection.problems.contains { $0.contains(b.path) })
  }

  @Test func damagedNewestAndPreviousSnapshotRefuseToOpenNamingTheNewest() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (a, b) = try await Self.storeWithTwoSnapshots(path)
    try FileSurgery.flipBit(a.path, at: Int(a.bytes) / 2)
    try FileSurgery.flipBit(b.path, at: Int(b.bytes) / 2)
    do {
      _ = try await CouponStore.open(directory: path)
      Issue.record("open succeeded without a valid snapshot for the log that remains")
    } catch {
      #expect(error.code == .corruption)
      #expect(error.path == b.path)
      #expect(error.offset.map { $0 > 0 && $0 < b.bytes } == true)
      #expect(error.message.contains("no older valid snapshot"))
    }
  }

  @Test func damagedOnlySnapshotFallsBackToTheWholeLog() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let options = Self.manual
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await Self.populate(store, round: 1)
    let only = try await store.snapshot()
    try await store.close()
    let expected = StateDump(try StateLoader.fromLogOnly(path))
    try FileSurgery.flipBit(only.path, at: snapshotHeaderBytes + 20)
    let reopened = try await CouponStore.open(directory: path, options: options)
    #expect(reopened.recovery.snapshotSequence == 0)
    #expect(reopened.recovery.damagedSnapshots.count == 1)
    try await reopened.close()
    #expect(StateDump(try StateLoader.recovered(path)).differences(from: expected) == [])
  }

  // MARK: Crashes and failures around snapshotting

  /// A crash at each step of writing a snapshot and retiring what it covers: reopening yields
  /// exactly the acknowledged state, whichever way the unsynced directory change went.
  @Test(arguments: [
    CrashingFileSystem.Point.snapshotWrite(1), .snapshotSync, .snapshotRename,
    .directorySyncAfterSnapshotRename, .segmentRemoval(1), .segmentRemoval(2),
  ])
  func crashWhileSnapshottingReopensToTheAcknowledgedState(point: CrashingFileSystem.Point)
    async throws
  {
    for undoRename in point == .directorySyncAfterSnapshotRename ? [false, true] : [false] {
      let path = temporaryStorePath()
      defer { try? FileManager.default.removeItem(atPath: path) }
      let (crashing, options) = Self.crashingOptions()
      // Snapshot A, then two segments of claims (a reopen starts a new segment), snapshot B, more
      // claims: the crashing snapshot C deletes A and the two segments between A and B.
      var store = try await CouponStore.open(directory: path, options: options)
      _ = try await Self.populate(store, round: 1)
      _ = try await store.snapshot()
      _ = try await Self.populate(store, round: 2)
      try await store.close()
      store = try await CouponStore.open(directory: path, options: options)
      _ = try await Self.populate(store, round: 3)
      _ = try await store.snapshot()
      _ = try await Self.populate(store, round: 4)
      let acknowledged = StateDump(try StateLoader.recovered(path))
      crashing.arm(point)
      await #expect(throws: CouponStoreError.self) { try await store.snapshot() }
      #expect(crashing.crashed)
      try? await store.close()
      if undoRename, let rename = crashing.lastSnapshotRename {
        // The power loss lost the rename that was never made durable.
        try FileManager.default.moveItem(atPath: rename.to, toPath: rename.from)
      }
      // A crash before the rename (or one that lost it) leaves the temporary file behind.
      let leftBehind =
        [.snapshotWrite(1), .snapshotSync, .snapshotRename].contains(point)
        || undoRename
      let inspection = try CouponStore.inspect(directory: path)
      #expect(inspection.unfinishedSnapshots.count == (leftBehind ? 1 : 0))
      let reopened = try await CouponStore.open(directory: path)
      #expect(reopened.recovery.damagedSnapshots == [])
      try await reopened.close()
      #expect(try StoreFiles.temporaries(path).isEmpty)
      let after = StateDump(try StateLoader.recovered(path))
      #expect(after.differences(from: acknowledged) == [], "crash at \(point), undo \(undoRename)")
    }
  }

  /// A failed fdatasync of the snapshot file fails `snapshot()` but not the store: claims go on,
  /// the temporary file is gone, the error is reported, and the next snapshot succeeds.
  @Test func failedSnapshotSyncFailsTheSnapshotButNotTheStore() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (crashing, options) = Self.crashingOptions()
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await Self.populate(store, round: 1)
    crashing.failSnapshotSync(true)
    do {
      _ = try await store.snapshot()
      Issue.record("snapshot() succeeded although its fdatasync failed")
    } catch {
      #expect(error.code == .io)
      #expect(error.syscall == "fdatasync")
    }
    #expect(try StoreFiles.temporaries(path).isEmpty)
    #expect(try StoreFiles.snapshots(path).isEmpty)
    let claim = try await store.claim(campaign: "main", user: "after-failure")
    #expect(claim.coupon != nil)
    #expect(try await store.statistics().lastSnapshotError?.contains("fdatasync") == true)
    crashing.failSnapshotSync(false)
    let info = try await store.snapshot()
    #expect(try StoreFiles.snapshots(path) == [info.path])
    try await store.close()
    #expect(try StateLoader.recovered(path).userID("after-failure") != nil)
  }

  /// A snapshot in progress when the store closes is abandoned or finished, never half-done.
  @Test func closingDuringASnapshotLeavesNoUnfinishedFile() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let options = Self.manual
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await Self.populate(store, round: 1)
    let snapshot = Task { try await store.snapshot() }
    try await store.close()
    switch await snapshot.result {
    case .success(let info): #expect(try StoreFiles.snapshots(path) == [info.path])
    case .failure(let error): #expect((error as? CouponStoreError)?.code == .closed)
    }
    let reopened = try await CouponStore.open(directory: path, options: options)
    try await reopened.close()
    #expect(try StoreFiles.temporaries(path).isEmpty)
    #expect(
      StateDump(try StateLoader.recovered(path)).differences(
        from: StateDump(try StateLoader.fromLogOnly(path))) == [])
  }

  @Test func openingReportsSnapshotThenLogProgress() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    _ = try await Self.storeWithTwoSnapshots(path)
    let phases = ProgressRecorder()
    var options = CouponStore.Options()
    options.openProgress = { phases.record($0) }
    let store = try await CouponStore.open(directory: path, options: options)
    try await store.close()
    let seen = phases.events
    let firstLog = try #require(seen.firstIndex { $0.phase == .replayingLog })
    #expect(seen.prefix(firstLog).contains { $0.phase == .loadingSnapshot })
    #expect(seen.allSatisfy { $0.phase == .loadingSnapshot } == false)
    let lastSnapshot = try #require(seen.last { $0.phase == .loadingSnapshot })
    #expect(lastSnapshot.bytesDone == lastSnapshot.bytesTotal)
  }

  @Test func verifyCrossChecksTwoSnapshotsAndFindsNoProblemInAHealthyStore() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (a, b) = try await Self.storeWithTwoSnapshots(path)
    let inspection = try CouponStore.inspect(directory: path, verifySnapshots: true)
    #expect(inspection.problems == [])
    #expect(inspection.snapshots.map(\.sequence) == [b.sequence, a.sequence])
    #expect(inspection.snapshots.map(\.isUsed) == [true, false])
    #expect(inspection.statistics.snapshotSequence == b.sequence)
    // Damage in the older snapshot does not stop recovery, but verify reports it.
    try FileSurgery.flipBit(a.path, at: Int(a.bytes) / 2)
    let damaged = try CouponStore.inspect(directory: path, verifySnapshots: true)
    #expect(damaged.problems.contains { $0.contains(a.path) })
  }

  // MARK: Helpers

  /// Options without automatic snapshots: every snapshot in the test is asked for.
  static var manual: CouponStore.Options {
    var options = CouponStore.Options()
    options.snapshotLogBytes = 0
    return options
  }

  /// Options with a crash switch in the file system and no automatic snapshots.
  static func crashingOptions() -> (CrashingFileSystem, CouponStore.Options) {
    let crashing = CrashingFileSystem()
    var options = manual
    options.fileSystem = crashing
    return (crashing, options)
  }

  /// Writes `state` as a snapshot in a new directory (the caller removes it).
  static func writeInNewDirectory(_ state: StoreState) throws -> (String, WrittenSnapshot) {
    let path = temporaryStorePath()
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let written = try state.writeSnapshot(
      directory: path, fileSystem: RealFileSystem(), createdAtMillis: 1)
    #expect(written.path == path + "/" + SnapshotFile.name(sequence: state.lastSequence))
    return (path, written)
  }

  /// Writes `state` as a snapshot in a new directory and loads it back.
  static func roundTrip(_ state: StoreState) throws -> StoreState {
    let (path, written) = try writeInNewDirectory(state)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try StoreState.loadSnapshot(
      path: written.path, fileSystem: RealFileSystem(), requestWindow: state.requestWindow)
  }

  /// The file offsets of every block of a snapshot file.
  static func blockOffsets(_ path: String) -> [Int64] {
    let bytes = FileManager.default.contents(atPath: path) ?? Data()
    var offsets: [Int64] = []
    var offset = snapshotHeaderBytes
    while offset + snapshotBlockHeaderBytes <= bytes.count {
      offsets.append(Int64(offset))
      let length = bytes[offset + 4..<offset + 8].enumerated().reduce(0) {
        $0 | Int($1.element) << (8 * $1.offset)
      }
      offset += snapshotBlockHeaderBytes + length
    }
    return offsets
  }

  /// Expects loading `path` to report damage at `offset` with `reason` in its message.
  static func expectDamage(_ path: String, at offset: Int64, _ reason: String) throws {
    do {
      _ = try StoreState.loadSnapshot(path: path, fileSystem: RealFileSystem(), requestWindow: 10)
      Issue.record("a damaged snapshot loaded")
    } catch {
      guard case .damaged(let damage) = error else {
        Issue.record("expected damage, got \(error)")
        return
      }
      #expect(damage.path == path)
      #expect(damage.offset == offset)
      #expect(damage.reason.contains(reason), "\(damage.reason)")
    }
  }

  /// Creates campaign "main" if needed and makes claims of every kind: named, anonymous, with
  /// request ids, sold out, not started. Returns the request id, user and code of each successful
  /// claim made with a request id.
  static func populate(_ store: CouponStore, round: Int) async throws -> [(String, String?, String)]
  {
    if try await store.campaign("main") == nil {
      _ = try await store.createCampaign(
        CampaignSpec(id: "main", name: "Main", stock: 1_000, perUserLimit: 2))
      _ = try await store.createCampaign(
        CampaignSpec(
          id: "hangul", name: "한글", stock: 3, codes: .generated(.hangulDigits)),
        requestID: "create-hangul")
      _ = try await store.createCampaign(
        CampaignSpec(id: "later", name: "Later", stock: 10, startsAt: .distantFuture))
    }
    var remembered: [(String, String?, String)] = []
    for index in 0..<40 {
      let user: String? = index % 6 == 0 ? nil : "user-\(round)-\(index % 25)"
      let requestID = index % 4 == 0 ? "r\(round)-\(index)" : nil
      let result = try await store.claim(campaign: "main", user: user, requestID: requestID)
      if let requestID, let code = result.coupon?.code {
        remembered.append((requestID, user, code))
      }
    }
    for index in 0..<3 {
      _ = try await store.claim(
        campaign: "hangul", user: "hangul-\(round)-\(index)", requestID: "h\(round)-\(index)")
    }
    _ = try await store.claim(campaign: "later", user: "early", requestID: "early-\(round)")
    _ = try await store.claim(campaign: "missing", user: "x", requestID: "missing-\(round)")
    return remembered
  }

  /// Everything the public API can read, for before/after comparisons.
  struct PublicReads: Equatable {
    var campaigns: [Campaign]
    var claims: [String: [ClaimRecord]]
    var coupons: [String: [Coupon]]
    var statistics: [Int]
  }

  static func publicReads(_ store: CouponStore) async throws -> PublicReads {
    let campaigns = try await store.campaigns()
    var claims: [String: [ClaimRecord]] = [:]
    var users = Set<String>()
    for campaign in campaigns {
      let page = try #require(try await store.claims(of: campaign.id, limit: 100_000))
      claims[campaign.id] = page.claims
      users.formUnion(page.claims.compactMap(\.user))
    }
    var coupons: [String: [Coupon]] = [:]
    for user in users { coupons[user] = try await store.coupons(of: user) }
    for records in claims.values {
      for record in records {
        coupons["code:" + record.code] = [try #require(try await store.coupon(code: record.code))]
      }
    }
    let statistics = try await store.statistics()
    return PublicReads(
      campaigns: campaigns, claims: claims, coupons: coupons,
      statistics: [
        statistics.campaigns, statistics.coupons, statistics.issued, statistics.users,
        statistics.requestIDs, Int(statistics.lastSequence),
      ])
  }

  /// A store with claims, snapshot A, more claims, snapshot B, more claims; closed.
  static func storeWithTwoSnapshots(_ path: String) async throws -> (
    CouponStore.SnapshotInfo, CouponStore.SnapshotInfo
  ) {
    let options = Self.manual
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await populate(store, round: 1)
    let a = try await store.snapshot()
    _ = try await populate(store, round: 2)
    let b = try await store.snapshot()
    _ = try await populate(store, round: 3)
    try await store.close()
    return (a, b)
  }
}

/// Collects open-progress reports from the opening task.
final class ProgressRecorder: Sendable {
  private let seen = Mutex<[CouponStore.OpenProgress]>([])
  func record(_ progress: CouponStore.OpenProgress) { seen.withLock { $0.append(progress) } }
  var events: [CouponStore.OpenProgress] { seen.withLock { $0 } }
}

@Suite("Snapshots and the log they cover")
struct SnapshotCoveredLogTests {
  /// The log kept only for the older snapshot is not read on open: damage there does not stop
  /// the store, and `verify`, which reads everything, reports it.
  @Test func damageInLogOnlyTheOlderSnapshotNeedsIsFoundByVerifyNotByOpen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (a, b) = try await SnapshotTests.storeWithTwoSnapshots(path)
    let expected = StateDump(try StateLoader.recovered(path))
    let covered = path + "/" + SegmentFile.name(firstSequence: a.sequence + 1)
    #expect(try StoreFiles.segments(path).first == SegmentFile.name(firstSequence: a.sequence + 1))
    try FileSurgery.flipBit(covered, at: segmentHeaderBytes + frameHeaderBytes + 2)
    let store = try await CouponStore.open(directory: path)
    #expect(store.recovery.snapshotSequence == b.sequence)
    try await store.close()
    #expect(StateDump(try StateLoader.recovered(path)).differences(from: expected) == [])
    do {
      _ = try CouponStore.inspect(directory: path, verifySnapshots: true)
      Issue.record("verify missed damage in the log kept for the older snapshot")
    } catch {
      #expect(error.code == .corruption)
      #expect(error.path == covered)
    }
  }
}
