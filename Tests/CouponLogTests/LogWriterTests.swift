import CouponLog
import Foundation
import Glibc
import Testing

@Suite struct LogWriterTests {
  @Test func writtenRecordsAreRecoveredInOrder() throws {
    let directory = try TestDirectory()
    let written = try writeRecords(in: directory.path, count: 100)
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(records.map(\.sequence) == Array(1...100))
    #expect(report.recordsVisited == 100 && report.recordsTotal == 100)
    #expect(report.lastSequence == 100 && report.nextSequence == 101)
    #expect(report.tornTail == nil && report.salvaged == nil)
    #expect(report.segments == [directory.file("log-00000000000000000001.seg")])
    #expect(report.logBytes == (try fileSize(report.segments[0])))
  }

  @Test func appendReturnsConsecutiveSequencesFromNextSequence() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 41)
    #expect(writer.append(type: 1) { $0.append(UInt8(1)) } == 41)
    #expect(writer.append(type: 1) { _ in } == 42)
    #expect(writer.nextSequence == 43)
    #expect(writer.bufferedBytes == 2 * frameHeaderBytes + 1)
    #expect(writer.currentSegment.firstSequence == 41)
    #expect(writer.currentSegment.path == directory.file("log-00000000000000000041.seg"))
  }

  @Test func flushWithNothingBufferedReturnsNil() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    #expect(try writer.flush() == nil)
    writer.append(type: 1) { $0.appendString("x") }
    let flushed = try #require(try writer.flush())
    #expect(flushed.lastSequence == 1)
    #expect(writer.bufferedBytes == 0)
    #expect(try writer.flush() == nil)
  }

  @Test func flushIsOnePwriteAtTheSegmentEnd() throws {
    let directory = try TestDirectory()
    let fileSystem = FaultyFileSystem()
    let writer = try LogWriter(fileSystem: fileSystem, directory: directory.path, nextSequence: 1)
    let before = fileSystem.writeCount.load(ordering: .relaxed)
    for index in 0..<50 { writer.append(type: 2) { $0.appendBytes(testPayload(index)) } }
    let flushed = try #require(try writer.flush())
    #expect(fileSystem.writeCount.load(ordering: .relaxed) == before + 1)
    try flushed.segment.syncData()
    #expect(
      try fileSize(flushed.segment.path) == Int64(segmentHeaderBytes)
        + Int64(
          (0..<50).reduce(0) { $0 + frameHeaderBytes + testPayload($1).count }))
  }

  @Test func smallSegmentLimitRollsAcrossSegmentsAndRecoversAll() throws {
    let directory = try TestDirectory()
    let options = LogWriterOptions(segmentBytesMax: 256, batchBytesMax: 1024)
    let written = try writeRecords(in: directory.path, count: 200, batch: 3, options: options)
    let segments = try directory.segmentPaths()
    #expect(segments.count > 10)
    for path in segments {
      let header = try fileBytes(path).withUnsafeBytes { try SegmentHeader(decoding: $0) }
      let name = String(path.split(separator: "/").last!)
      #expect(SegmentFile.firstSequence(fromName: name) == header.firstSequence)
    }
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.segments == segments)
    #expect(report.lastSequence == 200)
  }

  @Test func segmentsCreatedCountsEveryFileTheWriterMade() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1,
      options: LogWriterOptions(segmentBytesMax: 100))
    #expect(writer.segmentsCreated == 1)
    for round in 0..<5 {
      for _ in 0..<4 { writer.append(type: 1) { $0.appendBytes(testPayload(round)) } }
      _ = try writer.flush()
    }
    #expect(writer.segmentsCreated == (try directory.segmentPaths()).count)
    #expect(writer.segmentsCreated == 6)
  }

  @Test func flushedBatchNamesTheSegmentHoldingItsFramesAfterARoll() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1,
      options: LogWriterOptions(segmentBytesMax: 100))
    let first = writer.currentSegment
    for index in 0..<5 { writer.append(type: 1) { $0.appendBytes(testPayload(index)) } }
    let flushed = try #require(try writer.flush())
    #expect(flushed.segment === first)
    #expect(flushed.lastSequence == 5)
    #expect(writer.currentSegment !== first)
    #expect(writer.currentSegment.firstSequence == 6)
    #expect(try fileSize(writer.currentSegment.path) == Int64(segmentHeaderBytes))
    try flushed.segment.syncData()  // harmless: the roll synced it already
  }

  @Test func batchIsFullAtBatchBytesMax() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1,
      options: LogWriterOptions(batchBytesMax: 100))
    writer.append(type: 1) { $0.appendBytes([UInt8](repeating: 7, count: 60)) }
    #expect(!writer.isBatchFull)
    writer.append(type: 1) { $0.appendBytes([UInt8](repeating: 7, count: 60)) }
    #expect(writer.isBatchFull)
    _ = try writer.flush()
    #expect(!writer.isBatchFull)
  }

  @Test func failedWriteStopsTheWriterAndLaterFlushesThrowTheSameError() throws {
    let directory = try TestDirectory()
    let fileSystem = FaultyFileSystem()
    let writer = try LogWriter(fileSystem: fileSystem, directory: directory.path, nextSequence: 1)
    writer.append(type: 1) { $0.appendString("lost") }
    fileSystem.failWrites.store(true, ordering: .relaxed)
    let expected = SystemCallError(
      syscall: "pwrite", errno: EIO, path: directory.file("log-00000000000000000001.seg"))
    #expect(throws: expected) { try writer.flush() }
    fileSystem.failWrites.store(false, ordering: .relaxed)
    writer.append(type: 1) { $0.appendString("also lost") }
    #expect(throws: expected) { try writer.flush() }
  }

  @Test func failedSyncNamesTheSegment() throws {
    let directory = try TestDirectory()
    let fileSystem = FaultyFileSystem()
    let writer = try LogWriter(fileSystem: fileSystem, directory: directory.path, nextSequence: 1)
    writer.append(type: 1) { $0.appendString("x") }
    let flushed = try #require(try writer.flush())
    fileSystem.failSyncs.store(true, ordering: .relaxed)
    #expect(
      throws: SystemCallError(syscall: "fdatasync", errno: EIO, path: flushed.segment.path)
    ) { try flushed.segment.syncData() }
  }

  @Test func writerReusesAnEmptySegmentOfItsFirstSequence() throws {
    let directory = try TestDirectory()
    _ = try LogWriter(fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    let written = try writeRecords(in: directory.path, count: 3)
    #expect(try directory.segmentPaths().count == 1)
    #expect(try recoverRecords(in: directory.path).records == written)
  }

  @Test func writerRefusesToOverwriteASegmentThatHoldsFrames() throws {
    let directory = try TestDirectory()
    try writeRecords(in: directory.path, count: 3)
    #expect(
      throws: SystemCallError(
        syscall: "open", errno: EEXIST, path: directory.file("log-00000000000000000001.seg"))
    ) {
      _ = try LogWriter(fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    }
    #expect(try recoverRecords(in: directory.path).records.count == 3)
  }

  @Test func segmentFilesAreOwnerOnly() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    var info = stat()
    #expect(stat(writer.currentSegment.path, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
  }

  @Test func statisticsCountEverySegmentAndFlushedByte() throws {
    let directory = try TestDirectory()
    try writeRecords(
      in: directory.path, count: 30, options: LogWriterOptions(segmentBytesMax: 200))
    let before = try directory.segmentPaths()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path,
      nextSequence: try recoverRecords(in: directory.path).report.nextSequence,
      options: LogWriterOptions(segmentBytesMax: 200))
    writer.append(type: 1) { $0.appendString("more") }
    _ = try writer.flush()
    let paths = try directory.segmentPaths()
    #expect(paths.count == before.count + 1 || paths.count == before.count)
    #expect(writer.segmentCount == paths.count)
    #expect(writer.totalBytes == (try paths.reduce(Int64(0)) { $0 + (try fileSize($1)) }))
  }

  @Test func removeSegmentsDeletesOnlyFullyCoveredSegmentsOldestFirst() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1,
      options: LogWriterOptions(segmentBytesMax: 100))
    for round in 0..<6 {
      for _ in 0..<4 { writer.append(type: 1) { $0.appendBytes(testPayload(round)) } }
      _ = try writer.flush()
    }
    // Segments hold 1...4, 5...8, ..., 21...24, and the current one starts at 25.
    #expect(writer.segmentCount == 7)
    #expect(try writer.removeSegments(coveredThrough: 7) == 1)
    #expect(try writer.removeSegments(coveredThrough: 8) == 1)
    #expect(writer.segmentCount == 5)
    #expect(
      try directory.segmentPaths().first == directory.file(SegmentFile.name(firstSequence: 9)))
    #expect(try writer.removeSegments(coveredThrough: 1_000) == 4)
    #expect(writer.segmentCount == 1)
    #expect(try directory.segmentPaths() == [writer.currentSegment.path])
    #expect(writer.totalBytes == (try fileSize(writer.currentSegment.path)))
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(afterSequence: 24))
    #expect(records.isEmpty && report.nextSequence == 25)
  }

  @Test func writerRefusesToStartBeforeALaterSegment() throws {
    let directory = try TestDirectory()
    try writeRecords(in: directory.path, count: 3, firstSequence: 101)
    #expect(
      throws: SystemCallError(
        syscall: "open", errno: EEXIST, path: directory.file(SegmentFile.name(firstSequence: 101)))
    ) {
      _ = try LogWriter(fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    }
    #expect(try directory.segmentPaths().count == 1)
  }

  @Test func recordOfExactlyRecordBytesMaxRoundTrips() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    let big = (0..<recordBytesMax).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    writer.append(type: 9) { $0.appendBytes(big) }
    writer.append(type: 9) { _ in }
    try writer.flush()?.segment.syncData()
    let (_, records) = try recoverRecords(in: directory.path)
    #expect(records.map(\.payload) == [big, []])
  }
}

