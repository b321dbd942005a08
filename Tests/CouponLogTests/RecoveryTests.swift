import CouponLog
import Foundation
import Testing

@Suite struct RecoveryTests {
  /// Writes `count` records in segments of about `segmentBytesMax` bytes.
  func makeLog(
    count: Int = 40, segmentBytesMax: Int = 64 << 20, batch: Int = 4
  ) throws -> (directory: TestDirectory, written: [TestRecord]) {
    let directory = try TestDirectory()
    let written = try writeRecords(
      in: directory.path, count: count, batch: batch,
      options: LogWriterOptions(segmentBytesMax: segmentBytesMax))
    return (directory, written)
  }

  // MARK: Clean logs

  @Test func emptyDirectoryRecoversNothing() throws {
    let directory = try TestDirectory()
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records.isEmpty)
    #expect(report.segments.isEmpty && report.lastSequence == 0 && report.nextSequence == 1)
  }

  @Test func filesThatAreNotSegmentsAreIgnored() throws {
    let (directory, written) = try makeLog(count: 5)
    try writeFileBytes(directory.file("snapshot-00000000000000000003"), [1, 2, 3])
    try writeFileBytes(directory.file("log-1.seg"), [9, 9, 9])
    #expect(try recoverRecords(in: directory.path).records == written)
  }

  @Test func recordOffsetsPointAtTheirFrames() throws {
    let (directory, _) = try makeLog(count: 10)
    let (_, records) = try recoverRecords(in: directory.path)
    let path = try directory.segmentPaths()[0]
    #expect(records.map(\.offset) == (try frameOffsets(path)))
  }

  @Test func afterSequenceSkipsVisitingButStillCounts() throws {
    let (directory, written) = try makeLog(count: 30, segmentBytesMax: 200)
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(afterSequence: 20))
    #expect(records == Array(written[20...]))
    #expect(report.recordsVisited == 10 && report.recordsTotal == 30)
    #expect(report.lastSequence == 30 && report.nextSequence == 31)
  }

  @Test func afterSequenceStillVerifiesTheRecordsItSkips() throws {
    let (directory, _) = try makeLog(count: 30)
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    try flipBit(path, at: offsets[3] + 21)
    let found = corruption {
      _ = try recoverRecords(in: directory.path, options: RecoveryOptions(afterSequence: 20))
    }
    #expect(found?.path == path && found?.offset == offsets[3])
  }

  @Test func snapshotPastTheLogGivesNextSequenceAfterTheSnapshot() throws {
    let (directory, _) = try makeLog(count: 5)
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(afterSequence: 9))
    #expect(records.isEmpty && report.recordsTotal == 5 && report.nextSequence == 10)
  }

  @Test func visitErrorIsRethrownUnchanged() throws {
    struct DecodeFailure: Error, Equatable { var sequence: UInt64 }
    let (directory, _) = try makeLog(count: 10)
    #expect(throws: DecodeFailure(sequence: 4)) {
      _ = try recoverLog(
        fileSystem: RealFileSystem(), directory: directory.path, options: RecoveryOptions()
      ) { record in
        if record.sequence == 4 { throw DecodeFailure(sequence: 4) }
      }
    }
  }

  @Test func progressRisesToTheTotal() throws {
    let (directory, _) = try makeLog(count: 60, segmentBytesMax: 300)
    var calls: [(Int64, Int64)] = []
    _ = try recoverLog(
      fileSystem: RealFileSystem(), directory: directory.path, options: RecoveryOptions(),
      progress: { calls.append(($0, $1)) }, visit: { _ in })
    let total = try directory.segmentPaths().reduce(Int64(0)) { $0 + (try fileSize($1)) }
    #expect(calls.count > 2)
    #expect(calls.allSatisfy { $0.1 == total && $0.0 <= total })
    #expect(zip(calls, calls.dropFirst()).allSatisfy { $0.0 <= $1.0 })
    #expect(calls.last?.0 == total)
  }

  // MARK: Torn tails

  @Test func truncatedTrailingFrameIsCutOnOpen() throws {
    let (directory, written) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let lastFrame = try frameOffsets(path).last!
    try truncateFile(path, by: 5)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == Array(written.dropLast()))
    #expect(report.tornTail?.path == path && report.tornTail?.offset == lastFrame)
    #expect(report.tornTail?.bytesCut == Int64(frameHeaderBytes + written.last!.payload.count - 5))
    #expect(try fileSize(path) == lastFrame)
    let second = try recoverRecords(in: directory.path)
    #expect(second.report.tornTail == nil && second.records == records)
  }

  @Test func frameCutInsideItsHeaderIsCutOnOpen() throws {
    let (directory, written) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let lastFrame = try frameOffsets(path).last!
    try truncateFile(path, by: Int(try fileSize(path) - lastFrame) - 7)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == Array(written.dropLast()))
    #expect(report.tornTail?.offset == lastFrame && report.tornTail?.bytesCut == 7)
  }

  @Test func garbageAppendedToTheLastSegmentIsCutOnOpen() throws {
    let (directory, written) = try makeLog(count: 20, segmentBytesMax: 300)
    let path = try directory.segmentPaths().last!
    let size = try fileSize(path)
    var random = SeededGenerator(seed: 99)
    try appendToFile(path, random.bytes(5000))
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.tornTail == TailCut(path: path, offset: size, bytesCut: 5000))
    #expect(try fileSize(path) == size)
  }

  @Test func zerosAppendedToTheLastSegmentAreCutOnOpen() throws {
    let (directory, written) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let size = try fileSize(path)
    try appendZeros(path, count: 4096)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.tornTail == TailCut(path: path, offset: size, bytesCut: 4096))
  }

  @Test func bitFlipInTheLastFrameIsATornTail() throws {
    let (directory, written) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let lastFrame = try frameOffsets(path).last!
    try flipBit(path, at: lastFrame + 22, bit: 3)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == Array(written.dropLast()))
    #expect(report.tornTail?.offset == lastFrame)
  }

  @Test func staleFramesFromAnotherFileAreCutNotReplayed() throws {
    // Two logs with the same sequences but different salts: the second one's tail holds frames
    // 6...10 copied from the first (a recycled file). They verify nowhere but in their own file.
    let (donor, _) = try makeLog(count: 10)
    let (directory, written) = try makeLog(count: 5)
    let donorPath = try donor.segmentPaths()[0]
    let path = try directory.segmentPaths()[0]
    let donorOffsets = try frameOffsets(donorPath)
    let stale = Array(try fileBytes(donorPath)[Int(donorOffsets[5])...])
    let size = try fileSize(path)
    try appendToFile(path, stale)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.tornTail == TailCut(path: path, offset: size, bytesCut: Int64(stale.count)))
  }

  @Test func headerTornLastSegmentIsRemoved() throws {
    let (directory, written) = try makeLog(count: 10)
    let next = directory.file(SegmentFile.name(firstSequence: 11))
    let header = SegmentHeader(salt: 5, firstSequence: 11).encoded()
    for torn in [[], Array(header.prefix(13)), [UInt8](repeating: 0, count: 32)] {
      try writeFileBytes(next, torn)
      let (report, records) = try recoverRecords(in: directory.path)
      #expect(records == written)
      #expect(
        report.tornTail
          == TailCut(path: next, offset: 0, bytesCut: Int64(torn.count), segmentRemoved: true))
      #expect(!FileManager.default.fileExists(atPath: next))
      #expect(report.nextSequence == 11)
    }
  }

  @Test func emptyLastSegmentIsKeptAndAccountsForItsFirstSequence() throws {
    let (directory, _) = try makeLog(count: 10)
    let next = directory.file(SegmentFile.name(firstSequence: 11))
    try writeFileBytes(next, SegmentHeader(salt: 5, firstSequence: 11).encoded())
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records.count == 10 && report.tornTail == nil)
    #expect(report.segments.last == next && report.nextSequence == 11)
  }

  @Test func readOnlyRecoveryReportsTheCutButChangesNoFile() throws {
    let (directory, written) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let size = try fileSize(path)
    let next = directory.file(SegmentFile.name(firstSequence: 21))
    try writeFileBytes(next, [1, 2, 3])
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(readOnly: true))
    #expect(records == written)
    #expect(report.tornTail == TailCut(path: next, offset: 0, bytesCut: 3, segmentRemoved: true))
    #expect(report.segments == [path])
    #expect(FileManager.default.fileExists(atPath: next))
    try FileManager.default.removeItem(atPath: next)
    try appendZeros(path, count: 100)
    let again = try recoverRecords(in: directory.path, options: RecoveryOptions(readOnly: true))
    #expect(again.records == written)
    #expect(again.report.tornTail == TailCut(path: path, offset: size, bytesCut: 100))
    #expect(again.report.logBytes == size)
    #expect(try fileSize(path) == size + 100)
  }

  // MARK: Logs larger than one read chunk

  /// 12 MiB of 300 KiB records: frames straddle the 8 MiB chunks the scan reads.
  func makeLargeLog() throws -> (directory: TestDirectory, written: [TestRecord]) {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    var written: [TestRecord] = []
    for index in 0..<40 {
      let payload = [UInt8](repeating: UInt8(index), count: 300_000 + index * 101)
      let sequence = writer.append(type: 4) { $0.appendBytes(payload) }
      written.append(TestRecord(sequence: sequence, type: 4, payload: payload))
      if let flushed = try writer.flush() {
        try flushed.segment.syncData()
        writer.durableSequence = flushed.lastSequence
      }
    }
    return (directory, written)
  }

  @Test func logLargerThanOneReadChunkRecoversWhole() throws {
    let (directory, written) = try makeLargeLog()
    #expect(try recoverRecords(in: directory.path).records == written)
  }

  @Test func corruptionFarBeforeTheTailIsFoundAcrossChunks() throws {
    let (directory, _) = try makeLargeLog()
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    try flipBit(path, at: offsets[2] + 1_000)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == offsets[2])
  }

  @Test func tornTailLongerThanOneChunkIsCut() throws {
    let (directory, written) = try makeLargeLog()
    let path = try directory.segmentPaths()[0]
    let size = try fileSize(path)
    var random = SeededGenerator(seed: 12)
    try appendToFile(path, random.bytes(9 << 20))
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.tornTail == TailCut(path: path, offset: size, bytesCut: 9 << 20))
  }

  // MARK: Corruption

  @Test func corruptFrameBeforeTailRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    try flipBit(path, at: offsets[2] + 25, bit: 6)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path)
    #expect(found?.offset == offsets[2])
    #expect(found?.reason.contains("follows") == true)
    let size = try fileSize(path)
    _ = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(try fileSize(path) == size, "a refused open must not change the file")
  }

  @Test func corruptFrameHeaderBeforeTailRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 20)
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    try flipBit(path, at: offsets[7] + 5, bit: 7)  // the length field
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == offsets[7])
  }

  @Test func corruptFrameInAnOlderSegmentRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    #expect(segments.count >= 3)
    let path = segments[1]
    let last = try frameOffsets(path).last!
    try flipBit(path, at: last + 21)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == last)
  }

  @Test func truncatedOlderSegmentRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let path = try directory.segmentPaths()[0]
    let last = try frameOffsets(path).last!
    try truncateFile(path, by: 3)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == last)
  }

  @Test func garbageAfterAnOlderSegmentRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let path = try directory.segmentPaths()[0]
    let size = try fileSize(path)
    try appendZeros(path, count: 10)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == size)
  }

  @Test func sequenceGapRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    try FileManager.default.removeItem(atPath: segments[1])
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == segments[2] && found?.offset == 0)
    #expect(found?.reason.contains("sequence gap") == true)
  }

  @Test func gapCoveredBySnapshotIsTolerated() throws {
    let (directory, written) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    try FileManager.default.removeItem(atPath: segments[1])
    let third = try fileBytes(segments[2]).withUnsafeBytes { try SegmentHeader(decoding: $0) }
    let covered = third.firstSequence - 1
    let (_, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(afterSequence: covered))
    #expect(records == Array(written[Int(covered)...]))
  }

  @Test func missingFirstSegmentWithoutSnapshotRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    try FileManager.default.removeItem(atPath: segments[0])
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == segments[1] && found?.offset == 0)
  }

  @Test func segmentRenamedToAnotherSequenceRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 10)
    let path = try directory.segmentPaths()[0]
    let renamed = directory.file(SegmentFile.name(firstSequence: 1_000))
    try FileManager.default.moveItem(atPath: path, toPath: renamed)
    let found = corruption {
      _ = try recoverRecords(in: directory.path, options: RecoveryOptions(afterSequence: 5_000))
    }
    #expect(found?.path == renamed && found?.reason.contains("file name") == true)
  }

  @Test func corruptHeaderOfAnOlderSegmentRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 40, segmentBytesMax: 200)
    let path = try directory.segmentPaths()[0]
    try flipBit(path, at: 14)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == 0)
  }

  @Test func corruptHeaderOfALastSegmentWithFramesRefusesToOpen() throws {
    let (directory, _) = try makeLog(count: 10)
    let path = try directory.segmentPaths()[0]
    try flipBit(path, at: 21)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == 0)
  }

  // MARK: Salvage

  @Test func salvageTruncatesAtTheCorruptionAndDropsLaterSegments() throws {
    let (directory, written) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    let path = segments[1]
    let offsets = try frameOffsets(path)
    try flipBit(path, at: offsets[1] + 20)
    let laterBytes = try segments[2...].reduce(Int64(0)) { $0 + (try fileSize($1)) }
    let sizeBefore = try fileSize(path)
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(salvage: true))
    let salvage = try #require(report.salvaged)
    #expect(salvage.path == path && salvage.offset == offsets[1])
    #expect(salvage.segmentsDropped == segments.count - 2)
    #expect(salvage.bytesDropped == laterBytes + sizeBefore - offsets[1])
    #expect(records == Array(written.prefix(records.count)))
    #expect(records.last?.sequence == report.lastSequence)
    #expect(try directory.segmentPaths() == Array(segments.prefix(2)))
    #expect(try fileSize(path) == offsets[1])
    let again = try recoverRecords(in: directory.path)
    #expect(again.records == records && again.report.salvaged == nil)
    #expect(again.report.nextSequence == report.lastSequence + 1)
  }

  @Test func salvageOfASequenceGapDropsTheSegmentsAfterIt() throws {
    let (directory, written) = try makeLog(count: 40, segmentBytesMax: 200)
    let segments = try directory.segmentPaths()
    try FileManager.default.removeItem(atPath: segments[1])
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(salvage: true))
    #expect(report.salvaged?.offset == 0)
    #expect(report.salvaged?.segmentsDropped == segments.count - 2)
    #expect(try directory.segmentPaths() == [segments[0]])
    #expect(records == Array(written.prefix(records.count)))
    #expect(try recoverRecords(in: directory.path).records == records)
  }

  // MARK: Arbitrary damage

  /// Random damage to a three-segment log: recovery never traps and either refuses with a
  /// corruption error or recovers a prefix of what was written, and a second recovery agrees.
  @Test func randomDamageGivesAPrefixOrCorruption() throws {
    let (original, written) = try makeLog(count: 30, segmentBytesMax: 250, batch: 2)
    let names = try RealFileSystem().contentsOfDirectory(original.path)
    let contents = try names.map { try fileBytes(original.file($0)) }
    let seed: UInt64 = 0x5EED
    var random = SeededGenerator(seed: seed)
    var refused = 0
    var cut = 0
    for round in 0..<150 {
      let directory = try TestDirectory()
      for (name, bytes) in zip(names, contents) { try writeFileBytes(directory.file(name), bytes) }
      let victim = directory.file(names.randomElement(using: &random)!)
      let size = try fileSize(victim)
      switch Int.random(in: 0..<4, using: &random) {
      case 0:
        try flipBit(
          victim, at: Int64.random(in: 0..<size, using: &random),
          bit: Int.random(in: 0..<8, using: &random))
      case 1: try truncateFile(victim, by: Int.random(in: 0...Int(size), using: &random))
      case 2: try appendToFile(victim, random.bytes(Int.random(in: 1..<300, using: &random)))
      default: try appendZeros(victim, count: Int.random(in: 1..<300, using: &random))
      }
      do {
        let (report, records) = try recoverRecords(in: directory.path)
        #expect(
          records == Array(written.prefix(records.count)), "seed \(seed) round \(round)")
        if report.tornTail != nil { cut += 1 }
        let again = try recoverRecords(in: directory.path)
        #expect(again.records == records, "seed \(seed) round \(round)")
        #expect(again.report.tornTail == nil, "seed \(seed) round \(round)")
      } catch LogError.corruption {
        // Refusing to open is a correct answer to damage before the tail.
        refused += 1
      }
    }
    #expect(refused > 10 && cut > 10, "seed \(seed): \(refused) refused, \(cut) cut")
  }

  @Test func randomSegmentFilesNeverTrap() throws {
    var random = SeededGenerator(seed: 0xBAD5EED)
    for _ in 0..<100 {
      let directory = try TestDirectory()
      for index in 0..<Int.random(in: 1...3, using: &random) {
        var bytes = random.bytes(Int.random(in: 0..<200, using: &random))
        if Bool.random(using: &random) {
          bytes =
            SegmentHeader(salt: random.next(), firstSequence: UInt64(index * 5 + 1)).encoded()
            + bytes
        }
        try writeFileBytes(
          directory.file(SegmentFile.name(firstSequence: UInt64(index * 5 + 1))), bytes)
      }
      do {
        _ = try recoverRecords(
          in: directory.path, options: RecoveryOptions(salvage: Bool.random(using: &random)))
      } catch is LogError {
      }
    }
  }
}

