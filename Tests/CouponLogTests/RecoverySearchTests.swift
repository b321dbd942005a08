import CouponLog
import Foundation
import Testing

/// The search after the first invalid frame of the last segment (FORMAT.md, recovery rule 3)
/// stays linear on hostile bytes. The frame-decoder fuzzer found a 2 MB tail of frame-like
/// headers that kept recovery busy for 13 seconds; a 64 MiB segment would have taken hours.
@Suite struct RecoverySearchTests {
  /// `count` bytes of fake frame headers, one every 20 bytes: each claims a payload of
  /// `payloadLength` bytes, sequence `sequence`, type 1 and sync lag 1, under a wrong checksum.
  func fakeHeaders(count: Int, payloadLength: UInt32, sequence: UInt64) -> [UInt8] {
    var writer = ByteWriter()
    while writer.count < count {
      writer.append(UInt32(0xDEAD_BEEF))
      writer.append(payloadLength)
      writer.append(sequence)
      writer.append(UInt32(1) | 1 << 8)
    }
    return Array(writer.bytes.prefix(count))
  }

  @Test func overlappingFrameLikeHeadersAfterTheTailAreCorruptionNotAnEndlessSearch() throws {
    let directory = try TestDirectory()
    try writeRecords(in: directory.path, count: 3)
    let path = try directory.segmentPaths()[0]
    let tail = try fileSize(path)
    // Sequence 5 with lag 1 is a candidate from 20 bytes past the tail on (records 1–3 are
    // good, so a genuine frame 5 would follow frame 4), and each claims a megabyte.
    try appendToFile(path, fakeHeaders(count: 4 << 20, payloadLength: 1 << 20, sequence: 5))
    let found = corruption { _ = try recoverRecords(in: directory.path) }
    #expect(found?.path == path && found?.offset == tail)
    #expect(found?.reason.contains("frame-like headers") == true)
    let (report, records) = try recoverRecords(
      in: directory.path, options: RecoveryOptions(salvage: true))
    #expect(records.count == 3)
    #expect(report.salvaged?.offset == tail)
  }

  @Test func frameLikeHeadersWithSequencesNoWriterCouldReachAreATornTail() throws {
    let directory = try TestDirectory()
    let written = try writeRecords(in: directory.path, count: 3)
    let path = try directory.segmentPaths()[0]
    let tail = try fileSize(path)
    try appendToFile(path, fakeHeaders(count: 2 << 20, payloadLength: 1 << 19, sequence: 1 << 40))
    let (report, records) = try recoverRecords(in: directory.path)
    #expect(records == written)
    #expect(report.tornTail?.offset == tail)
  }
}