@Suite struct LogWriterRollTests {
  @Test func rollSegmentSealsTheRecordsSoFarAndStartsTheNextSegment() throws {
    let directory = try TestDirectory()
    let writer = try LogWriter(
      fileSystem: RealFileSystem(), directory: directory.path, nextSequence: 1)
    for index in 0..<10 { writer.append(type: 1) { $0.appendBytes(testPayload(index)) } }
    _ = try writer.flush()
    try writer.rollSegment()
    #expect(writer.currentSegment.firstSequence == 11)
    #expect(writer.segmentCount == 2)
    // An empty segment is not rolled again.
    try writer.rollSegment()
    #expect(writer.segmentCount == 2)
    writer.append(type: 1) { $0.appendBytes(testPayload(10)) }
    _ = try writer.flush()
    // A reader that stops at the boundary sees the sealed segment only.
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(readOnly: true, throughSequence: 10))
    #expect(records.map(\.sequence) == Array(1...10))
    #expect(report.lastSequence == 10)
    #expect(report.segments == [directory.file("log-00000000000000000001.seg")])
  }

  @Test func throughSequenceStopsInsideASegment() throws {
    let directory = try TestDirectory()
    try writeRecords(in: directory.path, count: 30)
    let (report, records) = try recoverRecords(
      in: directory.path,
      options: RecoveryOptions(afterSequence: 5, readOnly: true, throughSequence: 12))
    #expect(records.map(\.sequence) == Array(6...12))
    #expect(report.lastSequence == 12)
    #expect(report.tornTail == nil)
  }
}

