import CouponLog
import Testing

@Suite struct SegmentTests {
  @Test func fileNamesAreZeroPaddedAndRoundTrip() {
    #expect(SegmentFile.name(firstSequence: 1) == "log-00000000000000000001.seg")
    #expect(SegmentFile.name(firstSequence: UInt64.max) == "log-18446744073709551615.seg")
    for sequence: UInt64 in [1, 42, 1_000_000, UInt64.max] {
      #expect(
        SegmentFile.firstSequence(fromName: SegmentFile.name(firstSequence: sequence)) == sequence)
    }
  }

  @Test func otherNamesAreNotSegments() {
    for name in [
      "log-1.seg", "log-0000000000000000000a.seg", "log-00000000000000000001.seg.tmp",
      "LOG-00000000000000000001.seg", "log-99999999999999999999.seg", "snapshot-1", "LOCK", "",
      "log-+0000000000000000001.seg", "log-0000000000000000000١.seg",
    ] {
      #expect(SegmentFile.firstSequence(fromName: name) == nil, "\(name)")
    }
  }

  @Test func headerRoundTripsAndIsThirtyTwoBytes() throws {
    let header = SegmentHeader(salt: 0xABCD, firstSequence: 77)
    let bytes = header.encoded()
    #expect(bytes.count == segmentHeaderBytes)
    #expect(Array(bytes[0..<8]) == Array("CPNLOG\r\n".utf8))
    let decoded = try bytes.withUnsafeBytes { try SegmentHeader(decoding: $0) }
    #expect(decoded == header)
  }

  @Test func damagedHeadersAreRejectedWithTheirDefect() {
    let bytes = SegmentHeader(salt: 1, firstSequence: 1).encoded()
    func defect(_ bytes: [UInt8]) -> SegmentHeaderDefect? {
      do {
        _ = try bytes.withUnsafeBytes { try SegmentHeader(decoding: $0) }
        return nil
      } catch {
        return error as? SegmentHeaderDefect
      }
    }
    #expect(defect(Array(bytes.prefix(31))) == .short(31))
    #expect(defect([UInt8](repeating: 0, count: 32)) == .badMagic)
    var flipped = bytes
    flipped[20] ^= 1
    guard case .checksumMismatch = defect(flipped) else {
      Issue.record("bit flip accepted")
      return
    }
    var future = SegmentHeader(salt: 1, firstSequence: 1)
    future.formatVersion = 2
    #expect(defect(future.encoded()) == .unsupportedVersion(2))
    #expect(defect(SegmentHeader(salt: 1, firstSequence: 0).encoded()) == .firstSequenceZero)
  }
}