/// A power loss may keep any subset of the pages written since the last sync. A lost unsynced
/// frame followed by a surviving later unsynced frame is crash damage, not corruption.
@Suite("Torn writes inside the unsynced tail")
struct UnsyncedTailTests {
  /// A writer that has written ten records and synced them, as the engine does.
  static func writerWithTenSyncedRecords(_ directory: TestDirectory) throws -> LogWriter {
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1,
      options: LogWriterOptions())
    for index in 0..<10 { _ = writer.append(type: 1) { $0.appendBytes(testPayload(index)) } }
    let synced = try #require(try writer.flush())
    try synced.segment.syncData()
    writer.durableSequence = synced.lastSequence
    return writer
  }

  @Test func lostUnsyncedFrameFollowedBySurvivingUnsyncedFrameIsATornTail() throws {
    let directory = try TestDirectory()
    let writer = try Self.writerWithTenSyncedRecords(directory)
    // Two more batches, never synced; the first of them is then lost (zeroed) by the crash.
    _ = writer.append(type: 1) { $0.appendBytes(testPayload(10)) }
    _ = try writer.flush()
    _ = writer.append(type: 1) { $0.appendBytes(testPayload(11)) }
    _ = try writer.flush()
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seek(toOffset: UInt64(offsets[10]))
    try handle.write(contentsOf: Data(repeating: 0, count: Int(offsets[11] - offsets[10])))
    try handle.close()
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records.count == 10)
    #expect(report.tornTail?.offset == offsets[10])
  }

  @Test func flippedBitInTheLastSyncedBatchFollowedByAFrameOfTheSameBatchIsCorruption() throws {
    let directory = try TestDirectory()
    _ = try Self.writerWithTenSyncedRecords(directory)
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    // Records 1-10 were synced together and nothing was written after them: no later frame
    // proves record 5 durable, but a flipped bit is not what a lost write leaves (zeros).
    try flipBit(path, at: offsets[4] + 22)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == offsets[4])
  }

  @Test func zeroedSyncedFrameFollowedByALaterBatchIsCorruption() throws {
    let directory = try TestDirectory()
    let writer = try Self.writerWithTenSyncedRecords(directory)
    _ = writer.append(type: 1) { $0.appendBytes(testPayload(10)) }
    _ = try writer.flush()
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    // Record 5 reads as zeros, like a lost write, but record 11 was written after it was synced.
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seek(toOffset: UInt64(offsets[4]))
    try handle.write(contentsOf: Data(repeating: 0, count: Int(offsets[5] - offsets[4])))
    try handle.close()
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == offsets[4])
  }

  @Test func damagedSyncedFrameFollowedByALaterBatchIsCorruption() throws {
    let directory = try TestDirectory()
    let writer = try Self.writerWithTenSyncedRecords(directory)
    _ = writer.append(type: 1) { $0.appendBytes(testPayload(10)) }
    _ = try writer.flush()
    let path = try directory.segmentPaths()[0]
    let offsets = try frameOffsets(path)
    // Record 5 was synced, and record 11 says so: damage to it is corruption.
    try flipBit(path, at: offsets[4] + 22)
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == offsets[4])
  }
}