@Suite struct LogWriterDetachTests {
  @Test func detachSegmentsListsCoveredSegmentsOldestFirstWithoutDeletingThem() throws {
    let directory = try TestDirectory()
    let writer = try writeThreeRecordSegments(in: directory.path)
    // Segments start at 1, 4, 7 and 10 (the current one).
    #expect(
      writer.detachSegments(coveredThrough: 5) == [directory.file("log-00000000000000000001.seg")])
    #expect(writer.segmentCount == 3)
    #expect(
      writer.detachSegments(coveredThrough: 100) == [
        directory.file("log-00000000000000000004.seg"),
        directory.file("log-00000000000000000007.seg"),
      ])
    #expect(writer.segmentCount == 1)
    #expect(FileManager.default.fileExists(atPath: directory.file("log-00000000000000000001.seg")))
  }
}

@Suite struct SkipCoveredSegmentsTests {
  /// Segments 1–3 and 4–6 lie wholly under afterSequence 6; damage in them is not read when
  /// they are skipped, and is found when they are not.
  @Test func coveredSegmentsAreNotReadWhenSkipped() throws {
    let directory = try TestDirectory()
    _ = try writeThreeRecordSegments(in: directory.path)
    let first = directory.file("log-00000000000000000001.seg")
    var bytes = try fileBytes(first)
    bytes[segmentHeaderBytes + frameHeaderBytes] ^= 0x40
    try Data(bytes).write(to: URL(fileURLWithPath: first))
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(afterSequence: 6, skipCoveredSegments: true))
    #expect(records.map(\.sequence) == [7, 8, 9])
    #expect(report.lastSequence == 9)
    #expect(report.segments.count == 4)
    #expect(
      corruption {
        _ = try recoverRecords(in: directory.path, options: RecoveryOptions(afterSequence: 6))
      }?.path == first)
  }
}

/// Nine records in segments starting at 1, 4 and 7 (sealed by `rollSegment`), and an empty
/// current segment starting at 10.
func writeThreeRecordSegments(in directory: String) throws -> LogWriter {
  let writer = try LogWriter(fileSystem: RealFileSystem(), directory: directory, nextSequence: 1)
  for index in 0..<9 {
    writer.append(type: 1) { $0.appendBytes(testPayload(index)) }
    _ = try writer.flush()
    if index % 3 == 2 { try writer.rollSegment() }
  }
  return writer
}
